package authz_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/storage"
)

// scrape fetches url with the bearer token, if any, and returns the status
// and body.
func scrape(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestMetricsCountExchanges(t *testing.T) {
	ts := newTestServer(t, "", "")
	admin := httptest.NewServer(ts.srv.AdminHandler("scrape-token"))
	t.Cleanup(admin.Close)
	dev := newDevice(t)

	ok := ts.exchange(dev, ts.exchangeForm(ts.idToken(nil)))
	if ok.status != http.StatusOK {
		t.Fatalf("exchange status = %d, body %v; want 200", ok.status, ok.body)
	}
	// The same proof twice: issued once, then rejected as a replay.
	proof := dev.proof("POST", ts.issuer+authz.PathToken, nil)
	for range 2 {
		ts.post(authz.PathToken, ts.exchangeForm(ts.idToken(nil)), http.Header{"DPoP": {proof}})
	}
	ts.introspect(ok.str("access_token"))

	status, body := scrape(t, admin.URL+authz.PathMetrics, "scrape-token")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics status = %d, want 200", status)
	}
	for _, line := range []string{
		`sotto_exchange_decisions_total{decision="issued",reason=""} 2`,
		`sotto_exchange_decisions_total{decision="refused",reason="dpop_replay"} 1`,
		`sotto_dpop_refusals_total{reason="dpop_replay"} 1`,
		`sotto_dpop_replays_total 1`,
		`sotto_introspections_total{result="active"} 1`,
		`sotto_exchange_duration_seconds_count{decision="issued"} 2`,
		`sotto_catalog_info{version="` + ts.srv.Catalog().Version + `"} 1`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("metrics lack the line %s", line)
		}
	}
	for _, identifier := range []string{"alice", dev.jkt, "voice-assistant"} {
		if strings.Contains(body, identifier) {
			t.Errorf("metrics contain the identifier %q", identifier)
		}
	}
}

func TestMetricsRequireBearerToken(t *testing.T) {
	ts := newTestServer(t, "", "")
	admin := httptest.NewServer(ts.srv.AdminHandler("scrape-token"))
	t.Cleanup(admin.Close)

	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "scrape-tokeN", http.StatusUnauthorized},
		{"longer token", "scrape-token-and-more", http.StatusUnauthorized},
		{"right token", "scrape-token", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if status, _ := scrape(t, admin.URL+authz.PathMetrics, tc.token); status != tc.status {
				t.Errorf("GET /metrics status = %d, want %d", status, tc.status)
			}
		})
	}
	if status, _ := scrape(t, admin.URL+authz.PathHealth, ""); status != http.StatusOK {
		t.Errorf("GET /healthz on the admin listener without a token: status %d, want 200", status)
	}
}

func TestReadyFailsWhenDatabaseClosed(t *testing.T) {
	ts := newTestServer(t, "", "")
	admin := httptest.NewServer(ts.srv.AdminHandler(""))
	t.Cleanup(admin.Close)

	for _, url := range []string{ts.issuer + authz.PathReady, admin.URL + authz.PathReady} {
		if status, body := scrape(t, url, ""); status != http.StatusOK {
			t.Errorf("GET %s with the database open: status %d body %s, want 200", url, status, body)
		}
	}
	if status, _ := scrape(t, admin.URL+authz.PathMetrics, ""); status != http.StatusOK {
		t.Errorf("GET /metrics with no token configured: status %d, want 200", status)
	}

	if err := ts.store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{ts.issuer + authz.PathReady, admin.URL + authz.PathReady} {
		status, body := scrape(t, url, "")
		if status != http.StatusServiceUnavailable {
			t.Errorf("GET %s with the database closed: status %d, want 503", url, status)
		}
		if !strings.Contains(body, `"database":"unreachable"`) {
			t.Errorf("GET %s with the database closed: body %s does not name the database", url, body)
		}
	}
}

func TestContextStoredOnlyAsHash(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	const said = "create a ticket: the printer on floor 3 is jammed"

	form := ts.exchangeForm(ts.idToken(nil))
	form.Set("sotto_context", said)
	if got := ts.exchange(dev, form); got.status != http.StatusOK {
		t.Fatalf("exchange status = %d, body %v; want 200", got.status, got.body)
	}

	records, err := ts.store.AuditRecords(context.Background(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 1 {
		t.Fatalf("got %d audit records, want 1", len(records))
	}
	sum := sha256.Sum256([]byte(said))
	if got, want := records[0].ContextHash, hex.EncodeToString(sum[:]); got != want {
		t.Errorf("context hash = %q, want %q", got, want)
	}
	var lines strings.Builder
	if err := audit.WriteJSONLines(&lines, records); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(lines.String(), "printer") {
		t.Errorf("audit record contains the context text: %s", lines.String())
	}
	if records[0].LatencyMicros <= 0 {
		t.Errorf("latency = %d µs, want a positive number", records[0].LatencyMicros)
	}
}
