package authz_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"github.com/sotto-auth/sotto/internal/sottotest"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/storage"
)

const testAttesterIssuer = "https://mdm.corp.example"

// deviceServer is a test server whose configuration adds a client that
// requires DPoP nonces, two actions that require device trust, and a
// device attester with the key attester.
type deviceServer struct {
	*testServer
	attester jose.JSONWebKey
}

func newDeviceServer(t *testing.T) *deviceServer {
	t.Helper()
	dir := sottotest.CopyExamples(t, filepath.Join("..", "examples"))
	appendFile(t, filepath.Join(dir, "clients.yaml"), `
  - client_id: nonce-assistant
    public: true
    grant_types: [urn:ietf:params:oauth:grant-type:token-exchange]
    require_dpop_nonce: true
`)
	appendFile(t, filepath.Join(dir, "catalog.yaml"), `
  - scope: ticket:escalate
    description: Escalate an IT ticket
    audiences: [https://itsm.corp.example]
    max_ttl: 5m
    device_trust: registered
  - scope: laptop:unlock
    description: Unlock a managed laptop
    audiences: [https://itsm.corp.example]
    max_ttl: 5m
    device_trust: managed
`)
	appendFile(t, filepath.Join(dir, "sotto.yaml"), `
device_attesters:
  - issuer: `+testAttesterIssuer+`
    jwks_file: mdm.jwks.json
    algorithms: [ES256]
`)

	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	attester := jose.JSONWebKey{Key: priv, KeyID: "mdm-1", Algorithm: "ES256", Use: "sig"}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{attester.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mdm.jwks.json"), set, 0o600); err != nil {
		t.Fatal(err)
	}
	return &deviceServer{testServer: newTestServer(t, dir, ""), attester: attester}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// enrol posts an enrolment for d with the given body members.
func (ts *deviceServer) enrol(d *device, body map[string]any) response {
	ts.t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, ts.issuer+authz.PathDevices, strings.NewReader(string(b)))
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("DPoP", d.proof("POST", ts.issuer+authz.PathDevices, nil))
	return ts.do(req)
}

func (ts *deviceServer) enrolBody(subjectClaims map[string]any) map[string]any {
	return map[string]any{"subject_token": ts.idToken(subjectClaims), "kind": "speaker", "name": "Kitchen speaker"}
}

// attestation signs a device attestation for jkt; override edits claims.
func (ts *deviceServer) attestation(jkt string, override map[string]any) string {
	ts.t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": testAttesterIssuer, "aud": ts.issuer, "sub": "device-42",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"cnf": map[string]any{"jkt": jkt}, "compliant": true,
	}
	for k, v := range override {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	return signJWT(ts.t, ts.attester, "JWT", claims, nil)
}

func (ts *deviceServer) exchangeScope(d *device, scope string) response {
	ts.t.Helper()
	form := ts.exchangeForm(ts.idToken(nil))
	form.Set("scope", scope)
	return ts.exchange(d, form)
}

func TestEnrolmentAndDeviceTrust(t *testing.T) {
	ts := newDeviceServer(t)
	dev := newDevice(t)

	if got := ts.exchangeScope(dev, "ticket:escalate"); got.status != 400 || got.str("error") != "access_denied" {
		t.Fatalf("unenrolled exchange = %d %s, want 400 access_denied", got.status, got.str("error"))
	} else if desc := got.str("error_description"); !strings.Contains(desc, "registered") || !strings.Contains(desc, "enrol") {
		t.Errorf("description %q does not name the level and how to get it", desc)
	}

	first := ts.enrol(dev, ts.enrolBody(nil))
	if first.status != http.StatusCreated {
		t.Fatalf("enrolment = %d %v, want 201", first.status, first.body)
	}
	if first.str("jkt") != dev.jkt || first.str("trust") != "registered" || first.str("subject") != "sso.corp.example|alice" {
		t.Errorf("enrolment answer = %v, want jkt %s, trust registered, subject sso.corp.example|alice", first.body, dev.jkt)
	}
	if again := ts.enrol(dev, ts.enrolBody(nil)); again.status != http.StatusOK || again.str("trust") != "registered" {
		t.Errorf("re-enrolment = %d %v, want 200 and the same device", again.status, again.body)
	}
	if other := ts.enrol(dev, ts.enrolBody(map[string]any{"sub": "bob"})); other.status != http.StatusConflict || other.str("error") != "access_denied" {
		t.Errorf("enrolment for another user = %d %s, want 409 access_denied", other.status, other.str("error"))
	}

	got := ts.exchangeScope(dev, "ticket:escalate")
	if got.status != 200 {
		t.Fatalf("enrolled exchange = %d %v, want 200", got.status, got.body)
	}
	denied := ts.exchangeScope(dev, "laptop:unlock")
	if denied.status != 400 || denied.str("error") != "access_denied" || !strings.Contains(denied.str("error_description"), "managed") {
		t.Errorf("managed action from a registered device = %d %v, want access_denied naming managed", denied.status, denied.body)
	}

	records, err := ts.store.AuditRecords(context.Background(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var issued *audit.Record
	for i := range records {
		if records[i].Event == audit.EventExchange && records[i].Decision == audit.DecisionIssued {
			issued = &records[i]
		}
	}
	if issued == nil {
		t.Fatal("no audit record of the issued exchange")
	}
	if issued.DeviceJKT != dev.jkt || issued.DeviceTrust != "registered" {
		t.Errorf("audit device = %s %s, want %s registered", issued.DeviceJKT, issued.DeviceTrust, dev.jkt)
	}
}

func TestEnrolmentWithAttestation(t *testing.T) {
	ts := newDeviceServer(t)
	dev := newDevice(t)

	tests := []struct {
		name     string
		override map[string]any
		jkt      string
		wantDesc string
	}{
		{"attestation for another key", nil, newDevice(t).jkt, "cnf.jkt"},
		{"not compliant", map[string]any{"compliant": false}, dev.jkt, "compliant"},
		{"expired", map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}, dev.jkt, "expired"},
		{"wrong audience", map[string]any{"aud": "https://other.example"}, dev.jkt, "aud"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := ts.enrolBody(nil)
			body["attestation"] = ts.attestation(tc.jkt, tc.override)
			got := ts.enrol(dev, body)
			if got.status != 400 || got.str("error") != "invalid_request" || !strings.Contains(got.str("error_description"), tc.wantDesc) {
				t.Errorf("enrolment = %d %v, want invalid_request mentioning %s", got.status, got.body, tc.wantDesc)
			}
		})
	}

	body := ts.enrolBody(nil)
	body["attestation"] = ts.attestation(dev.jkt, nil)
	if got := ts.enrol(dev, body); got.status != http.StatusCreated || got.str("trust") != "managed" {
		t.Fatalf("attested enrolment = %d %v, want 201 managed", got.status, got.body)
	}
	if got := ts.exchangeScope(dev, "laptop:unlock"); got.status != 200 {
		t.Errorf("managed exchange = %d %v, want 200", got.status, got.body)
	}
	// Re-enrolling without an attestation keeps the device managed.
	if got := ts.enrol(dev, ts.enrolBody(nil)); got.str("trust") != "managed" {
		t.Errorf("re-enrolment trust = %s, want managed", got.str("trust"))
	}
}

