package authz_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"github.com/sotto-auth/sotto/internal/sottotest"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/storage"
)

// newSessionServer starts a server from the example files plus a client
// without the refresh_token grant.
func newSessionServer(t *testing.T) *testServer {
	t.Helper()
	dir := sottotest.CopyExamples(t, filepath.Join("..", "examples"))
	appendFile(t, filepath.Join(dir, "clients.yaml"), `
  - client_id: exchange-only
    public: true
    grant_types: [urn:ietf:params:oauth:grant-type:token-exchange]
`)
	return newTestServer(t, dir, "")
}

// sessionForm is a request for a session with a corporate ID token.
func (ts *testServer) sessionForm(subject string) url.Values {
	return url.Values{
		"grant_type":         {exchange.GrantType},
		"client_id":          {"voice-assistant"},
		"subject_token":      {subject},
		"subject_token_type": {exchange.TokenTypeIDToken},
		"scope":              {exchange.SessionScope},
	}
}

// startSession exchanges a fresh ID token for a session bound to d and
// fails the test unless it succeeds.
func (ts *testServer) startSession(d *device) (accessToken, refreshToken string) {
	ts.t.Helper()
	got := ts.exchange(d, ts.sessionForm(ts.idToken(nil)))
	if got.status != http.StatusOK {
		ts.t.Fatalf("session request: status %d, body %v; want 200", got.status, got.body)
	}
	return got.str("access_token"), got.str("refresh_token")
}

// actionForm exchanges a session access token for ticket:create.
func (ts *testServer) actionForm(sessionToken string) url.Values {
	f := ts.exchangeForm(sessionToken)
	f.Set("subject_token_type", exchange.TokenTypeAccessToken)
	return f
}

func (ts *testServer) refresh(d *device, refreshToken string) response {
	ts.t.Helper()
	return ts.exchange(d, url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {"voice-assistant"},
		"refresh_token": {refreshToken},
	})
}

func (ts *testServer) revoke(token string) response {
	ts.t.Helper()
	return ts.post(authz.PathRevoke, url.Values{"token": {token}, "client_id": {"voice-assistant"}}, nil)
}

// unverifiedClaims decodes the payload of a JWT without checking it.
func unverifiedClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func wantError(t *testing.T, got response, status int, code, reasonWords string) {
	t.Helper()
	if got.status != status || got.str("error") != code {
		t.Fatalf("status %d error %q (%s), want %d %s", got.status, got.str("error"), got.str("error_description"), status, code)
	}
	if reasonWords != "" && !strings.Contains(got.str("error_description"), reasonWords) {
		t.Errorf("error_description = %q, want it to mention %q", got.str("error_description"), reasonWords)
	}
}

func TestSessionFromIDToken(t *testing.T) {
	ts := newSessionServer(t)
	dev := newDevice(t)

	got := ts.exchange(dev, ts.sessionForm(ts.idToken(nil)))
	if got.status != http.StatusOK {
		t.Fatalf("session request: status %d, body %v; want 200", got.status, got.body)
	}
	for key, want := range map[string]string{
		"token_type":        "DPoP",
		"scope":             exchange.SessionScope,
		"issued_token_type": exchange.TokenTypeAccessToken,
	} {
		if got.str(key) != want {
			t.Errorf("response %s = %q, want %q", key, got.str(key), want)
		}
	}
	if expiresIn, _ := got.body["expires_in"].(float64); expiresIn < 890 || expiresIn > 900 {
		t.Errorf("expires_in = %v, want about 900 (sessions.access_token_ttl of 15m)", expiresIn)
	}
	if !strings.HasPrefix(got.str("refresh_token"), "sotto_rt_") {
		t.Errorf("refresh_token = %q, want a sotto_rt_ token", got.str("refresh_token"))
	}

	claims := verifyActionToken(t, ts.jwks(), got.str("access_token"))
	for key, want := range map[string]any{
		"aud":       ts.issuer,
		"sub":       "sso.corp.example|alice",
		"scope":     exchange.SessionScope,
		"client_id": "voice-assistant",
		"acr":       "urn:corp:acr:mfa",
	} {
		if claims[key] != want {
			t.Errorf("session access token claim %s = %v, want %v", key, claims[key], want)
		}
	}
	if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != dev.jkt {
		t.Errorf("session access token cnf = %v, want jkt %s (RFC 9449 §6.1)", claims["cnf"], dev.jkt)
	}
	sid, _ := claims["sid"].(string)
	if want := "session:" + sid + "/0"; claims["sotto_parent"] != want {
		t.Errorf("sotto_parent = %v, want %s", claims["sotto_parent"], want)
	}
	if _, ok := claims["auth_time"]; !ok {
		t.Error("session access token has no auth_time; the login's must be kept")
	}

	// The session access token is for Sotto only: a connector sees it
	// inactive, since its aud is not the connector's.
	if intro := ts.introspect(got.str("access_token")); len(intro.body) != 1 || intro.body["active"] != false {
		t.Errorf("connector introspection of a session access token = %v, want exactly {active: false}", intro.body)
	}

	session, err := ts.store.Session(context.Background(), sid)
	if err != nil {
		t.Fatalf("stored session: %v", err)
	}
	if session.DeviceJKT != dev.jkt || session.Generation != 0 || !strings.HasPrefix(session.Parent, "jti:sso.corp.example|") {
		t.Errorf("stored session = %+v, want device %s, generation 0 and the ID token as parent", session, dev.jkt)
	}
	if len(session.Groups) != 1 || session.Groups[0] != "employees" {
		t.Errorf("stored session groups = %v, want [employees]", session.Groups)
	}
}

