package admin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/storage"
)

// endpoints lists one request per admin endpoint and the scope it needs.
var endpoints = []struct {
	method, path, scope string
	body                any
}{
	{"GET", "/v1/catalog", config.ScopeCatalogRead, nil},
	{"GET", "/v1/catalog/actions", config.ScopeCatalogRead, nil},
	{"GET", "/v1/catalog/actions/ticket:create", config.ScopeCatalogRead, nil},
	{"POST", "/v1/catalog/actions", config.ScopeCatalogWrite, map[string]any{"scope": "x:y"}},
	{"PUT", "/v1/catalog/actions/ticket:create", config.ScopeCatalogWrite, map[string]any{}},
	{"DELETE", "/v1/catalog/actions/ticket:create", config.ScopeCatalogWrite, nil},
	{"POST", "/v1/catalog/actions/ticket:create:disable", config.ScopeCatalogWrite, nil},
	{"GET", "/v1/catalog/versions", config.ScopeCatalogRead, nil},
	{"GET", "/v1/catalog/versions/1", config.ScopeCatalogRead, nil},
	{"POST", "/v1/explain", config.ScopeCatalogRead, map[string]any{}},
	{"POST", "/v1/revocations", config.ScopeRevoke, map[string]any{"subject": "x"}},
	{"GET", "/v1/audit", config.ScopeAuditRead, nil},
	{"GET", "/v1/audit/trace/abc", config.ScopeAuditRead, nil},
	{"GET", "/v1/clients", config.ScopeClients, nil},
	{"POST", "/v1/clients", config.ScopeClients, map[string]any{}},
	{"GET", "/v1/clients/root", config.ScopeClients, nil},
	{"POST", "/v1/clients/devices-admin:enable", config.ScopeClients, nil},
	{"GET", "/v1/devices?subject=x", config.ScopeDevices, nil},
	{"GET", "/v1/approvers", config.ScopeDevices, nil},
	{"POST", "/v1/approvers/abc:activate", config.ScopeDevices, nil},
	{"POST", "/v1/devices/abc:revoke", config.ScopeDevices, nil},
}

