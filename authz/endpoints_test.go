package authz_test

import (
	"encoding/json"
	"github.com/sotto-auth/sotto/internal/sottotest"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/exchange"
)

// TestMetadata checks the RFC 8414 §2 document.
func TestMetadata(t *testing.T) {
	ts := newTestServer(t, "", "")
	resp, err := http.Get(ts.issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"issuer":                 ts.issuer,
		"token_endpoint":         ts.issuer + authz.PathToken,
		"jwks_uri":               ts.issuer + authz.PathJWKS,
		"introspection_endpoint": ts.issuer + authz.PathIntrospect,
		"revocation_endpoint":    ts.issuer + authz.PathRevoke,
	} {
		if md[key] != want {
			t.Errorf("metadata %s = %v, want %s", key, md[key], want)
		}
	}
	for key, want := range map[string]string{
		"grant_types_supported":                 exchange.GrantType,
		"dpop_signing_alg_values_supported":     "ES256",
		"token_endpoint_auth_methods_supported": "client_secret_basic",
		"scopes_supported":                      "ticket:create",
	} {
		list, _ := md[key].([]any)
		found := false
		for _, v := range list {
			found = found || v == want
		}
		if !found {
			t.Errorf("metadata %s = %v, want it to contain %s", key, md[key], want)
		}
	}
	if _, ok := md["response_types_supported"]; !ok {
		t.Error("metadata lacks response_types_supported, which RFC 8414 §2 requires")
	}
}

// TestIssuerWithPath checks that an issuer with a path serves its
// endpoints under the path and its metadata at the RFC 8414 §3 location,
// and that DPoP htu is checked against the path.
func TestIssuerWithPath(t *testing.T) {
	dir := sottotest.CopyExamples(t, filepath.Join("..", "examples"))
	t.Setenv("SOTTO_TEST_ISSUER_PATH", "/sotto/")
	ts := newTestServer(t, dir, "")

	resp, err := http.Get("http://" + ts.addr + "/.well-known/oauth-authorization-server/sotto")
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || md["issuer"] != ts.issuer {
		t.Fatalf("metadata at the RFC 8414 §3 location: status %d, issuer %v; want 200 and %s", resp.StatusCode, md["issuer"], ts.issuer)
	}
	if !strings.HasSuffix(ts.issuer, "/sotto") {
		t.Fatalf("issuer %q, want the trailing slash removed and the path kept", ts.issuer)
	}

	dev := newDevice(t)
	got := ts.exchange(dev, ts.exchangeForm(ts.idToken(nil)))
	if got.status != http.StatusOK {
		t.Fatalf("exchange under the issuer path: status %d, body %v", got.status, got.body)
	}
	wrong := ts.post(authz.PathToken, ts.exchangeForm(ts.idToken(nil)), http.Header{
		"DPoP": {dev.proof("POST", "http://"+ts.addr+authz.PathToken, nil)},
	})
	if wrong.str("error") != "invalid_dpop_proof" {
		t.Errorf("proof for the URI without the issuer path: error %q, want invalid_dpop_proof", wrong.str("error"))
	}
}

// TestRevocationRules checks RFC 7009 §2.1 and §2.2.
func TestRevocationRules(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	got := ts.exchange(dev, ts.exchangeForm(ts.idToken(nil)))
	token := got.str("access_token")
	if token == "" {
		t.Fatalf("exchange failed: %v", got.body)
	}

	other := ts.post(authz.PathRevoke, url.Values{"token": {token}}, http.Header{
		"Authorization": {"Basic aXRzbS1jb25uZWN0b3I6aXRzbS1jb25uZWN0b3ItZGV2LXNlY3JldA=="},
	})
	if other.status != http.StatusBadRequest || other.str("error") != "unauthorized_client" {
		t.Errorf("revocation by another client: status %d error %q, want 400 unauthorized_client", other.status, other.str("error"))
	}
	if intro := ts.introspect(token); intro.body["active"] != true {
		t.Errorf("token after a refused revocation: %v, want still active", intro.body)
	}

	unknown := ts.post(authz.PathRevoke, url.Values{"token": {"not-a-token"}, "client_id": {"voice-assistant"}}, nil)
	if unknown.status != http.StatusOK {
		t.Errorf("revocation of an unknown token: status %d, want 200 (RFC 7009 §2.2)", unknown.status)
	}
	missing := ts.post(authz.PathRevoke, url.Values{"client_id": {"voice-assistant"}}, nil)
	if missing.str("error") != "invalid_request" {
		t.Errorf("revocation without token: error %q, want invalid_request", missing.str("error"))
	}
	stranger := ts.post(authz.PathRevoke, url.Values{"token": {token}, "client_id": {"stranger"}}, nil)
	if stranger.status != http.StatusUnauthorized || stranger.str("error") != "invalid_client" {
		t.Errorf("revocation by an unknown client: status %d error %q, want 401 invalid_client", stranger.status, stranger.str("error"))
	}
}

// TestIntrospectionRules checks who may introspect and what they see.
func TestIntrospectionRules(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	ticket := ts.exchange(dev, ts.exchangeForm(ts.idToken(nil))).str("access_token")
	calendarForm := ts.exchangeForm(ts.idToken(nil))
	calendarForm.Set("scope", "calendar:read")
	calendarForm.Del("audience")
	calendar := ts.exchange(dev, calendarForm).str("access_token")
	if ticket == "" || calendar == "" {
		t.Fatal("exchange failed")
	}

	if got := ts.introspect(calendar); len(got.body) != 1 || got.body["active"] != false {
		t.Errorf("introspection of another audience's token = %v, want exactly {active: false} (RFC 7662 §4)", got.body)
	}

	tests := []struct {
		name       string
		header     http.Header
		form       url.Values
		wantStatus int
	}{
		{"no client authentication is 401", nil, url.Values{"token": {ticket}}, 401},
		{"a bearer token is not client authentication", http.Header{"Authorization": {"Bearer " + ticket}}, url.Values{"token": {ticket}}, 401},
		{"a public client may not introspect", nil, url.Values{"token": {ticket}, "client_id": {"voice-assistant"}}, 401},
		{"a wrong secret is 401", http.Header{"Authorization": {"Basic aXRzbS1jb25uZWN0b3I6d3Jvbmc="}}, url.Values{"token": {ticket}}, 401},
		{"client_secret_post is accepted", nil, url.Values{"token": {ticket}, "client_id": {"itsm-connector"}, "client_secret": {"itsm-connector-dev-secret"}}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ts.post(authz.PathIntrospect, tt.form, tt.header)
			if got.status != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %v)", got.status, tt.wantStatus, got.body)
			}
			if tt.wantStatus == 401 && got.str("error") != "invalid_client" {
				t.Errorf("error = %q, want invalid_client", got.str("error"))
			}
		})
	}
}
