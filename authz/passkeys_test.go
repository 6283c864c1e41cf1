package authz_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/stepup"
	"github.com/sotto-auth/sotto/storage"
)

// TestPasskeyStepUpEndToEnd registers a passkey, completes the challenge
// of a step_up: passkey action with an assertion, and gets the token
// with the passkey's acr, amr and auth_time, once.
func TestPasskeyStepUpEndToEnd(t *testing.T) {
	ts := newPasskeyServer(t)
	dev := newDevice(t)
	key := newAuthenticator(t, ts)
	alice := ts.managerToken("alice")

	if got := ts.register(key, alice, flagUP|flagUV); got.status != http.StatusCreated {
		t.Fatalf("register: status %d, body %v", got.status, got.body)
	}
	list := ts.getWith(stepup.PathPasskeys, bearer(alice))
	passkeys, _ := list.body["passkeys"].([]any)
	if list.status != http.StatusOK || len(passkeys) != 1 {
		t.Fatalf("list: status %d, body %v; want one passkey", list.status, list.body)
	}
	if got := passkeys[0].(map[string]any)["id"]; got != key.id() {
		t.Errorf("listed passkey id = %v, want %s", got, key.id())
	}

	form := ts.expenseForm(alice)
	first := ts.exchange(dev, form)
	if first.str("error") != "insufficient_user_authentication" || first.str("acr_values") != "urn:sotto:acr:passkey" {
		t.Fatalf("first exchange: status %d, body %v; want insufficient_user_authentication for passkey", first.status, first.body)
	}
	obj := stepUpObject(t, first)
	id, _ := obj["challenge_id"].(string)
	if methods, _ := obj["methods"].([]any); len(methods) != 1 || methods[0] != "passkey" {
		t.Errorf("methods = %v, want [passkey]", obj["methods"])
	}
	if u, _ := obj["passkey_url"].(string); u != ts.issuer+stepup.PathPasskeyPage+"#"+id {
		t.Errorf("passkey_url = %q, want the page with the challenge ID as fragment", u)
	}

	opts := ts.passkeyOptions(id)
	if opts.status != http.StatusOK {
		t.Fatalf("options: status %d, body %v", opts.status, opts.body)
	}
	pk := opts.body["publicKey"].(map[string]any)
	if pk["userVerification"] != "required" || pk["rpId"] != "localhost" {
		t.Errorf("options userVerification, rpId = %v, %v; want required, localhost", pk["userVerification"], pk["rpId"])
	}
	shown := opts.body["challenge"].(map[string]any)
	for _, want := range []string{"Approve an expense report", "https://erp.corp.example", "voice-assistant", dev.jkt[:8]} {
		if text, _ := shown["text"].(string); !strings.Contains(text, want) {
			t.Errorf("challenge text %q does not mention %q", text, want)
		}
	}

	if got := ts.retry(dev, form, id); got.str("error") != "authorization_pending" {
		t.Errorf("retry before the assertion: error %q, want authorization_pending", got.str("error"))
	}
	before := time.Now().Add(-time.Second)
	signed := key.sign(pk["challenge"].(string), assertion{})
	csrf := http.Header{stepup.CSRFHeader: {opts.body["csrf_token"].(string)}}
	assertionPath := stepup.PathPasskeyChallenges + "/" + id + "/assertion"
	if got := ts.postJSON(assertionPath, signed, csrf); got.status != http.StatusOK {
		t.Fatalf("assertion: status %d, body %v", got.status, got.body)
	}
	// The same assertion cannot be replayed, and the challenge cannot be
	// approved anew.
	if got := ts.postJSON(assertionPath, signed, csrf); got.status != http.StatusBadRequest || got.str("error") != "invalid_request" {
		t.Errorf("replayed assertion: status %d, error %q; want 400 invalid_request", got.status, got.str("error"))
	}
	if got := ts.passkeyOptions(id); got.status != http.StatusBadRequest {
		t.Errorf("options of an approved challenge: status %d, want 400", got.status)
	}

	time.Sleep(5 * time.Second) // the challenge's interval since the last poll
	issued := ts.retry(dev, form, id)
	if issued.status != http.StatusOK {
		t.Fatalf("retry after the assertion: status %d, body %v", issued.status, issued.body)
	}
	claims := verifyActionToken(t, ts.jwks(), issued.str("access_token"))
	if claims["acr"] != "urn:sotto:acr:passkey" {
		t.Errorf("acr = %v, want urn:sotto:acr:passkey", claims["acr"])
	}
	amr, _ := claims["amr"].([]any)
	if !slices.Equal(amr, []any{"hwk", "mfa", "user"}) {
		t.Errorf("amr = %v, want [hwk mfa user] for a device-bound passkey with user verification", claims["amr"])
	}
	if at, _ := claims["auth_time"].(float64); time.Unix(int64(at), 0).Before(before) {
		t.Errorf("auth_time = %v, want the time of the assertion", claims["auth_time"])
	}
	if got := ts.retry(dev, form, id); got.str("error") != "invalid_grant" {
		t.Errorf("reuse of the challenge: error %q, want invalid_grant", got.str("error"))
	}

	assertRecord(t, ts, audit.DecisionEnrolled, "passkey_registered", key.id())
	assertRecord(t, ts, audit.DecisionApproved, "passkey_approved", key.id())
	assertRecord(t, ts, audit.DecisionRefused, "passkey_challenge_decided", key.id())
	stored, _ := ts.store.Passkey(context.Background(), key.id())
	if stored == nil || stored.LastUsedAt == nil || stored.SignCount != key.counter {
		t.Errorf("stored passkey %+v, want last_used_at set and sign count %d", stored, key.counter)
	}
}

