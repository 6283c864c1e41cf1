package authz_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/storage"
)

// TestExchangeEndToEnd runs the main job over real HTTP: exchange a
// corporate ID token with a DPoP proof, verify the action token against
// the JWKS, introspect and revoke it, then restart the server on the same
// database and check that keys, the revocation and the replay records
// survived.
func TestExchangeEndToEnd(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	subject := ts.idToken(nil)

	proof := dev.proof("POST", ts.issuer+authz.PathToken, nil)
	got := ts.post(authz.PathToken, ts.exchangeForm(subject), http.Header{"DPoP": {proof}})
	if got.status != http.StatusOK {
		t.Fatalf("exchange status = %d, body %v; want 200", got.status, got.body)
	}
	if cc := got.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store (RFC 6749 §5.1)", cc)
	}
	for key, want := range map[string]string{
		"token_type":        "DPoP",
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"scope":             "ticket:create",
	} {
		if got.str(key) != want {
			t.Errorf("response %s = %q, want %q", key, got.str(key), want)
		}
	}
	if _, ok := got.body["refresh_token"]; ok {
		t.Error("response has a refresh_token; an action token exchange issues none")
	}
	expiresIn, _ := got.body["expires_in"].(float64)
	if expiresIn < 290 || expiresIn > 300 {
		t.Errorf("expires_in = %v, want about 300 (the action's max_ttl of 5m)", expiresIn)
	}
	token := got.str("access_token")

	set := ts.jwks()
	claims := verifyActionToken(t, set, token)
	for key, want := range map[string]any{
		"iss":       ts.issuer,
		"sub":       "sso.corp.example|alice",
		"aud":       "https://itsm.corp.example",
		"client_id": "voice-assistant",
		"scope":     "ticket:create",
		"acr":       "urn:corp:acr:mfa",
	} {
		if claims[key] != want {
			t.Errorf("claim %s = %v, want %v", key, claims[key], want)
		}
	}
	cnf, _ := claims["cnf"].(map[string]any)
	if cnf["jkt"] != dev.jkt {
		t.Errorf("cnf.jkt = %v, want the device key thumbprint %s", cnf["jkt"], dev.jkt)
	}
	for _, key := range []string{"exp", "iat", "jti", "auth_time", "sotto_parent"} {
		if _, ok := claims[key]; !ok {
			t.Errorf("claim %s is missing", key)
		}
	}

	intro := ts.introspect(token)
	if intro.body["active"] != true {
		t.Fatalf("introspection = %v, want active", intro.body)
	}
	if intro.str("token_type") != "DPoP" || intro.str("jti") != claims["jti"] {
		t.Errorf("introspection token_type %q jti %q, want DPoP and %v", intro.str("token_type"), intro.str("jti"), claims["jti"])
	}
	if c, _ := intro.body["cnf"].(map[string]any); c["jkt"] != dev.jkt {
		t.Errorf("introspection cnf = %v, want jkt %s (RFC 9449 §6.2)", intro.body["cnf"], dev.jkt)
	}

	rev := ts.post(authz.PathRevoke, url.Values{
		"token": {token}, "token_type_hint": {"access_token"}, "client_id": {"voice-assistant"},
	}, nil)
	if rev.status != http.StatusOK {
		t.Fatalf("revocation status = %d, body %v; want 200", rev.status, rev.body)
	}
	if intro := ts.introspect(token); len(intro.body) != 1 || intro.body["active"] != false {
		t.Errorf("introspection after revocation = %v, want exactly {active: false}", intro.body)
	}

	// Restart on the same database and listener address.
	kid := set.Keys[0].KeyID
	dir, addr := ts.dir, ts.addr
	ts.stop()
	ts = newTestServer(t, dir, addr)

	if set := ts.jwks(); len(set.Keys) != 1 || set.Keys[0].KeyID != kid {
		t.Errorf("JWKS after restart has keys %v, want the same key %s", set.Keys, kid)
	}
	if intro := ts.introspect(token); intro.body["active"] != false {
		t.Errorf("introspection after restart = %v, want inactive: a revocation must survive a restart", intro.body)
	}
	replay := ts.post(authz.PathToken, ts.exchangeForm(subject), http.Header{"DPoP": {proof}})
	if replay.status != http.StatusBadRequest || replay.str("error") != "invalid_dpop_proof" {
		t.Errorf("replayed proof after restart: status %d body %v, want 400 invalid_dpop_proof", replay.status, replay.body)
	}

	records, err := ts.store.AuditRecords(context.Background(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var decisions []audit.Decision
	for _, r := range records {
		decisions = append(decisions, r.Decision)
	}
	want := []audit.Decision{
		audit.DecisionIssued, audit.DecisionActive, audit.DecisionRevoked,
		audit.DecisionInactive, audit.DecisionInactive, audit.DecisionRefused,
	}
	if len(decisions) != len(want) {
		t.Fatalf("audit decisions = %v, want %v", decisions, want)
	}
	for i := range want {
		if decisions[i] != want[i] {
			t.Errorf("audit record %d decision = %s, want %s", i, decisions[i], want[i])
		}
	}
	issued := records[0]
	if issued.TokenID != claims["jti"] || issued.DeviceJKT != dev.jkt || issued.Subject != "sso.corp.example|alice" ||
		issued.Action != "ticket:create" || issued.CatalogEntry == "" || issued.TokenExpiresAt.Before(time.Now()) {
		t.Errorf("issued audit record = %+v, want token id, device, subject, action and catalog entry", issued)
	}
	if records[5].Reason != "dpop_replay" {
		t.Errorf("replay audit reason = %q, want dpop_replay", records[5].Reason)
	}
	for _, i := range []int{1, 3, 4} {
		if r := records[i]; r.Event != audit.EventIntrospection || r.TokenID != claims["jti"] || r.ClientID != "itsm-connector" {
			t.Errorf("introspection audit record %d = %+v, want event token_introspection, the token id and the connector", i, r)
		}
	}
	if records[3].Reason != "revoked" {
		t.Errorf("introspection after revocation has reason %q, want revoked", records[3].Reason)
	}
	report, err := ts.store.VerifyAuditChain(context.Background(), storage.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if report.Problem != nil {
		t.Errorf("audit chain after the run: %v", report.Problem)
	}
}
