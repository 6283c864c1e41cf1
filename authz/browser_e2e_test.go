package authz_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

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