// TestPasskeyAssertionRefusals covers each rule an assertion must pass.
// Every case gets a fresh challenge, and the refusal is recorded.
func TestPasskeyAssertionRefusals(t *testing.T) {
	ts := newPasskeyServer(t)
	alice := ts.managerToken("alice")
	key := newAuthenticator(t, ts)
	if got := ts.register(key, alice, flagUP|flagUV); got.status != http.StatusCreated {
		t.Fatalf("register: status %d, body %v", got.status, got.body)
	}
	bobKey := newAuthenticator(t, ts)
	if got := ts.register(bobKey, ts.managerToken("bob"), flagUP|flagUV); got.status != http.StatusCreated {
		t.Fatalf("register bob: status %d, body %v", got.status, got.body)
	}
	otherID := ts.passkeyChallengeID(newDevice(t), ts.expenseForm(alice))
	otherChallenge := ts.passkeyOptions(otherID).body["publicKey"].(map[string]any)["challenge"].(string)

	cases := []struct {
		name   string
		key    *authenticator
		o      assertion
		reason string
	}{
		{"user verification not set", key, assertion{flags: flagUP}, "passkey_user_verification"},
		{"user presence not set", key, assertion{flags: flagUV}, "passkey_user_presence"},
		{"wrong origin", key, assertion{origin: "http://localhost:1"}, "passkey_origin"},
		{"wrong RP ID hash", key, assertion{rpID: "evil.example"}, "passkey_rp_id"},
		{"assertion for another challenge", key, assertion{challenge: otherChallenge}, "passkey_challenge_mismatch"},
		{"registration type", key, assertion{typ: "webauthn.create"}, "passkey_client_data_type"},
		{"another user's credential", bobKey, assertion{}, "passkey_wrong_user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := ts.passkeyChallengeID(newDevice(t), ts.expenseForm(alice))
			got := ts.approveWithPasskey(tc.key, id, tc.o)
			if got.status != http.StatusForbidden || got.str("error") != "access_denied" {
				t.Errorf("status %d, error %q; want 403 access_denied", got.status, got.str("error"))
			}
			assertRecord(t, ts, audit.DecisionRefused, tc.reason, tc.key.id())
			if c, _ := ts.store.StepUpChallenge(context.Background(), id); c.Status != storage.ChallengePending {
				t.Errorf("challenge status = %s after a refused assertion, want pending", c.Status)
			}
		})
	}

	t.Run("bad signature", func(t *testing.T) {
		id := ts.passkeyChallengeID(newDevice(t), ts.expenseForm(alice))
		forged := *key
		forged.key = otherKey(t)
		got := ts.approveWithPasskey(&forged, id, assertion{})
		if got.status != http.StatusForbidden {
			t.Errorf("status %d, body %v; want 403", got.status, got.body)
		}
		assertRecord(t, ts, audit.DecisionRefused, "passkey_assertion_invalid", key.id())
	})
	t.Run("missing CSRF token", func(t *testing.T) {
		id := ts.passkeyChallengeID(newDevice(t), ts.expenseForm(alice))
		challenge := ts.passkeyOptions(id).body["publicKey"].(map[string]any)["challenge"].(string)
		got := ts.postJSON(stepup.PathPasskeyChallenges+"/"+id+"/assertion", key.sign(challenge, assertion{}), nil)
		if got.status != http.StatusForbidden || !strings.Contains(got.str("error_description"), "X-Sotto-CSRF") {
			t.Errorf("status %d, body %v; want 403 naming the CSRF header", got.status, got.body)
		}
	})
	t.Run("CSRF token of another challenge", func(t *testing.T) {
		id := ts.passkeyChallengeID(newDevice(t), ts.expenseForm(alice))
		opts := ts.passkeyOptions(id)
		challenge := opts.body["publicKey"].(map[string]any)["challenge"].(string)
		otherToken := ts.passkeyOptions(otherID).body["csrf_token"].(string)
		got := ts.postJSON(stepup.PathPasskeyChallenges+"/"+id+"/assertion", key.sign(challenge, assertion{}),
			http.Header{stepup.CSRFHeader: {otherToken}})
		if got.status != http.StatusForbidden {
			t.Errorf("status %d, body %v; want 403", got.status, got.body)
		}
	})
	t.Run("page of another origin", func(t *testing.T) {
		id := ts.passkeyChallengeID(newDevice(t), ts.expenseForm(alice))
		opts := ts.passkeyOptions(id)
		challenge := opts.body["publicKey"].(map[string]any)["challenge"].(string)
		got := ts.postJSON(stepup.PathPasskeyChallenges+"/"+id+"/assertion", key.sign(challenge, assertion{}),
			http.Header{stepup.CSRFHeader: {opts.body["csrf_token"].(string)}, "Origin": {"https://evil.example"}})
		if got.status != http.StatusForbidden || got.str("error") != "access_denied" {
			t.Errorf("status %d, body %v; want 403 access_denied", got.status, got.body)
		}
	})
	t.Run("push-only challenge", func(t *testing.T) {
		phone := newApprover(t)
		ts.enroll(phone, alice)
		obj := stepUpObject(t, ts.exchange(newDevice(t), ts.travelForm(travelDetails)))
		got := ts.passkeyOptions(obj["challenge_id"].(string))
		if got.status != http.StatusBadRequest || got.str("error") != "invalid_request" {
			t.Errorf("status %d, body %v; want 400 invalid_request", got.status, got.body)
		}
	})
}

