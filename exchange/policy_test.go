package exchange

import (
	"strings"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/config"
)

func testCatalog() *Catalog {
	return NewCatalog([]config.Action{
		{Scope: "ticket:create", Description: "Create a ticket", Audiences: []string{"https://itsm.example"},
			MaxTTL: config.Duration(5 * time.Minute), Groups: []string{"employees"}},
		{Scope: "calendar:read", Description: "Read the calendar", Audiences: []string{"https://cal.example"},
			MaxTTL: config.Duration(30 * time.Minute)},
		{Scope: "expense:approve", Description: "Approve an expense", Audiences: []string{"https://erp.example"},
			MaxTTL: config.Duration(2 * time.Minute), StepUp: StepUpAny, Groups: []string{"managers"}},
	}, 15*time.Minute)
}

func TestDecide(t *testing.T) {
	c := testCatalog()
	tests := []struct {
		name     string
		scope    string
		groups   []string
		wantCode string
	}{
		{"member of the action's group is allowed", "ticket:create", []string{"employees"}, ""},
		{"member of one of several groups is allowed", "ticket:create", []string{"x", "employees"}, ""},
		{"user outside the groups is invalid_scope", "ticket:create", []string{"contractors"}, "invalid_scope"},
		{"user without groups is invalid_scope", "ticket:create", nil, "invalid_scope"},
		{"action without groups allows anyone", "calendar:read", nil, ""},
		{"groups are checked before step-up", "expense:approve", []string{"employees"}, "invalid_scope"},
		{"member passes the group check of a step-up action", "expense:approve", []string{"managers"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			action, _ := c.Lookup(tt.scope)
			e := decide(&Subject{ID: "corp|alice", Groups: tt.groups}, action)
			got := ""
			if e != nil {
				got = e.Code
			}
			if got != tt.wantCode {
				t.Errorf("decide = %q, want %q", got, tt.wantCode)
			}
		})
	}
}

func TestStepUpACRValues(t *testing.T) {
	c := testCatalog()
	action, _ := c.Lookup("expense:approve")
	if got := strings.Join(action.ACRValues(), " "); got != ACRPasskey+" "+ACRPush {
		t.Errorf("acr_values = %q, want both step-up classes for step_up any", got)
	}
	if action.MaxAge != 5*time.Minute {
		t.Errorf("max_age = %s, want the 5m default", action.MaxAge)
	}
}

func TestLifetime(t *testing.T) {
	c := testCatalog()
	now := time.Unix(1_800_000_000, 0)
	ticket, _ := c.Lookup("ticket:create")
	calendar, _ := c.Lookup("calendar:read")
	tests := []struct {
		name    string
		action  *Action
		subject time.Time
		want    int64
	}{
		{"action max_ttl is the limit", ticket, now.Add(time.Hour), now.Add(5 * time.Minute).Unix()},
		{"server maximum caps a longer max_ttl", calendar, now.Add(time.Hour), now.Add(15 * time.Minute).Unix()},
		{"subject expiry caps both", ticket, now.Add(90 * time.Second), now.Add(90 * time.Second).Unix()},
		{"subject expiry is never passed by rounding", ticket, now.Add(1500 * time.Millisecond), now.Add(time.Second).Unix()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lifetime(now, tt.action, 15*time.Minute, tt.subject); got != tt.want {
				t.Errorf("lifetime = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCatalogVersions(t *testing.T) {
	a, b := testCatalog(), testCatalog()
	if a.Version != b.Version {
		t.Errorf("same catalog, versions %s and %s; want equal", a.Version, b.Version)
	}
	changed := NewCatalog([]config.Action{{Scope: "ticket:create", Description: "Create a ticket",
		Audiences: []string{"https://itsm.example"}, MaxTTL: config.Duration(6 * time.Minute)}}, 15*time.Minute)
	ta, _ := a.Lookup("ticket:create")
	tc, _ := changed.Lookup("ticket:create")
	if ta.Version == tc.Version {
		t.Error("an edited entry kept its version")
	}
}

// BenchmarkDecide measures the policy decision and lifetime of one
// exchange.
func BenchmarkDecide(b *testing.B) {
	c := testCatalog()
	subject := &Subject{ID: "corp|alice", Groups: []string{"staff", "employees"}, ExpiresAt: time.Now().Add(time.Hour)}
	now := time.Now()
	for b.Loop() {
		action, _ := c.Lookup("ticket:create")
		if e := decide(subject, action); e != nil {
			b.Fatal(e)
		}
		_ = lifetime(now, action, 15*time.Minute, subject.ExpiresAt)
	}
}
