package authz_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/exchange"
)

// TestBrowserLoginWholePath runs login at oidc-provider, code, session,
// action token, logout with the IdP's logout, and checks that the action
// token is inactive.
func TestBrowserLoginWholePath(t *testing.T) {
	bs := newBrowserServer(t)
	dev := newDevice(t)
	b := newBrowser(t)

	code, verifier := bs.login(t, b, "voice-browser", dev)
	tok, err := bs.appConfig("voice-browser").Exchange(dpopContext(dev), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code redemption: %v", err)
	}
	if tok.TokenType != "DPoP" {
		t.Errorf("token_type = %q, want DPoP", tok.TokenType)
	}
	if scope, _ := tok.Extra("scope").(string); scope != exchange.SessionScope {
		t.Errorf("scope = %q, want %s", scope, exchange.SessionScope)
	}
	if !strings.HasPrefix(tok.RefreshToken, "sotto_rt_") {
		t.Errorf("refresh_token = %q, want a sotto_rt_ token", tok.RefreshToken)
	}

	claims := verifyActionToken(t, bs.jwks(), tok.AccessToken)
	for key, want := range map[string]any{
		"sub":                  "corp|alice",
		"aud":                  bs.issuer,
		"client_id":            "voice-browser",
		"scope":                exchange.SessionScope,
		"sotto_subject_issuer": bs.idp,
	} {
		if claims[key] != want {
			t.Errorf("session access token %s = %v, want %v", key, claims[key], want)
		}
	}
	if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != dev.jkt {
		t.Errorf("cnf = %v, want jkt %s", claims["cnf"], dev.jkt)
	}
	if _, ok := claims["auth_time"].(float64); !ok {
		t.Errorf("auth_time = %v, want the IdP's auth_time", claims["auth_time"])
	}
	if parent, _ := claims["sotto_parent"].(string); !strings.HasPrefix(parent, "session:") {
		t.Errorf("sotto_parent = %q, want session:<id>/0", parent)
	}

	// ticket:create needs the group employees, which only the IdP's
	// groups claim gives alice.
	form := bs.actionForm(tok.AccessToken)
	form.Set("client_id", "voice-browser")
	action := bs.exchange(dev, form)
	if action.status != http.StatusOK {
		t.Fatalf("session to action token: status %d, body %v; want 200", action.status, action.body)
	}
	actionToken := action.str("access_token")
	if got := bs.introspect(actionToken); got.body["active"] != true {
		t.Fatalf("action token introspection = %v, want active", got.body)
	}

	out := bs.post(authz.PathLogout, url.Values{"client_id": {"voice-browser"}, "token": {tok.RefreshToken}}, nil)
	if out.status != http.StatusOK {
		t.Fatalf("logout: status %d, body %v; want 200", out.status, out.body)
	}
	if n, _ := out.body["tokens_ended"].(float64); n != 3 {
		t.Errorf("tokens_ended = %v, want 3: the refresh token, the session access token and the action token", out.body["tokens_ended"])
	}
	if got := bs.introspect(actionToken); got.body["active"] != false {
		t.Errorf("action token introspection after logout = %v, want inactive", got.body)
	}
	rec := findAudit(t, bs.testServer, "logout")
	if rec.Count != 3 || rec.ClientID != "voice-browser" {
		t.Errorf("logout audit record = %+v, want client voice-browser and count 3", rec)
	}

	// OpenID Connect RP-Initiated Logout 1.0: the browser ends the login
	// at the IdP, which sends it back to Sotto's logout page.
	endSession := out.str("end_session_url")
	if !strings.HasPrefix(endSession, bs.idp) {
		t.Fatalf("end_session_url = %q, want the IdP's end_session_endpoint", endSession)
	}
	p := browseGet(t, b, endSession)
	p = submit(t, b, p, url.Values{"logout": {"yes"}})
	if p.status != http.StatusOK || !strings.Contains(p.body, "You are signed out") {
		t.Fatalf("after the IdP's logout: status %d at %s, want Sotto's signed-out page:\n%s", p.status, p.url, p.body)
	}
	if p.url.Path != "/logout/done" {
		t.Errorf("logout ended at %s, want /logout/done", p.url)
	}

	// The IdP's login ended, so a new sign-in shows its login form again.
	verifier = oauth2.GenerateVerifier()
	p = browseGet(t, b, bs.appConfig("voice-browser").AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	if !strings.Contains(p.body, `name="prompt" value="login"`) {
		t.Errorf("sign-in after logout shows %s (status %d), want the IdP's login form", p.url, p.status)
	}
}

// TestAuthorizationRequestRefusals checks the refusals of the
// authorization endpoint: before the client and redirect URI are trusted
// an error page (RFC 6749 §4.1.2.1), after that a redirect with the error
// and the state.
func TestAuthorizationRequestRefusals(t *testing.T) {
	bs := newBrowserServer(t)
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	valid := func() url.Values {
		return url.Values{
			"response_type":         {"code"},
			"client_id":             {"voice-browser"},
			"redirect_uri":          {appRedirect},
			"scope":                 {exchange.SessionScope},
			"state":                 {"st-123"},
			"code_challenge":        {challenge},
			"code_challenge_method": {"S256"},
		}
	}
	tests := []struct {
		name     string
		mutate   func(url.Values)
		page     bool // shown on the error page, never redirected
		code     string
		describe string
	}{
		{"missing code_challenge", func(v url.Values) { v.Del("code_challenge") }, false, "invalid_request", "PKCE"},
		{"plain method", func(v url.Values) { v.Set("code_challenge_method", "plain") }, false, "invalid_request", "S256"},
		{"missing method", func(v url.Values) { v.Del("code_challenge_method") }, false, "invalid_request", "plain"},
		{"short challenge", func(v url.Values) { v.Set("code_challenge", "abc") }, false, "invalid_request", "43"},
		{"token response type", func(v url.Values) { v.Set("response_type", "token") }, false, "unsupported_response_type", "code"},
		{"action scope", func(v url.Values) { v.Set("scope", "ticket:create") }, false, "invalid_scope", "sotto:session"},
		{"malformed dpop_jkt", func(v url.Values) { v.Set("dpop_jkt", "xyz") }, false, "invalid_request", "thumbprint"},
		{"prompt none", func(v url.Values) { v.Set("prompt", "none") }, false, "login_required", "prompt=none"},
		{"client without code grant", func(v url.Values) {
			v.Set("client_id", "voice-assistant")
		}, true, "invalid_request", "not registered"},
		{"unregistered redirect", func(v url.Values) {
			v.Set("redirect_uri", "https://evil.example/callback")
		}, true, "invalid_request", "not registered"},
		{"other loopback path", func(v url.Values) {
			v.Set("redirect_uri", "http://127.0.0.1:53682/other")
		}, true, "invalid_request", "not registered"},
		{"localhost for loopback IP", func(v url.Values) {
			v.Set("redirect_uri", "http://localhost:53682/callback")
		}, true, "invalid_request", "not registered"},
		{"unknown client", func(v url.Values) { v.Set("client_id", "nobody") }, true, "invalid_request", "not registered"},
		{"missing redirect", func(v url.Values) { v.Del("redirect_uri") }, true, "invalid_request", "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := valid()
			tt.mutate(params)
			p := browseGet(t, newBrowser(t), bs.issuer+"/oauth2/authorize?"+params.Encode())
			if tt.page {
				if p.status != http.StatusBadRequest || p.location != nil {
					t.Fatalf("status %d location %v, want 400 on the error page", p.status, p.location)
				}
				if !strings.Contains(p.body, tt.describe) {
					t.Errorf("error page lacks %q:\n%s", tt.describe, p.body)
				}
				csp := p.header.Get("Content-Security-Policy")
				if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
					t.Errorf("Content-Security-Policy = %q, want default-src 'none' and no unsafe-inline", csp)
				}
				return
			}
			if p.location == nil || !strings.HasPrefix(p.location.String(), appRedirect) {
				t.Fatalf("status %d location %v, want a redirect to the app", p.status, p.location)
			}
			q := p.location.Query()
			if q.Get("error") != tt.code {
				t.Errorf("error = %q (%s), want %s", q.Get("error"), q.Get("error_description"), tt.code)
			}
			if !strings.Contains(q.Get("error_description"), tt.describe) {
				t.Errorf("error_description = %q, want it to mention %q", q.Get("error_description"), tt.describe)
			}
			if q.Get("state") != "st-123" {
				t.Errorf("state = %q, want st-123", q.Get("state"))
			}
		})
	}
}

