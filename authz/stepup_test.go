package authz_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/storage"
)

// TestPushStepUpEndToEnd runs push approval over HTTP: enrollment, the
// challenge, polling, the approver's pull and signed approval, the token,
// and the refusal of a second use.
func TestPushStepUpEndToEnd(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	phone := newApprover(t)

	if got := ts.enroll(phone, ts.idToken(nil)); got.status != http.StatusCreated {
		t.Fatalf("enroll: status %d, body %v", got.status, got.body)
	}

	form := ts.travelForm(travelDetails)
	first := ts.exchange(dev, form)
	if first.status != http.StatusBadRequest || first.str("error") != "insufficient_user_authentication" {
		t.Fatalf("first exchange: status %d, body %v; want insufficient_user_authentication", first.status, first.body)
	}
	if first.str("acr_values") != "urn:sotto:acr:push" {
		t.Errorf("acr_values = %q, want urn:sotto:acr:push", first.str("acr_values"))
	}
	if first.body["max_age"] != float64(300) {
		t.Errorf("max_age = %v, want 300", first.body["max_age"])
	}
	obj := stepUpObject(t, first)
	id, _ := obj["challenge_id"].(string)
	if len(id) < 22 {
		t.Errorf("challenge_id %q has fewer than 128 bits", id)
	}
	if methods, _ := obj["methods"].([]any); len(methods) != 1 || methods[0] != "push" {
		t.Errorf("methods = %v, want [push]", obj["methods"])
	}
	if obj["expires_in"] != float64(120) || obj["interval"] != float64(5) {
		t.Errorf("expires_in, interval = %v, %v; want 120, 5", obj["expires_in"], obj["interval"])
	}
	if u, _ := obj["push_url"].(string); !strings.HasPrefix(u, ts.issuer+"/stepup/push/challenges/") {
		t.Errorf("push_url = %q", u)
	}
	if u, _ := obj["passkey_url"].(string); !strings.HasPrefix(u, ts.issuer+"/stepup/passkey") {
		t.Errorf("passkey_url = %q", u)
	}
	spoken := spokenNumber(t, obj)

	if got := ts.retry(dev, form, id); got.str("error") != "authorization_pending" {
		t.Errorf("retry before approval: error %q, want authorization_pending", got.str("error"))
	}
	if got := ts.retry(dev, form, id); got.str("error") != "slow_down" {
		t.Errorf("retry within the interval: error %q, want slow_down", got.str("error"))
	}

	list := ts.pending(phone)
	challenges, _ := list.body["challenges"].([]any)
	if list.status != http.StatusOK || len(challenges) != 1 {
		t.Fatalf("pending: status %d, body %v; want one challenge", list.status, list.body)
	}
	shown := challenges[0].(map[string]any)
	numbers, _ := shown["numbers"].([]any)
	if len(numbers) != 3 || !slices.Contains(numbers, any(float64(spoken))) {
		t.Errorf("numbers shown = %v, want three including the spoken %d", numbers, spoken)
	}
	text, _ := shown["text"].(string)
	for _, want := range []string{"Approve a travel request", "https://erp.corp.example", "amount 120", "currency EUR", "voice-assistant"} {
		if !strings.Contains(text, want) {
			t.Errorf("approver text %q does not mention %q", text, want)
		}
	}
	if shown["device_jkt"] != dev.jkt || shown["client_id"] != "voice-assistant" {
		t.Errorf("approver sees device %v, client %v; want %s, voice-assistant", shown["device_jkt"], shown["client_id"], dev.jkt)
	}

	if got := ts.decide(phone, id, "approve", spoken); got.status != http.StatusOK {
		t.Fatalf("approve: status %d, body %v", got.status, got.body)
	}

	issued := ts.retry(dev, form, id)
	if issued.status != http.StatusOK {
		t.Fatalf("retry after approval: status %d, body %v", issued.status, issued.body)
	}
	claims := verifyActionToken(t, ts.jwks(), issued.str("access_token"))
	if claims["acr"] != "urn:sotto:acr:push" {
		t.Errorf("acr = %v, want urn:sotto:acr:push", claims["acr"])
	}
	if amr, _ := claims["amr"].([]any); len(amr) != 2 || amr[0] != "mca" {
		t.Errorf("amr = %v, want [mca swk]", claims["amr"])
	}
	if at, _ := claims["auth_time"].(float64); time.Since(time.Unix(int64(at), 0)) > time.Minute {
		t.Errorf("auth_time = %v, want the time of the approval", claims["auth_time"])
	}
	details, _ := claims["authorization_details"].([]any)
	if len(details) != 1 || details[0].(map[string]any)["amount"] != float64(120) {
		t.Errorf("authorization_details = %v, want the accepted details", claims["authorization_details"])
	}
	if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != dev.jkt {
		t.Errorf("cnf.jkt = %v, want %s", cnf["jkt"], dev.jkt)
	}

	if got := ts.retry(dev, form, id); got.str("error") != "invalid_grant" || !strings.Contains(got.str("error_description"), "already used") {
		t.Errorf("reuse: error %q (%q), want invalid_grant already used", got.str("error"), got.str("error_description"))
	}

	records, err := ts.store.AuditRecords(context.Background(), storage.AuditFilter{RequestID: first.header.Get("X-Request-Id")})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, r := range records {
		reasons = append(reasons, r.Reason)
		if r.DetailsHash == "" || !strings.Contains(r.AuthorizationDetails, "travel_approval") {
			t.Errorf("record %s lacks the authorization details: %+v", r.Reason, r)
		}
	}
	for _, want := range []string{"step_up_challenge_created", "push_delivered", "push_approved"} {
		if !slices.Contains(reasons, want) {
			t.Errorf("records of the challenge's exchange are %v, want %s among them", reasons, want)
		}
	}
	all, _ := ts.store.AuditRecords(context.Background(), storage.AuditFilter{})
	used := false
	for _, r := range all {
		if r.Decision == audit.DecisionIssued && r.Reason == "step_up_used" && r.Approver == phone.jkt && r.StepUpMethod == "push" {
			used = true
		}
	}
	if !used {
		t.Error("no issued record names the step-up method and the approver device")
	}
}