func TestSessionRequestRefusals(t *testing.T) {
	ts := newSessionServer(t)
	dev := newDevice(t)
	sessionToken, _ := ts.startSession(dev)

	cases := []struct {
		name   string
		form   func() url.Values
		code   string
		phrase string
	}{
		{"session scope with an action", func() url.Values {
			f := ts.sessionForm(ts.idToken(nil))
			f.Set("scope", exchange.SessionScope+" ticket:create")
			return f
		}, "invalid_scope", "alone"},
		{"session for a connector audience", func() url.Values {
			f := ts.sessionForm(ts.idToken(nil))
			f.Set("audience", "https://itsm.corp.example")
			return f
		}, "invalid_target", "only for this server"},
		{"client without refresh grant", func() url.Values {
			f := ts.sessionForm(ts.idToken(nil))
			f.Set("client_id", "exchange-only")
			return f
		}, "unauthorized_client", "refresh_token"},
		{"session from a session access token", func() url.Values {
			f := ts.sessionForm(sessionToken)
			f.Set("subject_token_type", exchange.TokenTypeAccessToken)
			return f
		}, "invalid_scope", "refresh_token"},
		{"session access token as an ID token", func() url.Values {
			return ts.sessionForm(sessionToken)
		}, "invalid_request", "subject_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, ts.exchange(dev, tc.form()), http.StatusBadRequest, tc.code, tc.phrase)
		})
	}
}

func TestSessionToActionToken(t *testing.T) {
	ts := newSessionServer(t)
	dev := newDevice(t)
	sessionToken, _ := ts.startSession(dev)
	sessionClaims := unverifiedClaims(t, sessionToken)

	got := ts.exchange(dev, ts.actionForm(sessionToken))
	if got.status != http.StatusOK {
		t.Fatalf("exchange of the session access token: status %d, body %v; want 200", got.status, got.body)
	}
	if _, ok := got.body["refresh_token"]; ok {
		t.Error("an action token answer carries a refresh_token")
	}
	action := got.str("access_token")
	claims := verifyActionToken(t, ts.jwks(), action)
	for key, want := range map[string]any{
		"aud":          "https://itsm.corp.example",
		"sub":          "sso.corp.example|alice",
		"scope":        "ticket:create",
		"acr":          "urn:corp:acr:mfa",
		"auth_time":    sessionClaims["auth_time"],
		"sid":          sessionClaims["sid"],
		"sotto_parent": sessionClaims["sotto_parent"],
	} {
		if claims[key] != want {
			t.Errorf("action token claim %s = %v, want %v", key, claims[key], want)
		}
	}
	if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != dev.jkt {
		t.Errorf("action token cnf = %v, want the session's jkt %s", claims["cnf"], dev.jkt)
	}
	if claims["exp"].(float64) > sessionClaims["exp"].(float64) {
		t.Errorf("action token exp %v is after the session access token's %v", claims["exp"], sessionClaims["exp"])
	}
	if intro := ts.introspect(action); intro.body["active"] != true {
		t.Errorf("introspection of the action token = %v, want active", intro.body)
	}

	// The action token is still never a subject token.
	wantError(t, ts.exchange(dev, ts.actionForm(action)), http.StatusBadRequest, "invalid_request", "action token")

	// Key continuity: a proof with another key is refused.
	other := newDevice(t)
	wantError(t, ts.exchange(other, ts.actionForm(sessionToken)), http.StatusBadRequest, "invalid_request", "RFC 9449")

	// Groups come from the login: the session's user is no manager.
	f := ts.actionForm(sessionToken)
	f.Set("scope", "expense:approve")
	f.Set("audience", "https://erp.corp.example")
	wantError(t, ts.exchange(dev, f), http.StatusBadRequest, "invalid_scope", "managers")
}