// TestCodeRedemptionRefusals checks every refusal of a code at the token
// endpoint: each is invalid_grant, and the code stays unused.
func TestCodeRedemptionRefusals(t *testing.T) {
	bs := newBrowserServer(t)
	b := newBrowser(t)
	tests := []struct {
		name     string
		verifier func(good string) string
		key      func(dev *device) *device
		describe string
	}{
		{"missing verifier", func(string) string { return "" }, nil, "missing"},
		{"wrong verifier", func(string) string { return oauth2.GenerateVerifier() }, nil, "does not match"},
		{"verifier of 42 characters", func(g string) string { return g[:42] }, nil, "43 to 128"},
		{"verifier of 129 characters", func(g string) string { return g + strings.Repeat("a", 129-len(g)) }, nil, "43 to 128"},
		{"verifier with a plus", func(g string) string { return g[:42] + "+" }, nil, "43 to 128"},
		{"proof of another key than dpop_jkt", nil, func(*device) *device { return newDevice(t) }, "dpop_jkt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := newDevice(t)
			code, verifier := bs.login(t, b, "voice-browser", dev)
			sent, signer := verifier, dev
			if tt.verifier != nil {
				sent = tt.verifier(verifier)
			}
			if tt.key != nil {
				signer = tt.key(dev)
			}
			var opts []oauth2.AuthCodeOption
			if sent != "" {
				opts = append(opts, oauth2.VerifierOption(sent))
			}
			_, err := bs.appConfig("voice-browser").Exchange(dpopContext(signer), code, opts...)
			if err == nil {
				t.Fatal("code redemption succeeded, want invalid_grant")
			}
			errCode, description := retrieveError(t, err)
			if errCode != "invalid_grant" || !strings.Contains(description, tt.describe) {
				t.Errorf("error %s (%s), want invalid_grant mentioning %q", errCode, description, tt.describe)
			}
			// The refusal did not spend the code.
			if _, err := bs.appConfig("voice-browser").Exchange(dpopContext(dev), code, oauth2.VerifierOption(verifier)); err != nil {
				t.Errorf("redemption with the right verifier and key after the refusal: %v", err)
			}
		})
	}
}