// TestStepUpRules checks one rule of the challenge per case.
func TestStepUpRules(t *testing.T) {
	t.Setenv("SOTTO_STEP_UP_PUSH_MAX_CHALLENGES", "50")
	t.Setenv("SOTTO_STEP_UP_PUSH_MAX_DENIALS", "50")
	ts := newTestServer(t, "", "")
	phone := newApprover(t)
	ts.enroll(phone, ts.idToken(nil))
	bob := newApprover(t)
	ts.enroll(bob, ts.idToken(map[string]any{"sub": "bob"}))

	// begin starts a challenge and returns the form, device, ID and number.
	begin := func(t *testing.T) (url.Values, *device, string, int) {
		dev := newDevice(t)
		form := ts.travelForm(travelDetails)
		obj := stepUpObject(t, ts.exchange(dev, form))
		return form, dev, obj["challenge_id"].(string), spokenNumber(t, obj)
	}
	wrong := func(n int) int { return 10 + (n-10+1)%90 }

	tests := []struct {
		name       string
		run        func(t *testing.T) response
		wantStatus int
		wantError  string
	}{
		{"wrong number denies the challenge", func(t *testing.T) response {
			_, _, id, n := begin(t)
			return ts.decide(phone, id, "approve", wrong(n))
		}, 400, "access_denied"},
		{"exchange after wrong number is access_denied", func(t *testing.T) response {
			form, dev, id, n := begin(t)
			ts.decide(phone, id, "approve", wrong(n))
			return ts.retry(dev, form, id)
		}, 400, "access_denied"},
		{"denied challenge is access_denied", func(t *testing.T) response {
			form, dev, id, n := begin(t)
			ts.decide(phone, id, "deny", n)
			return ts.retry(dev, form, id)
		}, 400, "access_denied"},
		{"approval by another user's device is refused", func(t *testing.T) response {
			_, _, id, n := begin(t)
			return ts.decide(bob, id, "approve", n)
		}, 403, "access_denied"},
		{"approval signed by an unenrolled key is refused", func(t *testing.T) response {
			_, _, id, n := begin(t)
			jws := approval(t, otherKey(t), phone.jkt, map[string]any{"challenge_id": id, "decision": "approve", "number": n})
			return ts.post("/stepup/push/challenges/"+id, url.Values{"approval": {jws}}, nil)
		}, 403, "access_denied"},
		{"approval with an extra member is refused", func(t *testing.T) response {
			_, _, id, n := begin(t)
			jws := approval(t, phone.key, phone.jkt, map[string]any{"challenge_id": id, "decision": "approve", "number": n, "scope": "x"})
			return ts.post("/stepup/push/challenges/"+id, url.Values{"approval": {jws}}, nil)
		}, 400, "invalid_request"},
		{"approval for another challenge ID is refused", func(t *testing.T) response {
			_, _, id, n := begin(t)
			_, _, other, _ := begin(t)
			jws := approval(t, phone.key, phone.jkt, map[string]any{"challenge_id": other, "decision": "approve", "number": n})
			return ts.post("/stepup/push/challenges/"+id, url.Values{"approval": {jws}}, nil)
		}, 400, "invalid_request"},
		{"stale approval iat is refused", func(t *testing.T) response {
			_, _, id, n := begin(t)
			jws := approval(t, phone.key, phone.jkt, map[string]any{"challenge_id": id, "decision": "approve", "number": n,
				"iat": time.Now().Add(-10 * time.Minute).Unix()})
			return ts.post("/stepup/push/challenges/"+id, url.Values{"approval": {jws}}, nil)
		}, 400, "invalid_request"},
		{"second decision is refused", func(t *testing.T) response {
			_, _, id, n := begin(t)
			ts.decide(phone, id, "approve", n)
			return ts.decide(phone, id, "deny", n)
		}, 400, "invalid_request"},
		{"retry with another DPoP key is a binding mismatch", func(t *testing.T) response {
			form, _, id, n := begin(t)
			ts.decide(phone, id, "approve", n)
			return ts.retry(newDevice(t), form, id)
		}, 400, "invalid_grant"},
		{"details changed between challenge and retry are a binding mismatch", func(t *testing.T) response {
			form, dev, id, n := begin(t)
			ts.decide(phone, id, "approve", n)
			form.Set("authorization_details", strings.Replace(travelDetails, "120", "480", 1))
			return ts.retry(dev, form, id)
		}, 400, "invalid_grant"},
		{"retry for another action is a binding mismatch", func(t *testing.T) response {
			form, dev, id, n := begin(t)
			ts.decide(phone, id, "approve", n)
			form.Set("scope", "expense:approve")
			form.Del("authorization_details")
			return ts.retry(dev, form, id)
		}, 400, "invalid_grant"},
		{"unknown challenge is invalid_grant", func(t *testing.T) response {
			return ts.retry(newDevice(t), ts.travelForm(travelDetails), "no-such-challenge")
		}, 400, "invalid_grant"},
		{"step_up_challenge on an action without step-up is invalid_request", func(t *testing.T) response {
			return ts.retry(newDevice(t), ts.exchangeForm(ts.idToken(nil)), "x")
		}, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.run(t)
			if got.status != tt.wantStatus || got.str("error") != tt.wantError {
				t.Errorf("status %d, error %q (%q); want %d, %s",
					got.status, got.str("error"), got.str("error_description"), tt.wantStatus, tt.wantError)
			}
			if desc := got.str("error_description"); desc == "" || strings.ContainsAny(desc, "\"\\") {
				t.Errorf("error_description %q is empty or has characters outside RFC 6749 Section 5.2", desc)
			}
			if _, ok := got.body["access_token"]; ok {
				t.Error("a refused request returned an access token")
			}
		})
	}

	records, _ := ts.store.AuditRecords(context.Background(), storage.AuditFilter{})
	found := map[string]bool{}
	for _, r := range records {
		found[r.Reason] = true
	}
	for _, want := range []string{"push_wrong_number", "push_denied", "approval_wrong_device", "step_up_binding_mismatch"} {
		if !found[want] {
			t.Errorf("no audit record with reason %s", want)
		}
	}
}