func TestAdminScopesEnforced(t *testing.T) {
	dir := newDir(t)
	in := startInstance(t, dir, instanceOptions{})
	devicesSecret := in.createAdminClient("devices-admin", config.ScopeDevices)
	readerSecret := in.createAdminClient("reader", config.ScopeCatalogRead)
	devicesToken := in.token("devices-admin", devicesSecret, "")
	readerToken := in.token("reader", readerSecret, "")

	// A token issued an hour ago by a server sharing the keys has expired.
	past := startInstance(t, dir, instanceOptions{now: func() time.Time { return time.Now().Add(-time.Hour) }})
	expired := past.rootToken()

	// A token with every claim right but another iss, signed with this
	// server's own key.
	now := time.Now().Unix()
	foreignPayload, _ := json.Marshal(map[string]any{
		"iss": "https://other.example", "sub": "root", "aud": in.issuer + "/admin", "client_id": "root",
		"scope": strings.Join(config.AdminScopes, " "), "iat": now, "exp": now + 300, "jti": "x",
	})
	foreignIss, err := in.keys.SignAccessToken(foreignPayload)
	if err != nil {
		t.Fatal(err)
	}
	// A token signed by another server's key (a second database).
	other := startInstance(t, newDir(t), instanceOptions{})
	otherKey := other.rootToken()

	// An action token carries the issuer but a connector's aud.
	actionToken := in.exchange(newDevice(t), idToken(t, "alice", []string{"employees"})).str("access_token")
	if actionToken == "" {
		t.Fatal("no action token issued")
	}

	for _, ep := range endpoints {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			r := in.call(ep.method, ep.path, "", ep.body, nil)
			if r.status != http.StatusUnauthorized {
				t.Errorf("without a token: status %d, want 401", r.status)
			}
			if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="sotto-admin"` {
				t.Errorf("without a token: WWW-Authenticate %q, want a Bearer challenge without error (RFC 6750 Section 3.1)", got)
			}

			wrong := devicesToken
			if ep.scope == config.ScopeDevices {
				wrong = readerToken
			}
			r = in.call(ep.method, ep.path, wrong, ep.body, nil)
			if r.status != http.StatusForbidden || r.str("error") != "insufficient_scope" {
				t.Errorf("token without %s: status %d error %q, want 403 insufficient_scope", ep.scope, r.status, r.str("error"))
			}
			if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) ||
				!strings.Contains(got, `scope="`+ep.scope+`"`) {
				t.Errorf("token without %s: WWW-Authenticate %q lacks the error or the scope", ep.scope, got)
			}

			for name, token := range map[string]string{
				"expired": expired, "another issuer": foreignIss, "another server's key": otherKey,
				"an action token": actionToken, "garbage": "abc.def.ghi",
			} {
				r = in.call(ep.method, ep.path, token, ep.body, nil)
				if r.status != http.StatusUnauthorized || r.str("error") != "invalid_token" {
					t.Errorf("%s token: status %d error %q, want 401 invalid_token", name, r.status, r.str("error"))
				}
				if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
					t.Errorf("%s token: WWW-Authenticate %q lacks invalid_token", name, got)
				}
			}

			r = in.call(ep.method, ep.path, in.rootToken(), ep.body, nil)
			if r.status == http.StatusUnauthorized || r.status == http.StatusForbidden {
				t.Errorf("token with %s: status %d, want the endpoint's own answer; body %s", ep.scope, r.status, r.raw)
			}
		})
	}
}

func TestClientCredentialsGrant(t *testing.T) {
	in := startInstance(t, newDir(t), instanceOptions{})
	secret := in.createAdminClient("reader", config.ScopeCatalogRead)

	post := func(id, secret, scope string) reply {
		req, _ := http.NewRequest(http.MethodPost, in.issuer+"/oauth2/token",
			strings.NewReader("grant_type=client_credentials&scope="+scope))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		return do(t, req)
	}
	r := post("reader", secret, "")
	if r.status != 200 || r.str("token_type") != "Bearer" || r.str("scope") != config.ScopeCatalogRead {
		t.Errorf("default scope: status %d token_type %q scope %q, want 200 Bearer %s", r.status, r.str("token_type"), r.str("scope"), config.ScopeCatalogRead)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store (RFC 6749 Section 5.1)", r.header.Get("Cache-Control"))
	}
	if _, ok := r.body["refresh_token"]; ok {
		t.Error("a refresh token was issued; RFC 6749 Section 4.4.3 says it should not be")
	}
	if r := post("reader", secret, config.ScopeCatalogWrite); r.status != 400 || r.str("error") != "invalid_scope" {
		t.Errorf("scope beyond admin_scopes: status %d error %q, want 400 invalid_scope", r.status, r.str("error"))
	}
	if r := post("reader", "wrong-secret", ""); r.status != 401 || r.str("error") != "invalid_client" {
		t.Errorf("wrong secret: status %d error %q, want 401 invalid_client", r.status, r.str("error"))
	}
	if r := post("itsm-connector", "itsm-connector-dev-secret", ""); r.status != 400 || r.str("error") != "unauthorized_client" {
		t.Errorf("client without the grant: status %d error %q, want 400 unauthorized_client", r.status, r.str("error"))
	}

	// A disabled admin client gets no token, and its live token stops working.
	live := in.token("reader", secret, "")
	if r := in.call("POST", "/v1/clients/reader:disable", in.rootToken(), nil, nil); r.status != 200 {
		t.Fatalf("disable reader: status %d body %s", r.status, r.raw)
	}
	if r := post("reader", secret, ""); r.status != 400 || r.str("error") != "unauthorized_client" {
		t.Errorf("disabled client: status %d error %q, want 400 unauthorized_client", r.status, r.str("error"))
	}
	if r := in.call("GET", "/v1/catalog", live, nil, nil); r.status != 401 {
		t.Errorf("token of a disabled client: status %d, want 401", r.status)
	}
}

func TestCatalogVersionsAndPreconditions(t *testing.T) {
	in := startInstance(t, newDir(t), instanceOptions{})
	token := in.rootToken()

	r := in.call("GET", "/v1/catalog/actions/ticket:create", token, nil, nil)
	if r.status != 200 || r.header.Get("ETag") != `"1"` {
		t.Fatalf("get action: status %d ETag %q, want 200 and \"1\"", r.status, r.header.Get("ETag"))
	}
	action := r.body["action"].(map[string]any)
	action["description"] = "Create an IT ticket, edited"
	action["max_ttl"] = "3m"

	if r := in.call("PUT", "/v1/catalog/actions/ticket:create", token, action, nil); r.status != http.StatusPreconditionRequired {
		t.Errorf("PUT without If-Match: status %d, want 428", r.status)
	}
	r = in.call("PUT", "/v1/catalog/actions/ticket:create", token, action, http.Header{"If-Match": {`"1"`}})
	if r.status != 200 || r.header.Get("ETag") != `"2"` {
		t.Fatalf("PUT with If-Match 1: status %d ETag %q body %s", r.status, r.header.Get("ETag"), r.raw)
	}
	if got := in.srv.Catalog(); got.Number != 2 {
		t.Errorf("live catalog number %d after the change, want 2", got.Number)
	}
	if a, _ := in.srv.Catalog().Lookup("ticket:create"); a.MaxTTL != 3*time.Minute {
		t.Errorf("live max_ttl %s, want 3m", a.MaxTTL)
	}

	// The same stale precondition again is refused: no silent overwrite.
	r = in.call("PUT", "/v1/catalog/actions/ticket:create", token, action, http.Header{"If-Match": {`"1"`}})
	if r.status != http.StatusPreconditionFailed || r.header.Get("ETag") != `"2"` {
		t.Errorf("PUT with stale If-Match: status %d ETag %q, want 412 and \"2\"", r.status, r.header.Get("ETag"))
	}

	// Invalid content is 422 with every problem listed.
	bad := map[string]any{"scope": "ticket:create", "description": "", "audiences": []string{}, "max_ttl": "1m"}
	r = in.call("PUT", "/v1/catalog/actions/ticket:create", token, bad, http.Header{"If-Match": {`"2"`}})
	if r.status != http.StatusUnprocessableEntity || len(r.body["problems"].([]any)) != 2 {
		t.Errorf("invalid action: status %d body %s, want 422 with 2 problems", r.status, r.raw)
	}

	// Two concurrent edits based on version 2: exactly one wins.
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			edit := map[string]any{}
			for k, v := range action {
				edit[k] = v
			}
			edit["description"] = "concurrent edit " + string(rune('A'+i))
			statuses[i] = in.call("PUT", "/v1/catalog/actions/ticket:create", token, edit, http.Header{"If-Match": {`"2"`}}).status
		}()
	}
	wg.Wait()
	if !(statuses[0] == 200 && statuses[1] == 412 || statuses[0] == 412 && statuses[1] == 200) {
		t.Errorf("concurrent edits answered %v, want one 200 and one 412", statuses)
	}

	r = in.call("GET", "/v1/catalog/versions", token, nil, nil)
	versions := r.body["versions"].([]any)
	if len(versions) != 3 {
		t.Fatalf("%d versions, want 3 (import, edit, one concurrent edit)", len(versions))
	}
	v2 := in.call("GET", "/v1/catalog/versions/2", token, nil, nil)
	changes := v2.body["changes"].([]any)
	change := changes[0].(map[string]any)
	if len(changes) != 1 || change["change"] != "changed" || change["scope"] != "ticket:create" {
		t.Errorf("version 2 diff %v, want one change of ticket:create", changes)
	}
	if before := change["before"].(map[string]any); before["max_ttl"] != "5m0s" {
		t.Errorf("version 2 diff before max_ttl %v, want 5m0s", before["max_ttl"])
	}
	if v2.str("client_id") != "root" {
		t.Errorf("version 2 client_id %q, want root", v2.str("client_id"))
	}

	// The audit record names who changed what, before and after.
	records, err := in.store.AuditRecords(t.Context(), storage.AuditFilter{Event: "admin", Action: "ticket:create"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rec := range records {
		if rec.Operation == "catalog.update" && rec.CatalogNumber == 2 && rec.ClientID == "root" &&
			strings.Contains(rec.Before, "5m0s") && strings.Contains(rec.After, "3m0s") {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit record of the update with its before and after among %d records", len(records))
	}

	// An issued token names the catalog version it was decided under.
	tok := in.exchange(newDevice(t), idToken(t, "alice", []string{"employees"}))
	claims := jwtClaims(t, tok.str("access_token"))
	if claims["sotto_catalog_version"] != float64(in.srv.Catalog().Number) {
		t.Errorf("sotto_catalog_version %v, want %d", claims["sotto_catalog_version"], in.srv.Catalog().Number)
	}
}

func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parsed, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(parsed.UnsafePayloadWithoutVerification(), &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// TestKillSwitchReachesSecondServer disables an action and a client
// through one server. A second server on the same database file, with its
// own connection pool and the production poll loop, must then refuse
// exchanges within a second at the default poll interval.
func TestKillSwitchReachesSecondServer(t *testing.T) {
	dir := newDir(t)
	poll := time.Duration(config.Default().Admin.PollInterval)
	a := startInstance(t, dir, instanceOptions{poll: poll})
	b := startInstance(t, dir, instanceOptions{poll: poll})
	alice := idToken(t, "alice", []string{"employees"})
	d := newDevice(t)
	if r := b.exchange(d, alice); r.status != 200 {
		t.Fatalf("exchange at the second server before the kill switch: status %d body %s", r.status, r.raw)
	}

	r := a.call("POST", "/v1/catalog/actions/ticket:create:disable", a.rootToken(), map[string]any{"revoke_tokens": true}, nil)
	if r.status != 200 {
		t.Fatalf("disable: status %d body %s", r.status, r.raw)
	}
	if r.body["revoked_tokens"] != float64(1) {
		t.Errorf("revoked_tokens %v, want 1, the token issued by the second server", r.body["revoked_tokens"])
	}
	refused := waitRefused(t, b, d, alice, time.Second)
	if refused.str("error") != "access_denied" || !strings.Contains(refused.str("error_description"), "disabled") {
		t.Errorf("disabled action: error %q %q, want access_denied naming the kill switch", refused.str("error"), refused.str("error_description"))
	}

	a.call("POST", "/v1/catalog/actions/ticket:create:enable", a.rootToken(), nil, nil)
	deadline := time.Now().Add(2 * time.Second)
	for b.exchange(d, alice).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the second server still refuses two seconds after the action was enabled")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The tokens the second server issued while it had not yet seen the
	// kill switch are live, so the count covers them too.
	r = a.call("POST", "/v1/clients/voice-assistant:disable", a.rootToken(), map[string]any{"revoke_tokens": true}, nil)
	if n, _ := r.body["revoked_tokens"].(float64); r.status != 200 || n < 1 {
		t.Fatalf("disable client: status %d body %s, want 200 with at least 1 revoked token", r.status, r.raw)
	}
	refused = waitRefused(t, b, d, alice, time.Second)
	if refused.str("error") != "unauthorized_client" {
		t.Errorf("disabled client: error %q, want unauthorized_client", refused.str("error"))
	}
}

// waitRefused repeats an exchange at in until it is refused, failing the
// test when that takes longer than limit.
func waitRefused(t *testing.T, in *instance, d *device, subject string, limit time.Duration) reply {
	t.Helper()
	start := time.Now()
	for {
		r := in.exchange(d, subject)
		if r.status != 200 {
			if took := time.Since(start); took > limit {
				t.Errorf("refused after %s, want within %s", took.Round(time.Millisecond), limit)
			}
			return r
		}
		if time.Since(start) > 3*limit {
			t.Fatalf("still issuing %s after the kill switch", 3*limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExplain(t *testing.T) {
	in := startInstance(t, newDir(t), instanceOptions{})
	token := in.rootToken()
	explain := func(body map[string]any) reply {
		t.Helper()
		r := in.call("POST", "/v1/explain", token, body, nil)
		if r.status != 200 {
			t.Fatalf("explain: status %d body %s", r.status, r.raw)
		}
		return r
	}
	rule := func(r reply, name string) map[string]any {
		for _, x := range r.body["rules"].([]any) {
			if m := x.(map[string]any); m["rule"] == name {
				return m
			}
		}
		t.Fatalf("rule %s missing from %s", name, r.raw)
		return nil
	}
	claims := func(groups ...string) map[string]any {
		return map[string]any{"iss": "https://sso.corp.example", "sub": "alice", "groups": groups}
	}

	r := explain(map[string]any{"client_id": "voice-assistant", "subject_claims": claims("employees"),
		"scope": "ticket:create", "device_jkt": newDevice(t).jkt})
	if r.str("decision") != "issued" || r.body["expires_in"] != float64(300) {
		t.Errorf("allowed request: decision %q expires_in %v, want issued 300", r.str("decision"), r.body["expires_in"])
	}
	if r.body["catalog_version"] != float64(1) {
		t.Errorf("catalog_version %v, want 1", r.body["catalog_version"])
	}

	r = explain(map[string]any{"client_id": "voice-assistant", "subject_claims": claims("contractors"), "scope": "ticket:create"})
	if r.str("decision") != "refused" || r.str("error") != "invalid_scope" {
		t.Errorf("wrong group: decision %q error %q, want refused invalid_scope", r.str("decision"), r.str("error"))
	}
	if g := rule(r, "groups"); g["result"] != "fail" || g["reason"] != "group_not_allowed" {
		t.Errorf("groups rule %v, want fail group_not_allowed", g)
	}
	if g := rule(r, "target"); g["result"] != "pass" {
		t.Errorf("target rule %v, want pass", g)
	}

	r = explain(map[string]any{"client_id": "voice-assistant", "subject_claims": claims("managers"),
		"scope": "expense:approve"})
	if r.str("decision") != "step_up_required" || rule(r, "step_up")["result"] != "fail" {
		t.Errorf("step-up action: decision %q, want step_up_required; body %s", r.str("decision"), r.raw)
	}

	// A verified ID token works too, and a client without the grant fails
	// its rule while later rules are still evaluated.
	r = explain(map[string]any{"client_id": "itsm-connector", "subject_token": idToken(t, "bob", []string{"employees"}),
		"scope": "ticket:create", "audience": "https://itsm.corp.example"})
	if r.str("error") != "unauthorized_client" || rule(r, "groups")["result"] != "pass" || r.str("subject") != "sso.corp.example|bob" {
		t.Errorf("client without the grant: body %s", r.raw)
	}

	in.call("POST", "/v1/catalog/actions/ticket:create:disable", token, nil, nil)
	r = explain(map[string]any{"client_id": "voice-assistant", "subject_claims": claims("employees"), "scope": "ticket:create"})
	if r.str("error") != "access_denied" || rule(r, "action_enabled")["result"] != "fail" {
		t.Errorf("disabled action: body %s", r.raw)
	}

	// Explain issues and records nothing but the call itself.
	records, err := in.store.AuditRecords(t.Context(), storage.AuditFilter{Event: "token_exchange"})
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 0 {
		t.Errorf("%d token_exchange audit records after explain, want 0", len(records))
	}
}

func TestRevocationCounts(t *testing.T) {
	in := startInstance(t, newDir(t), instanceOptions{})
	token := in.rootToken()
	d1, d2 := newDevice(t), newDevice(t)
	alice := idToken(t, "alice", []string{"employees"})
	var aliceParent string
	for _, x := range []struct {
		d       *device
		subject string
	}{{d1, alice}, {d1, alice}, {d2, alice}, {d2, idToken(t, "bob", []string{"employees"})}, {d2, idToken(t, "carol", []string{"employees"})}} {
		r := in.exchange(x.d, x.subject)
		if r.status != 200 {
			t.Fatalf("exchange: status %d body %s", r.status, r.raw)
		}
		if x.subject == alice {
			aliceParent, _ = jwtClaims(t, r.str("access_token"))["sotto_parent"].(string)
		}
	}

	revoke := func(body map[string]any) any {
		t.Helper()
		r := in.call("POST", "/v1/revocations", token, body, nil)
		if r.status != 200 {
			t.Fatalf("revoke %v: status %d body %s", body, r.status, r.raw)
		}
		return r.body["revoked_tokens"]
	}
	steps := []struct {
		name string
		body map[string]any
		want float64
	}{
		{"device", map[string]any{"device_jkt": d1.jkt}, 2},
		{"session", map[string]any{"session": aliceParent}, 1},
		{"subject", map[string]any{"subject": "sso.corp.example|bob"}, 1},
		{"action", map[string]any{"action": "ticket:create", "client_id": "voice-assistant"}, 1},
		{"nothing left", map[string]any{"client_id": "voice-assistant"}, 0},
	}
	for _, s := range steps {
		if got := revoke(s.body); got != s.want {
			t.Errorf("revoke by %s: revoked_tokens %v, want %v", s.name, got, s.want)
		}
	}
	if r := in.call("POST", "/v1/revocations", token, map[string]any{}, nil); r.status != 400 {
		t.Errorf("revoke without a filter: status %d, want 400", r.status)
	}
	records, err := in.store.AuditRecords(t.Context(), storage.AuditFilter{Event: "admin", ClientID: "root"})
	if err != nil {
		t.Fatal(err)
	}
	counted := 0
	for _, rec := range records {
		if rec.Operation == "revoke" {
			counted += rec.Count
		}
	}
	if counted != 5 {
		t.Errorf("revocation audit records count %d tokens, want 5", counted)
	}
}
