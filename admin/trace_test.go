package admin_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sotto-auth/sotto/authz"
)

// TestAuditTrace checks that the trace of a token names the exchange that
// issued it and its revocation, and hides the token's stored hash.
func TestAuditTrace(t *testing.T) {
	in := startInstance(t, newDir(t), instanceOptions{})
	dev := newDevice(t)
	got := in.exchange(dev, idToken(t, "alice", []string{"employees"}))
	token := got.str("access_token")
	if token == "" {
		t.Fatalf("exchange failed: %s", got.raw)
	}
	claims := struct{ ID string }{tokenID(t, token)}

	root := in.rootToken()
	if r := in.call(http.MethodPost, "/v1/revocations", root, map[string]any{"subject": "sso.corp.example|alice"}, nil); r.status != http.StatusOK {
		t.Fatalf("revocation: status %d %s", r.status, r.raw)
	}

	trace := in.call(http.MethodGet, "/v1/audit/trace/"+claims.ID, root, nil, nil)
	if trace.status != http.StatusOK {
		t.Fatalf("trace: status %d %s", trace.status, trace.raw)
	}
	tokens, _ := trace.body["tokens"].([]any)
	if len(tokens) != 1 {
		t.Fatalf("trace has %d tokens, want 1: %s", len(tokens), trace.raw)
	}
	tok := tokens[0].(map[string]any)
	if tok["token_id"] != claims.ID || tok["revoked_at"] == nil {
		t.Errorf("trace token = %v, want %s revoked", tok, claims.ID)
	}
	if _, ok := tok["Signature"]; ok {
		t.Error("trace shows the token's stored hash")
	}
	var decisions []string
	records, _ := trace.body["records"].([]any)
	for _, r := range records {
		decisions = append(decisions, r.(map[string]any)["decision"].(string))
	}
	if len(decisions) < 2 || decisions[0] != "issued" {
		t.Errorf("trace decisions = %v, want the issuance first and the revocation after", decisions)
	}

	if r := in.call(http.MethodGet, "/v1/audit/trace/no-such-id", root, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("trace of an unknown id: status %d, want 404", r.status)
	}
}

// tokenID returns the jti of an action token, read without verifying it.
func tokenID(t *testing.T, token string) string {
	t.Helper()
	p, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parse action token: %v", err)
	}
	var claims struct {
		ID string `json:"jti"`
	}
	if err := p.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	return claims.ID
}

// TestDisabledClientCannotIntrospect checks that a connector whose kill
// switch is on sees no token at introspection.
func TestDisabledClientCannotIntrospect(t *testing.T) {
	in := startInstance(t, newDir(t), instanceOptions{})
	token := in.exchange(newDevice(t), idToken(t, "alice", []string{"employees"})).str("access_token")
	introspect := func() reply {
		req, _ := http.NewRequest(http.MethodPost, in.issuer+authz.PathIntrospect,
			strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("itsm-connector", "itsm-connector-dev-secret")
		return do(t, req)
	}
	if got := introspect(); got.body["active"] != true {
		t.Fatalf("introspection before the kill switch = %s, want active", got.raw)
	}
	if r := in.call(http.MethodPost, "/v1/clients/itsm-connector:disable", in.rootToken(), nil, nil); r.status != http.StatusOK {
		t.Fatalf("disable itsm-connector: status %d %s", r.status, r.raw)
	}
	waitFor(t, func() bool { return introspect().status == http.StatusUnauthorized })
	if got := introspect(); got.str("error") != "invalid_client" {
		t.Errorf("introspection by a disabled client: error %q, want invalid_client", got.str("error"))
	}
}

// waitFor polls cond for up to two seconds, the time a change takes to
// reach a server through its poll.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 2s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