// TestPasskeyCounterRegression checks WebAuthn Level 3, Section 7.2,
// step 22: a counter that does not grow is refused, recorded and flags
// the credential, which is refused afterwards even with a good counter.
func TestPasskeyCounterRegression(t *testing.T) {
	ts := newPasskeyServer(t)
	alice := ts.managerToken("alice")
	key := newAuthenticator(t, ts)
	if got := ts.register(key, alice, flagUP|flagUV); got.status != http.StatusCreated {
		t.Fatalf("register: status %d, body %v", got.status, got.body)
	}

	id := ts.passkeyChallengeID(newDevice(t), ts.expenseForm(alice))
	if got := ts.approveWithPasskey(key, id, assertion{counter: 7}); got.status != http.StatusOK {
		t.Fatalf("assertion with counter 7: status %d, body %v", got.status, got.body)
	}

	id = ts.passkeyChallengeID(newDevice(t), ts.expenseForm(alice))
	got := ts.approveWithPasskey(key, id, assertion{counter: 7})
	if got.status != http.StatusForbidden || !strings.Contains(got.str("error_description"), "counter") {
		t.Fatalf("assertion with counter 7 again: status %d, body %v; want 403 about the counter", got.status, got.body)
	}
	assertAlert(t, ts, "passkey_counter_regression")
	stored, err := ts.store.Passkey(context.Background(), key.id())
	if err != nil {
		t.Fatal(err)
	}
	if stored.FlaggedAt == nil || stored.SignCount != 7 {
		t.Errorf("credential flagged_at %v, sign count %d; want flagged with count 7", stored.FlaggedAt, stored.SignCount)
	}
	if c, _ := ts.store.StepUpChallenge(context.Background(), id); c.Status != storage.ChallengePending {
		t.Errorf("challenge status = %s, want pending", c.Status)
	}

	id = ts.passkeyChallengeID(newDevice(t), ts.expenseForm(alice))
	if got := ts.approveWithPasskey(key, id, assertion{counter: 50}); got.status != http.StatusForbidden {
		t.Errorf("flagged credential: status %d, body %v; want 403", got.status, got.body)
	}
	assertRecord(t, ts, audit.DecisionRefused, "passkey_flagged", key.id())
	list := ts.getWith(stepup.PathPasskeys, bearer(alice))
	if p := list.body["passkeys"].([]any)[0].(map[string]any); p["flagged_at"] == nil {
		t.Errorf("listed passkey %v has no flagged_at", p)
	}
}