// TestCodeReplayRevokesSession redeems a code twice: the second is
// invalid_grant and revokes the session of the first (RFC 6749 §4.1.2).
func TestCodeReplayRevokesSession(t *testing.T) {
	bs := newBrowserServer(t)
	dev := newDevice(t)
	code, verifier := bs.login(t, newBrowser(t), "voice-browser", dev)
	cfg := bs.appConfig("voice-browser")

	first, err := cfg.Exchange(dpopContext(dev), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("first redemption: %v", err)
	}
	_, err = cfg.Exchange(dpopContext(dev), code, oauth2.VerifierOption(verifier))
	if err == nil {
		t.Fatal("second redemption succeeded, want invalid_grant")
	}
	if errCode, description := retrieveError(t, err); errCode != "invalid_grant" || !strings.Contains(description, "already redeemed") {
		t.Errorf("second redemption: %s (%s), want invalid_grant for a redeemed code", errCode, description)
	}

	form := bs.actionForm(first.AccessToken)
	form.Set("client_id", "voice-browser")
	wantError(t, bs.exchange(dev, form), http.StatusBadRequest, "invalid_request", "revoked")
	wantError(t, bs.refreshAs(dev, "voice-browser", first.RefreshToken), http.StatusBadRequest, "invalid_grant", "revoked")
	rec := findAudit(t, bs.testServer, "authorization_code_reuse")
	if rec.Count != 2 {
		t.Errorf("code reuse audit record count = %d, want 2: the refresh token and the session access token", rec.Count)
	}
}

func (ts *testServer) refreshAs(d *device, clientID, refreshToken string) response {
	ts.t.Helper()
	return ts.exchange(d, url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {clientID},
		"refresh_token": {refreshToken},
	})
}

// browserSession signs in with dev and redeems the code.
func (bs *browserServer) browserSession(t *testing.T, dev *device) *oauth2.Token {
	t.Helper()
	code, verifier := bs.login(t, newBrowser(t), "voice-browser", dev)
	tok, err := bs.appConfig("voice-browser").Exchange(dpopContext(dev), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code redemption: %v", err)
	}
	return tok
}