// TestStepUpExpiry checks that neither an approval nor a retry counts
// after the challenge expired.
func TestStepUpExpiry(t *testing.T) {
	t.Setenv("SOTTO_STEP_UP_CHALLENGE_TTL", "2s")
	t.Setenv("SOTTO_STEP_UP_INTERVAL", "1s")
	ts := newTestServer(t, "", "")
	phone := newApprover(t)
	ts.enroll(phone, ts.idToken(nil))
	dev := newDevice(t)
	form := ts.travelForm(travelDetails)
	obj := stepUpObject(t, ts.exchange(dev, form))
	id := obj["challenge_id"].(string)

	time.Sleep(2100 * time.Millisecond)
	if got := ts.decide(phone, id, "approve", spokenNumber(t, obj)); got.str("error") != "expired_token" {
		t.Errorf("approval after expiry: error %q, want expired_token", got.str("error"))
	}
	if got := ts.retry(dev, form, id); got.str("error") != "expired_token" {
		t.Errorf("retry after expiry: error %q, want expired_token", got.str("error"))
	}
}

// TestPushFatigue checks the rate limit and the lockout after denials.
func TestPushFatigue(t *testing.T) {
	t.Run("rate limit", func(t *testing.T) {
		ts := newTestServer(t, "", "")
		ts.enroll(newApprover(t), ts.idToken(nil))
		for i := range 3 {
			if got := ts.exchange(newDevice(t), ts.travelForm(travelDetails)); got.str("error") != "insufficient_user_authentication" {
				t.Fatalf("challenge %d: error %q, want insufficient_user_authentication", i+1, got.str("error"))
			}
		}
		got := ts.exchange(newDevice(t), ts.travelForm(travelDetails))
		if got.str("error") != "access_denied" || !strings.Contains(got.str("error_description"), "at most 3") {
			t.Errorf("fourth challenge: error %q (%q), want access_denied naming the limit", got.str("error"), got.str("error_description"))
		}
		assertAlert(t, ts, "push_rate_limited")
	})
	t.Run("lockout after denials", func(t *testing.T) {
		t.Setenv("SOTTO_STEP_UP_PUSH_MAX_CHALLENGES", "50")
		ts := newTestServer(t, "", "")
		phone := newApprover(t)
		ts.enroll(phone, ts.idToken(nil))
		for range 3 {
			obj := stepUpObject(t, ts.exchange(newDevice(t), ts.travelForm(travelDetails)))
			ts.decide(phone, obj["challenge_id"].(string), "deny", spokenNumber(t, obj))
		}
		got := ts.exchange(newDevice(t), ts.travelForm(travelDetails))
		if got.str("error") != "access_denied" || !strings.Contains(got.str("error_description"), "locked") {
			t.Errorf("after 3 denials: error %q (%q), want access_denied locked", got.str("error"), got.str("error_description"))
		}
		assertAlert(t, ts, "push_locked")
	})
	t.Run("no approver enrolled", func(t *testing.T) {
		ts := newTestServer(t, "", "")
		got := ts.exchange(newDevice(t), ts.travelForm(travelDetails))
		if got.str("error") != "access_denied" || !strings.Contains(got.str("error_description"), "enroll") {
			t.Errorf("error %q (%q), want access_denied asking to enroll", got.str("error"), got.str("error_description"))
		}
	})
}