func TestSessionActionTokenLifetimeCapped(t *testing.T) {
	t.Setenv("SOTTO_SESSIONS_ACCESS_TOKEN_TTL", "90s")
	ts := newSessionServer(t)
	dev := newDevice(t)
	sessionToken, _ := ts.startSession(dev)

	got := ts.exchange(dev, ts.actionForm(sessionToken))
	if got.status != http.StatusOK {
		t.Fatalf("exchange: status %d, body %v; want 200", got.status, got.body)
	}
	if expiresIn, _ := got.body["expires_in"].(float64); expiresIn > 90 {
		t.Errorf("expires_in = %v, want at most 90: an action token never outlives the session access token", expiresIn)
	}
}

func TestSessionRefreshRotates(t *testing.T) {
	ts := newSessionServer(t)
	dev := newDevice(t)
	sessionToken, refreshToken := ts.startSession(dev)

	got := ts.refresh(dev, refreshToken)
	if got.status != http.StatusOK {
		t.Fatalf("refresh: status %d, body %v; want 200", got.status, got.body)
	}
	if got.str("token_type") != "DPoP" || got.str("scope") != exchange.SessionScope {
		t.Errorf("refresh token_type %q scope %q, want DPoP and %s", got.str("token_type"), got.str("scope"), exchange.SessionScope)
	}
	next := got.str("refresh_token")
	if next == "" || next == refreshToken {
		t.Fatalf("refresh_token after a refresh = %q, want a new token", next)
	}
	before, after := unverifiedClaims(t, sessionToken), unverifiedClaims(t, got.str("access_token"))
	if after["sid"] != before["sid"] {
		t.Errorf("sid after refresh = %v, want the same session %v", after["sid"], before["sid"])
	}
	if want := "session:" + before["sid"].(string) + "/1"; after["sotto_parent"] != want {
		t.Errorf("sotto_parent after one refresh = %v, want %s", after["sotto_parent"], want)
	}
	for _, key := range []string{"sub", "acr", "auth_time"} {
		if after[key] != before[key] {
			t.Errorf("claim %s after refresh = %v, want the login's %v", key, after[key], before[key])
		}
	}
	if after["iat"].(float64) < before["iat"].(float64) {
		t.Errorf("iat after refresh = %v, want at least the first token's %v", after["iat"], before["iat"])
	}

	// RFC 6749 §6: the scope may be repeated but not widened.
	widened := ts.exchange(dev, url.Values{
		"grant_type": {"refresh_token"}, "client_id": {"voice-assistant"},
		"refresh_token": {next}, "scope": {"ticket:create"},
	})
	wantError(t, widened, http.StatusBadRequest, "invalid_scope", "scope")
}

func TestSessionRefreshRefusals(t *testing.T) {
	ts := newSessionServer(t)
	dev := newDevice(t)
	_, refreshToken := ts.startSession(dev)

	cases := []struct {
		name   string
		device *device
		form   url.Values
		code   string
		phrase string
	}{
		{"another DPoP key", newDevice(t), url.Values{
			"grant_type": {"refresh_token"}, "client_id": {"voice-assistant"}, "refresh_token": {refreshToken},
		}, "invalid_grant", "RFC 9449"},
		{"unknown refresh token", dev, url.Values{
			"grant_type": {"refresh_token"}, "client_id": {"voice-assistant"}, "refresh_token": {"sotto_rt_unknown"},
		}, "invalid_grant", "not one this server issued"},
		{"missing refresh token", dev, url.Values{
			"grant_type": {"refresh_token"}, "client_id": {"voice-assistant"},
		}, "invalid_request", "refresh_token"},
		{"client without refresh grant", dev, url.Values{
			"grant_type": {"refresh_token"}, "client_id": {"exchange-only"}, "refresh_token": {refreshToken},
		}, "unauthorized_client", "grant_types"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, ts.exchange(tc.device, tc.form), http.StatusBadRequest, tc.code, tc.phrase)
		})
	}

	// None of the refusals spent or revoked the token.
	if got := ts.refresh(dev, refreshToken); got.status != http.StatusOK {
		t.Errorf("refresh after the refusals: status %d, body %v; want 200", got.status, got.body)
	}
}

func TestSessionRefreshReuseRevokesSession(t *testing.T) {
	ts := newSessionServer(t)
	dev := newDevice(t)
	sessionToken, first := ts.startSession(dev)

	action := ts.exchange(dev, ts.actionForm(sessionToken))
	if action.status != http.StatusOK {
		t.Fatalf("exchange: status %d, body %v; want 200", action.status, action.body)
	}
	rotated := ts.refresh(dev, first)
	if rotated.status != http.StatusOK {
		t.Fatalf("first refresh: status %d, body %v; want 200", rotated.status, rotated.body)
	}

	wantError(t, ts.refresh(dev, first), http.StatusBadRequest, "invalid_grant", "RFC 9700")

	if intro := ts.introspect(action.str("access_token")); intro.body["active"] != false {
		t.Errorf("action token after refresh token reuse = %v, want inactive", intro.body)
	}
	wantError(t, ts.refresh(dev, rotated.str("refresh_token")), http.StatusBadRequest, "invalid_grant", "")
	wantError(t, ts.exchange(dev, ts.actionForm(rotated.str("access_token"))), http.StatusBadRequest, "invalid_request", "revoked")

	rec := findAudit(t, ts, "refresh_token_reuse")
	// The session's two access tokens, the action token and the rotated
	// refresh token were live.
	if rec.Count != 4 || rec.Event != audit.EventRevocation {
		t.Errorf("reuse audit record = %+v, want a revocation that ended 4 tokens", rec)
	}
}

