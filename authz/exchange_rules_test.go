package authz_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/storage"
)

// TestExchangeRefusals sends one broken request per rule over HTTP and
// checks the status, the error code and that a description explains it.
func TestExchangeRefusals(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	tokenURL := ts.issuer + authz.PathToken

	type request struct {
		form   url.Values
		header http.Header
		body   string // raw body instead of form
		method string
	}
	withForm := func(edit func(url.Values)) request {
		f := ts.exchangeForm(ts.idToken(nil))
		edit(f)
		return request{form: f, header: http.Header{"DPoP": {dev.proof("POST", tokenURL, nil)}}}
	}
	withSubject := func(claims map[string]any) request {
		return withForm(func(f url.Values) { f.Set("subject_token", ts.idToken(claims)) })
	}
	withProof := func(proof string) request {
		return request{form: ts.exchangeForm(ts.idToken(nil)), header: http.Header{"DPoP": {proof}}}
	}

	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantError  string
		wantInDesc string
	}{
		{"repeated parameter is invalid_request (RFC 6749 §3.2)",
			request{body: ts.exchangeForm(ts.idToken(nil)).Encode() + "&scope=calendar:read",
				header: http.Header{"DPoP": {dev.proof("POST", tokenURL, nil)}}},
			400, "invalid_request", "scope"},
		{"GET is refused", request{method: http.MethodGet}, 405, "invalid_request", "POST"},
		{"missing grant_type is invalid_request",
			withForm(func(f url.Values) { f.Del("grant_type") }), 400, "invalid_request", "grant_type"},
		{"unknown grant type is unsupported_grant_type",
			withForm(func(f url.Values) { f.Set("grant_type", "urn:example:unknown") }), 400, "unsupported_grant_type", "urn:example:unknown"},
		{"unknown client is invalid_client",
			withForm(func(f url.Values) { f.Set("client_id", "stranger") }), 401, "invalid_client", ""},
		{"unknown client with unknown grant is invalid_client first",
			withForm(func(f url.Values) { f.Set("client_id", "stranger"); f.Set("grant_type", "password") }), 401, "invalid_client", ""},
		{"client without the grant is unauthorized_client",
			func() request {
				r := withForm(func(f url.Values) { f.Set("client_id", "itsm-connector") })
				r.header.Set("Authorization", "Basic aXRzbS1jb25uZWN0b3I6aXRzbS1jb25uZWN0b3ItZGV2LXNlY3JldA==")
				r.form.Del("client_id")
				return r
			}(), 400, "unauthorized_client", "grant_types"},
		{"missing DPoP proof is invalid_dpop_proof",
			request{form: ts.exchangeForm(ts.idToken(nil))}, 400, "invalid_dpop_proof", "DPoP"},
		{"two DPoP headers are invalid_dpop_proof (RFC 9449 §4.3)",
			request{form: ts.exchangeForm(ts.idToken(nil)), header: http.Header{"DPoP": {
				dev.proof("POST", tokenURL, nil), dev.proof("POST", tokenURL, nil)}}}, 400, "invalid_dpop_proof", ""},
		{"proof for another URI is invalid_dpop_proof",
			withProof(dev.proof("POST", "https://elsewhere.example/token", nil)), 400, "invalid_dpop_proof", "htu"},
		{"proof for GET is invalid_dpop_proof",
			withProof(dev.proof("GET", tokenURL, nil)), 400, "invalid_dpop_proof", "htm"},
		{"stale proof is invalid_dpop_proof",
			withProof(dev.proof("POST", tokenURL, map[string]any{"iat": time.Now().Add(-5 * time.Minute).Unix()})), 400, "invalid_dpop_proof", "iat"},
		{"DPoP check comes before the subject token",
			request{form: func() url.Values { f := ts.exchangeForm("garbage"); return f }(),
				header: http.Header{"DPoP": {dev.proof("GET", tokenURL, nil)}}}, 400, "invalid_dpop_proof", ""},
		{"missing subject_token is invalid_request",
			withForm(func(f url.Values) { f.Del("subject_token") }), 400, "invalid_request", "subject_token"},
		{"unsupported subject_token_type is invalid_request",
			withForm(func(f url.Values) { f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:saml2") }), 400, "invalid_request", "saml2"},
		{"unsupported requested_token_type is invalid_request",
			withForm(func(f url.Values) { f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token") }), 400, "invalid_request", "requested_token_type"},
		{"actor token is invalid_request",
			withForm(func(f url.Values) { f.Set("actor_token", "x"); f.Set("actor_token_type", exchange.TokenTypeJWT) }), 400, "invalid_request", "actor_token"},
		{"expired subject token is invalid_request (RFC 8693 §2.2.2)",
			withSubject(map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), 400, "invalid_request", "subject_token"},
		{"subject token for another audience is invalid_request",
			withSubject(map[string]any{"aud": "someone-else"}), 400, "invalid_request", "aud"},
		{"subject token from an untrusted issuer is invalid_request",
			withSubject(map[string]any{"iss": "https://evil.example"}), 400, "invalid_request", "iss"},
		{"subject token without sub is invalid_request",
			withSubject(map[string]any{"sub": nil}), 400, "invalid_request", "sub"},
		{"unknown action is invalid_scope",
			withForm(func(f url.Values) { f.Set("scope", "payroll:export") }), 400, "invalid_scope", "payroll:export"},
		{"two actions are invalid_scope",
			withForm(func(f url.Values) { f.Set("scope", "ticket:create calendar:read") }), 400, "invalid_scope", "exactly one"},
		{"missing scope is invalid_scope",
			withForm(func(f url.Values) { f.Del("scope") }), 400, "invalid_scope", "scope"},
		{"audience the action does not serve is invalid_target (RFC 8707 §2)",
			withForm(func(f url.Values) { f.Set("audience", "https://erp.corp.example") }), 400, "invalid_target", "https://erp.corp.example"},
		{"two different targets are invalid_target",
			withForm(func(f url.Values) { f.Set("resource", "https://other.corp.example") }), 400, "invalid_target", "exactly one"},
		{"resource with a fragment is invalid_target",
			withForm(func(f url.Values) { f.Del("audience"); f.Set("resource", "https://itsm.corp.example#x") }), 400, "invalid_target", "fragment"},
		{"user outside the action's groups is invalid_scope",
			withSubject(map[string]any{"groups": []string{"contractors"}}), 400, "invalid_scope", "employees"},
		{"action with step-up is insufficient_user_authentication (RFC 9470 §3)",
			func() request {
				r := withSubject(map[string]any{"groups": []string{"managers"}})
				r.form.Set("scope", "expense:approve")
				r.form.Set("audience", "https://erp.corp.example")
				return r
			}(), 400, "insufficient_user_authentication", "step-up"},
		{"action token as subject token is invalid_request",
			withForm(func(f url.Values) { f.Set("subject_token_type", exchange.TokenTypeAccessToken) }), 400, "invalid_request", "subject_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got response
			switch {
			case tt.req.method != "":
				req, _ := http.NewRequest(tt.req.method, tokenURL, nil)
				got = ts.do(req)
			case tt.req.body != "":
				req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(tt.req.body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for k, v := range tt.req.header {
					req.Header[k] = v
				}
				got = ts.do(req)
			default:
				got = ts.post(authz.PathToken, tt.req.form, tt.req.header)
			}
			if got.status != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %v)", got.status, tt.wantStatus, got.body)
			}
			if got.str("error") != tt.wantError {
				t.Errorf("error = %q, want %q (description %q)", got.str("error"), tt.wantError, got.str("error_description"))
			}
			if desc := got.str("error_description"); desc == "" || !strings.Contains(desc, tt.wantInDesc) {
				t.Errorf("error_description = %q, want a description mentioning %q", desc, tt.wantInDesc)
			}
			if _, ok := got.body["access_token"]; ok {
				t.Error("a refused request returned an access token")
			}
		})
	}
}

// TestStepUpAnswer checks the body of insufficient_user_authentication.
func TestStepUpAnswer(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	form := ts.exchangeForm(ts.idToken(map[string]any{"groups": []string{"managers"}}))
	form.Set("scope", "expense:approve")
	form.Del("audience")

	got := ts.exchange(dev, form)
	if got.str("error") != "insufficient_user_authentication" {
		t.Fatalf("error = %q, want insufficient_user_authentication", got.str("error"))
	}
	if got.str("acr_values") != "urn:sotto:acr:passkey" {
		t.Errorf("acr_values = %q, want urn:sotto:acr:passkey", got.str("acr_values"))
	}
	if got.body["max_age"] != float64(300) {
		t.Errorf("max_age = %v, want 300", got.body["max_age"])
	}
}

// TestRefusalsAreAudited checks that a refusal from a known client is an
// audit record and one from an unknown client is not.
func TestRefusalsAreAudited(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)

	form := ts.exchangeForm(ts.idToken(nil))
	form.Set("scope", "payroll:export")
	ts.exchange(dev, form)

	stranger := ts.exchangeForm(ts.idToken(nil))
	stranger.Set("client_id", "stranger")
	ts.exchange(dev, stranger)

	records, err := ts.store.AuditRecords(context.Background(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 1 {
		t.Fatalf("got %d audit records, want 1 (only the known client's refusal)", len(records))
	}
	r := records[0]
	if r.Decision != "refused" || r.Reason != "scope_unknown" || r.ClientID != "voice-assistant" ||
		r.DeviceJKT != dev.jkt || r.Subject != "sso.corp.example|alice" || r.RequestID == "" {
		t.Errorf("audit record = %+v, want a refusal naming client, device, subject and reason scope_unknown", r)
	}
}

// TestLifetimeCappedBySubject checks that a token never outlives its
// subject token.
func TestLifetimeCappedBySubject(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	exp := time.Now().Add(90 * time.Second).Unix()
	got := ts.exchange(dev, ts.exchangeForm(ts.idToken(map[string]any{"exp": exp})))
	if got.status != http.StatusOK {
		t.Fatalf("status = %d, body %v", got.status, got.body)
	}
	claims := verifyActionToken(t, ts.jwks(), got.str("access_token"))
	if claims["exp"].(float64) > float64(exp) {
		t.Errorf("token exp %v is after the subject token's exp %d", claims["exp"], exp)
	}
}