// TestBrowserSessionRefresh checks refresh of a session from a browser
// login: rotation, reuse detection and the key binding (RFC 9449 §5).
func TestBrowserSessionRefresh(t *testing.T) {
	bs := newBrowserServer(t)
	tests := []struct {
		name string
		run  func(t *testing.T, dev *device, tok *oauth2.Token)
	}{
		{"rotation then reuse revokes session", func(t *testing.T, dev *device, tok *oauth2.Token) {
			next := bs.refreshAs(dev, "voice-browser", tok.RefreshToken)
			if next.status != http.StatusOK {
				t.Fatalf("refresh: status %d, body %v; want 200", next.status, next.body)
			}
			wantError(t, bs.refreshAs(dev, "voice-browser", tok.RefreshToken), http.StatusBadRequest, "invalid_grant", "already used")
			wantError(t, bs.refreshAs(dev, "voice-browser", next.str("refresh_token")), http.StatusBadRequest, "invalid_grant", "revoked")
		}},
		{"another key", func(t *testing.T, dev *device, tok *oauth2.Token) {
			wantError(t, bs.refreshAs(newDevice(t), "voice-browser", tok.RefreshToken), http.StatusBadRequest, "invalid_grant", "RFC 9449")
			if got := bs.refreshAs(dev, "voice-browser", tok.RefreshToken); got.status != http.StatusOK {
				t.Errorf("refresh with the session's key after the refusal: status %d, body %v; want 200", got.status, got.body)
			}
		}},
		{"concurrent double refresh", func(t *testing.T, dev *device, tok *oauth2.Token) {
			var wg sync.WaitGroup
			results := make([]response, 2)
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = bs.refreshAs(dev, "voice-browser", tok.RefreshToken)
				}()
			}
			wg.Wait()
			ok := 0
			for _, r := range results {
				switch r.status {
				case http.StatusOK:
					ok++
				case http.StatusBadRequest:
				default:
					t.Errorf("refresh status %d, body %v; want 200 or 400, never a 5xx", r.status, r.body)
				}
			}
			if ok > 1 {
				t.Errorf("%d concurrent refreshes succeeded, want at most one", ok)
			}
			for _, r := range results {
				if r.status == http.StatusOK {
					// The loser's reuse revoked the whole session.
					wantError(t, bs.refreshAs(dev, "voice-browser", r.str("refresh_token")), http.StatusBadRequest, "invalid_grant", "")
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := newDevice(t)
			tt.run(t, dev, bs.browserSession(t, dev))
		})
	}
}

func TestBrowserSessionExpires(t *testing.T) {
	t.Setenv("SOTTO_SESSIONS_IDLE_TIMEOUT", "2s")
	t.Setenv("SOTTO_SESSIONS_ABSOLUTE_LIFETIME", "2s")
	bs := newBrowserServer(t)
	dev := newDevice(t)
	tok := bs.browserSession(t, dev)

	time.Sleep(2100 * time.Millisecond)
	wantError(t, bs.refreshAs(dev, "voice-browser", tok.RefreshToken), http.StatusBadRequest, "invalid_grant", "sign in again")
	form := bs.actionForm(tok.AccessToken)
	form.Set("client_id", "voice-browser")
	wantError(t, bs.exchange(dev, form), http.StatusBadRequest, "invalid_request", "expired")
}