// TestPasskeyManagement covers registration rules, listing and removal.
func TestPasskeyManagement(t *testing.T) {
	ts := newPasskeyServer(t)
	alice, bob := ts.managerToken("alice"), ts.managerToken("bob")
	key := newAuthenticator(t, ts)

	t.Run("registration without user verification", func(t *testing.T) {
		got := ts.register(newAuthenticator(t, ts), alice, flagUP)
		if got.status != http.StatusForbidden {
			t.Errorf("status %d, body %v; want 403", got.status, got.body)
		}
	})
	t.Run("registration without ID token", func(t *testing.T) {
		got := ts.postJSON(stepup.PathPasskeyRegistrations, map[string]any{}, nil)
		if got.status != http.StatusUnauthorized || got.str("error") != "invalid_token" {
			t.Errorf("status %d, body %v; want 401 invalid_token", got.status, got.body)
		}
		if got.header.Get("WWW-Authenticate") == "" {
			t.Error("no WWW-Authenticate header (RFC 6750, Section 3)")
		}
	})
	t.Run("registration with an untrusted ID token", func(t *testing.T) {
		got := ts.postJSON(stepup.PathPasskeyRegistrations, map[string]any{}, bearer(ts.idToken(map[string]any{"iss": "https://evil.example"})))
		if got.status != http.StatusUnauthorized {
			t.Errorf("status %d, body %v; want 401", got.status, got.body)
		}
	})
	if got := ts.register(key, alice, flagUP|flagUV); got.status != http.StatusCreated {
		t.Fatalf("register: status %d, body %v", got.status, got.body)
	}
	t.Run("same credential again", func(t *testing.T) {
		got := ts.register(key, alice, flagUP|flagUV)
		if got.status != http.StatusBadRequest || got.str("error") != "invalid_request" {
			t.Errorf("status %d, body %v; want 400 invalid_request", got.status, got.body)
		}
	})
	t.Run("another user lists nothing", func(t *testing.T) {
		got := ts.getWith(stepup.PathPasskeys, bearer(bob))
		if list, _ := got.body["passkeys"].([]any); got.status != http.StatusOK || len(list) != 0 {
			t.Errorf("status %d, body %v; want an empty list", got.status, got.body)
		}
	})
	t.Run("another user cannot remove it", func(t *testing.T) {
		got := ts.deleteWith(stepup.PathPasskeys+"/"+key.id(), bearer(bob))
		if got.status != http.StatusNotFound {
			t.Errorf("status %d, body %v; want 404", got.status, got.body)
		}
	})

	if got := ts.deleteWith(stepup.PathPasskeys+"/"+key.id(), bearer(alice)); got.status != http.StatusNoContent {
		t.Fatalf("remove: status %d, body %v; want 204", got.status, got.body)
	}
	assertRecord(t, ts, audit.DecisionRevoked, "passkey_removed", key.id())

	t.Run("removed credential", func(t *testing.T) {
		id := ts.passkeyChallengeID(newDevice(t), ts.expenseForm(alice))
		got := ts.approveWithPasskey(key, id, assertion{})
		if got.status != http.StatusForbidden || !strings.Contains(got.str("error_description"), "removed") {
			t.Errorf("status %d, body %v; want 403 saying the passkey was removed", got.status, got.body)
		}
		assertRecord(t, ts, audit.DecisionRefused, "passkey_unknown", key.id())
	})
}

// TestPasskeyPageHeaders checks the page's strict Content-Security-Policy
// and that its script and style come from this origin.
func TestPasskeyPageHeaders(t *testing.T) {
	ts := newPasskeyServer(t)
	for _, path := range []string{stepup.PathPasskeyPage, stepup.PathPasskeyStatic + "/passkey.js", stepup.PathPasskeyStatic + "/passkey.css"} {
		resp, err := http.Get(ts.issuer + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", path, resp.StatusCode)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("GET %s: Content-Security-Policy allows inline code", path)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no X-Content-Type-Options nosniff", path)
		}
	}
	page := getBody(t, ts.issuer+stepup.PathPasskeyPage)
	for _, bad := range []string{"<script>", "style=", "<style", "http://", "https://"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page contains %q: inline code or an asset of another origin", bad)
		}
	}
}

// assertRecord fails unless an audit record has decision, reason and
// approver.
func assertRecord(t *testing.T, ts *testServer, d audit.Decision, reason, approver string) {
	t.Helper()
	records, _ := ts.store.AuditRecords(context.Background(), storage.AuditFilter{})
	for _, r := range records {
		if r.Decision == d && r.Reason == reason && r.Approver == approver && r.StepUpMethod == "passkey" {
			return
		}
	}
	t.Errorf("no passkey audit record with decision %s, reason %s, approver %s", d, reason, approver)
}

func (ts *testServer) getWith(path string, header http.Header) response {
	ts.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.issuer+path, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	return ts.do(req)
}

func (ts *testServer) deleteWith(path string, header http.Header) response {
	ts.t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, ts.issuer+path, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	return ts.do(req)
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