func TestSessionConcurrentRefresh(t *testing.T) {
	ts := newSessionServer(t)
	dev := newDevice(t)
	_, refreshToken := ts.startSession(dev)

	const callers = 2
	results := make([]response, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = ts.refresh(dev, refreshToken)
		}()
	}
	wg.Wait()

	var won []string
	for i, r := range results {
		switch {
		case r.status == http.StatusOK:
			won = append(won, r.str("refresh_token"))
		case r.status == http.StatusBadRequest && r.str("error") == "invalid_grant":
		default:
			t.Errorf("caller %d: status %d body %v, want 200 or 400 invalid_grant", i, r.status, r.body)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent refreshes succeeded, want exactly 1", len(won), callers)
	}
	// The loser presented a used token, which revokes the session, so at
	// most the winner's family could still be live; here none is.
	if got := ts.refresh(dev, won[0]); got.status == http.StatusOK {
		t.Errorf("the winner's refresh token still works after the loser's reuse: %v", got.body)
	}
}

func TestSessionRevocationEndsLineage(t *testing.T) {
	cases := []struct {
		name   string
		revoke func(sessionToken, refreshToken string) string
	}{
		{"by refresh token", func(_, rt string) string { return rt }},
		{"by session access token", func(at, _ string) string { return at }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newSessionServer(t)
			dev := newDevice(t)
			sessionToken, refreshToken := ts.startSession(dev)
			action := ts.exchange(dev, ts.actionForm(sessionToken))
			if action.status != http.StatusOK {
				t.Fatalf("exchange: status %d, body %v; want 200", action.status, action.body)
			}

			if got := ts.revoke(tc.revoke(sessionToken, refreshToken)); got.status != http.StatusOK {
				t.Fatalf("revocation: status %d, body %v; want 200", got.status, got.body)
			}
			if intro := ts.introspect(action.str("access_token")); len(intro.body) != 1 || intro.body["active"] != false {
				t.Errorf("action token after the session's revocation = %v, want exactly {active: false}", intro.body)
			}
			wantError(t, ts.refresh(dev, refreshToken), http.StatusBadRequest, "invalid_grant", "revoked")
			wantError(t, ts.exchange(dev, ts.actionForm(sessionToken)), http.StatusBadRequest, "invalid_request", "revoked")

			rec := findAudit(t, ts, "client_request")
			if rec.Count != 3 || rec.Action != exchange.SessionScope {
				t.Errorf("revocation audit record = %+v, want the session scope and 3 tokens ended", rec)
			}
		})
	}
}

func TestSessionExpires(t *testing.T) {
	t.Setenv("SOTTO_SESSIONS_IDLE_TIMEOUT", "2s")
	t.Setenv("SOTTO_SESSIONS_ABSOLUTE_LIFETIME", "2s")
	ts := newSessionServer(t)
	dev := newDevice(t)
	sessionToken, refreshToken := ts.startSession(dev)

	time.Sleep(2100 * time.Millisecond)
	wantError(t, ts.refresh(dev, refreshToken), http.StatusBadRequest, "invalid_grant", "sign in again")
	wantError(t, ts.exchange(dev, ts.actionForm(sessionToken)), http.StatusBadRequest, "invalid_request", "expired")
}

func TestMetadataAdvertisesSessions(t *testing.T) {
	ts := newSessionServer(t)
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
		"grant_types_supported": "refresh_token",
		"scopes_supported":      exchange.SessionScope,
		"token_types_supported": exchange.TokenTypeAccessToken,
	} {
		list, _ := md[key].([]any)
		found := false
		for _, v := range list {
			found = found || v == want
		}
		if !found {
			t.Errorf("metadata %s = %v, want it to list %s", key, md[key], want)
		}
	}
}

// findAudit returns the one audit record with reason, failing the test
// when there is not exactly one.
func findAudit(t *testing.T, ts *testServer, reason string) audit.Record {
	t.Helper()
	records, err := ts.store.AuditRecords(context.Background(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var found []audit.Record
	for _, r := range records {
		if r.Reason == reason {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("audit records with reason %s = %+v, want exactly one", reason, found)
	}
	return found[0]
}