// TestConsentPage checks the consent page of a client that is not
// first-party: it lists the actions in words, carries a CSRF token and
// a strict policy, and its answer issues a code or access_denied.
func TestConsentPage(t *testing.T) {
	bs := newBrowserServer(t)
	tests := []struct {
		name     string
		fields   url.Values
		tamper   bool
		wantCode bool
		wantErr  string
	}{
		{"allowed", url.Values{"decision": {"allow"}}, false, true, ""},
		{"refused", url.Values{"decision": {"deny"}}, false, false, "access_denied"},
		{"forged CSRF token", url.Values{"decision": {"allow"}, "csrf_token": {"forged"}}, true, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := newDevice(t)
			br := newBrowser(t)
			verifier := oauth2.GenerateVerifier()
			authURL := bs.appConfig("partner-app").AuthCodeURL("st-9", oauth2.S256ChallengeOption(verifier))
			p := signIn(t, br, authURL, "alice")
			if p.status != http.StatusOK || !strings.Contains(p.body, "Partner notes app") {
				t.Fatalf("status %d at %s, want the consent page:\n%s", p.status, p.url, p.body)
			}
			for _, want := range []string{"Create an IT ticket", "Read the user", `name="csrf_token"`} {
				if !strings.Contains(p.body, want) {
					t.Errorf("consent page lacks %q", want)
				}
			}
			if strings.Contains(p.body, "Approve an expense report") {
				t.Error("consent page lists expense:approve, which needs the group managers that alice lacks")
			}
			csp := p.header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "form-action 'self' http://127.0.0.1:53682") || strings.Contains(csp, "script-src") {
				t.Errorf("Content-Security-Policy = %q, want form-action to self and the redirect origin, no script", csp)
			}

			got := submit(t, br, p, tt.fields)
			if tt.tamper {
				if got.status != http.StatusForbidden || got.location != nil {
					t.Errorf("forged form: status %d location %v, want 403 and no redirect", got.status, got.location)
				}
				return
			}
			if got.location == nil || !strings.HasPrefix(got.location.String(), appRedirect) {
				t.Fatalf("status %d location %v, want a redirect to the app", got.status, got.location)
			}
			q := got.location.Query()
			if q.Get("error") != tt.wantErr {
				t.Errorf("error = %q, want %q", q.Get("error"), tt.wantErr)
			}
			if q.Get("state") != "st-9" {
				t.Errorf("state = %q, want st-9", q.Get("state"))
			}
			if !tt.wantCode {
				if q.Get("code") != "" {
					t.Error("a refused consent carries a code")
				}
				return
			}
			if _, err := bs.appConfig("partner-app").Exchange(dpopContext(dev), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
				t.Errorf("redemption of the consented code: %v", err)
			}
		})
	}
}

// TestPushedAuthorizationRequest pushes the request (RFC 9126) and signs
// in with the request_uri, which is then spent.
func TestPushedAuthorizationRequest(t *testing.T) {
	bs := newBrowserServer(t)
	dev := newDevice(t)
	verifier := oauth2.GenerateVerifier()
	pushed := bs.post("/oauth2/par", url.Values{
		"response_type":         {"code"},
		"client_id":             {"voice-browser"},
		"redirect_uri":          {appRedirect},
		"scope":                 {exchange.SessionScope},
		"state":                 {"par-state"},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"},
		"dpop_jkt":              {dev.jkt},
	}, nil)
	if pushed.status != http.StatusCreated || !strings.HasPrefix(pushed.str("request_uri"), "urn:ietf:params:oauth:request_uri:") {
		t.Fatalf("push: status %d, body %v; want 201 with a request_uri", pushed.status, pushed.body)
	}
	authURL := bs.issuer + "/oauth2/authorize?" + url.Values{
		"client_id": {"voice-browser"}, "request_uri": {pushed.str("request_uri")},
	}.Encode()
	code := bs.codeFrom(t, signIn(t, newBrowser(t), authURL, "alice"), "par-state")
	if _, err := bs.appConfig("voice-browser").Exchange(dpopContext(dev), code, oauth2.VerifierOption(verifier)); err != nil {
		t.Errorf("redemption of the pushed request's code: %v", err)
	}
	again := browseGet(t, newBrowser(t), authURL)
	if again.status != http.StatusBadRequest || !strings.Contains(again.body, "already used") {
		t.Errorf("second use of the request_uri: status %d, want 400 on the error page", again.status)
	}

	refused := bs.post("/oauth2/par", url.Values{
		"response_type": {"code"}, "client_id": {"voice-browser"}, "redirect_uri": {appRedirect},
		"scope": {exchange.SessionScope}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"plain"},
	}, nil)
	wantError(t, refused, http.StatusBadRequest, "invalid_request", "S256")
}

func TestMetadataAdvertisesCodeGrant(t *testing.T) {
	bs := newBrowserServer(t)
	resp, err := http.Get(bs.issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"authorization_endpoint":                bs.issuer + "/oauth2/authorize",
		"pushed_authorization_request_endpoint": bs.issuer + "/oauth2/par",
		"code_challenge_methods_supported":      "[S256]",
		"response_types_supported":              "[code]",
	} {
		if got := fmt.Sprint(md[key]); got != want {
			t.Errorf("metadata %s = %s, want %s", key, got, want)
		}
	}
	if grants := fmt.Sprint(md["grant_types_supported"]); !strings.Contains(grants, "authorization_code") {
		t.Errorf("grant_types_supported = %s, want authorization_code among them", grants)
	}
}
