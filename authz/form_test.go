package authz

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sotto-auth/sotto/internal/oauth"
)

func TestParseForm(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		contentType string
		target      string
		body        string
		wantReason  string
	}{
		{"plain form is accepted", "POST", "application/x-www-form-urlencoded", "/t", "a=1&b=2", ""},
		{"charset parameter is accepted", "POST", "application/x-www-form-urlencoded; charset=UTF-8", "/t", "a=1", ""},
		{"repeated audience is accepted (RFC 8693 §2.1)", "POST", "application/x-www-form-urlencoded", "/t", "audience=a&audience=b", ""},
		{"repeated resource is accepted (RFC 8707 §2)", "POST", "application/x-www-form-urlencoded", "/t", "resource=a&resource=b", ""},
		{"repeated scope is refused (RFC 6749 §3.2)", "POST", "application/x-www-form-urlencoded", "/t", "scope=a&scope=b", "parameter_repeated"},
		{"GET is refused", "GET", "", "/t", "", "method_not_post"},
		{"JSON body is refused", "POST", "application/json", "/t", `{"a":1}`, "content_type"},
		{"missing content type is refused", "POST", "", "/t", "a=1", "content_type"},
		{"query parameters are refused", "POST", "application/x-www-form-urlencoded", "/t?scope=x", "a=1", "query_parameters"},
		{"bad percent-encoding is refused", "POST", "application/x-www-form-urlencoded", "/t", "a=%zz", "body_malformed"},
		{"oversized body is refused", "POST", "application/x-www-form-urlencoded", "/t", "a=" + strings.Repeat("x", 2000), "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			_, err := parseForm(r, 1024)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("parseForm: %v, want no error", err)
				}
				return
			}
			e := oauth.From(err)
			if e.Reason != tt.wantReason {
				t.Errorf("reason = %q, want %q (error %v)", e.Reason, tt.wantReason, err)
			}
			if e.Status >= http.StatusInternalServerError {
				t.Errorf("status = %d, want a client error", e.Status)
			}
		})
	}
}

// FuzzParseForm checks that no body makes the form parser panic, and that
// an accepted form never repeats a parameter other than audience and
// resource.
func FuzzParseForm(f *testing.F) {
	f.Add("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&scope=ticket:create")
	f.Add("audience=a&audience=b&resource=c")
	f.Add("a=%zz&&==&;")
	f.Add(strings.Repeat("a=1&", 100))
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		form, err := parseForm(r, 4096)
		if err != nil {
			if e := oauth.From(err); e.Status >= http.StatusInternalServerError {
				t.Fatalf("status %d for body %q", e.Status, body)
			}
			return
		}
		for name, values := range form {
			if len(values) > 1 && !repeatable[name] {
				t.Fatalf("accepted repeated parameter %q", name)
			}
		}
	})
}