func assertAlert(t *testing.T, ts *testServer, reason string) {
	t.Helper()
	records, _ := ts.store.AuditRecords(context.Background(), storage.AuditFilter{})
	for _, r := range records {
		if r.Decision == audit.DecisionAlert && r.Reason == reason {
			return
		}
	}
	t.Errorf("no alert audit record with reason %s", reason)
}

// TestAuthorizationDetailsRules checks RFC 9396 validation per case.
func TestAuthorizationDetailsRules(t *testing.T) {
	ts := newTestServer(t, "", "")
	tests := []struct {
		name    string
		scope   string
		details string
	}{
		{"missing details", "travel:approve", ""},
		{"not JSON", "travel:approve", "{"},
		{"object instead of array", "travel:approve", `{"type":"travel_approval","amount":1,"currency":"EUR"}`},
		{"two objects", "travel:approve", `[{"type":"travel_approval","amount":1,"currency":"EUR"},{"type":"travel_approval","amount":1,"currency":"EUR"}]`},
		{"wrong type", "travel:approve", `[{"type":"expense","amount":1,"currency":"EUR"}]`},
		{"undeclared member", "travel:approve", `[{"type":"travel_approval","amount":1,"currency":"EUR","to":"x"}]`},
		{"amount above max", "travel:approve", `[{"type":"travel_approval","amount":500.01,"currency":"EUR"}]`},
		{"amount below min", "travel:approve", `[{"type":"travel_approval","amount":-1,"currency":"EUR"}]`},
		{"amount as string", "travel:approve", `[{"type":"travel_approval","amount":"1","currency":"EUR"}]`},
		{"currency outside enum", "travel:approve", `[{"type":"travel_approval","amount":1,"currency":"GBP"}]`},
		{"string too long", "travel:approve", `[{"type":"travel_approval","amount":1,"currency":"EUR","request_id":"TR-0123456789abcdef"}]`},
		{"required member missing", "travel:approve", `[{"type":"travel_approval","amount":1}]`},
		{"details on an action that takes none", "ticket:create", `[{"type":"x"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := ts.travelForm(tt.details)
			if tt.scope == "ticket:create" {
				form = ts.exchangeForm(ts.idToken(nil))
				form.Set("authorization_details", tt.details)
			}
			got := ts.exchange(newDevice(t), form)
			if got.status != http.StatusBadRequest || got.str("error") != "invalid_authorization_details" {
				t.Errorf("status %d, error %q (%q); want 400 invalid_authorization_details",
					got.status, got.str("error"), got.str("error_description"))
			}
			if desc := got.str("error_description"); desc == "" || strings.ContainsAny(desc, "\"\\") {
				t.Errorf("error_description %q is empty or has characters outside RFC 6749 Section 5.2", desc)
			}
		})
	}
}

// TestStrongACRSatisfiesStepUp checks that a configured strong corporate
// acr with a recent auth_time issues the token without a challenge, and
// an old auth_time does not.
func TestStrongACRSatisfiesStepUp(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"sotto.yaml", "clients.yaml", "catalog.yaml", "idp.jwks.json"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "sotto.yaml" {
			b = []byte(strings.Replace(string(b), "    audience: sotto\n",
				"    audience: sotto\n    strong_acr_values: [urn:corp:acr:phishing-resistant]\n", 1))
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ts := newTestServer(t, dir, "")
	ts.enroll(newApprover(t), ts.idToken(nil))

	form := ts.travelForm(travelDetails)
	form.Set("subject_token", ts.idToken(map[string]any{"groups": []string{"managers"},
		"acr": "urn:corp:acr:phishing-resistant", "auth_time": time.Now().Add(-time.Minute).Unix()}))
	got := ts.exchange(newDevice(t), form)
	if got.status != http.StatusOK {
		t.Fatalf("recent strong acr: status %d, body %v; want a token", got.status, got.body)
	}
	if claims := verifyActionToken(t, ts.jwks(), got.str("access_token")); claims["acr"] != "urn:corp:acr:phishing-resistant" {
		t.Errorf("acr = %v, want the corporate acr", claims["acr"])
	}

	form.Set("subject_token", ts.idToken(map[string]any{"groups": []string{"managers"},
		"acr": "urn:corp:acr:phishing-resistant", "auth_time": time.Now().Add(-10 * time.Minute).Unix()}))
	if got := ts.exchange(newDevice(t), form); got.str("error") != "insufficient_user_authentication" {
		t.Errorf("old strong acr: error %q, want insufficient_user_authentication", got.str("error"))
	}
	form.Set("subject_token", ts.idToken(map[string]any{"groups": []string{"managers"}}))
	if got := ts.exchange(newDevice(t), form); got.str("error") != "insufficient_user_authentication" {
		t.Errorf("other acr: error %q, want insufficient_user_authentication", got.str("error"))
	}
}