func TestDeviceRevocationEndsTokens(t *testing.T) {
	ts := newDeviceServer(t)
	dev := newDevice(t)
	if got := ts.enrol(dev, ts.enrolBody(nil)); got.status != http.StatusCreated {
		t.Fatalf("enrolment = %d %v", got.status, got.body)
	}
	issued := ts.exchange(dev, ts.exchangeForm(ts.idToken(nil)))
	if issued.status != 200 {
		t.Fatalf("exchange = %d %v", issued.status, issued.body)
	}
	token := issued.str("access_token")
	if got := ts.introspect(token); got.body["active"] != true {
		t.Fatalf("introspection before revocation = %v, want active", got.body)
	}

	n, err := ts.store.RevokeDevice(context.Background(), dev.jkt, time.Now(),
		audit.Record{Time: time.Now(), Event: audit.EventDeviceRevocation, Decision: audit.DecisionRevoked})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("RevokeDevice revoked %d tokens, want 1", n)
	}
	if got := ts.introspect(token); got.body["active"] != false {
		t.Errorf("introspection after revocation = %v, want inactive", got.body)
	}
	got := ts.exchange(dev, ts.exchangeForm(ts.idToken(nil)))
	if got.status != 400 || got.str("error") != "access_denied" || !strings.Contains(got.str("error_description"), "revoked") {
		t.Errorf("exchange from a revoked device = %d %v, want access_denied naming the revocation", got.status, got.body)
	}
	if again := ts.enrol(dev, ts.enrolBody(nil)); again.status != http.StatusConflict {
		t.Errorf("re-enrolment of a revoked device = %d, want 409", again.status)
	}
}

func TestNonceChallengeAndRetry(t *testing.T) {
	ts := newDeviceServer(t)
	dev := newDevice(t)
	tokenURL := ts.issuer + authz.PathToken
	form := ts.exchangeForm(ts.idToken(nil))
	form.Set("client_id", "nonce-assistant")

	challenge := ts.post(authz.PathToken, form, http.Header{"DPoP": {dev.proof("POST", tokenURL, nil)}})
	if challenge.status != 400 || challenge.str("error") != "use_dpop_nonce" {
		t.Fatalf("proof without nonce = %d %v, want 400 use_dpop_nonce (RFC 9449 §8)", challenge.status, challenge.body)
	}
	nonce := challenge.header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce answer has no DPoP-Nonce header")
	}
	if cc := challenge.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}

	wrong := ts.post(authz.PathToken, form, http.Header{"DPoP": {dev.proof("POST", tokenURL, map[string]any{"nonce": "stale-" + nonce})}})
	if wrong.str("error") != "use_dpop_nonce" || wrong.header.Get("DPoP-Nonce") == "" {
		t.Errorf("stale nonce = %s with nonce header %q, want use_dpop_nonce with a new nonce", wrong.str("error"), wrong.header.Get("DPoP-Nonce"))
	}

	retry := ts.post(authz.PathToken, form, http.Header{"DPoP": {dev.proof("POST", tokenURL, map[string]any{"nonce": nonce})}})
	if retry.status != 200 {
		t.Fatalf("retry with the nonce = %d %v, want 200", retry.status, retry.body)
	}

	// A client without require_dpop_nonce is not challenged.
	plain := ts.exchange(dev, ts.exchangeForm(ts.idToken(nil)))
	if plain.status != 200 {
		t.Errorf("exchange of a client without nonces = %d %v, want 200", plain.status, plain.body)
	}
}
