package authz_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"

	"github.com/sotto-auth/sotto/stepup"
)

// newPasskeyServer starts a test server whose issuer is on localhost, so
// the WebAuthn RP ID is localhost and the origin is the issuer's.
func newPasskeyServer(t *testing.T) *testServer {
	t.Helper()
	t.Setenv("SOTTO_TEST_ISSUER_HOST", "localhost")
	return newTestServer(t, "", "")
}

// authenticator is a software WebAuthn authenticator with one P-256
// credential: it builds registrations with the none attestation
// (WebAuthn Level 3, Section 8.7) and signed assertions.
type authenticator struct {
	t       *testing.T
	key     *ecdsa.PrivateKey
	credID  []byte
	handle  []byte
	counter uint32
	origin  string
	rpID    string
}

func newAuthenticator(t *testing.T, ts *testServer) *authenticator {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	u, _ := url.Parse(ts.issuer)
	return &authenticator{t: t, key: key, credID: id, origin: u.Scheme + "://" + u.Host, rpID: u.Hostname()}
}

func (a *authenticator) id() string { return base64.RawURLEncoding.EncodeToString(a.credID) }

// Flags of authenticator data (WebAuthn Level 3, Section 6.1).
const (
	flagUP byte = 0x01
	flagUV byte = 0x04
	flagAT byte = 0x40
)

func b64bytes(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (a *authenticator) coseKey() []byte {
	pub := a.key.PublicKey
	x, y := make([]byte, 32), make([]byte, 32)
	pub.X.FillBytes(x)
	pub.Y.FillBytes(y)
	b, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         int64(webauthncose.P256), XCoord: x, YCoord: y,
	})
	if err != nil {
		a.t.Fatal(err)
	}
	return b
}

func (a *authenticator) authData(rpID string, flags byte, counter uint32, attested bool) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append([]byte{}, h[:]...)
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, counter)
	if attested {
		out = append(out, make([]byte, 16)...) // AAGUID zero: no attestation
		out = binary.BigEndian.AppendUint16(out, uint16(len(a.credID)))
		out = append(out, a.credID...)
		out = append(out, a.coseKey()...)
	}
	return out
}

func (a *authenticator) clientData(typ, challenge, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return b
}

// bearer returns the Authorization header of an ID token.
func bearer(idToken string) http.Header {
	return http.Header{"Authorization": {"Bearer " + idToken}}
}

// postJSON sends v as JSON to path with header.
func (ts *testServer) postJSON(path string, v any, header http.Header) response {
	ts.t.Helper()
	body, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, ts.issuer+path, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range header {
		req.Header[k] = vs
	}
	return ts.do(req)
}

// register runs a registration ceremony for the user of idToken with
// the given authenticator data flags.
func (ts *testServer) register(a *authenticator, idToken string, flags byte) response {
	ts.t.Helper()
	opts := ts.postJSON(stepup.PathPasskeyRegistrations, map[string]any{}, bearer(idToken))
	if opts.status != http.StatusOK {
		ts.t.Fatalf("registration options: status %d, body %v", opts.status, opts.body)
	}
	pk := opts.body["publicKey"].(map[string]any)
	user := pk["user"].(map[string]any)
	a.handle, _ = base64.RawURLEncoding.DecodeString(strings.TrimRight(user["id"].(string), "="))
	att, err := webauthncbor.Marshal(map[string]any{
		"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(a.rpID, flags|flagAT, 0, true),
	})
	if err != nil {
		ts.t.Fatal(err)
	}
	cred := map[string]any{
		"id": a.id(), "rawId": a.id(), "type": "public-key", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64bytes(a.clientData("webauthn.create", pk["challenge"].(string), a.origin)),
			"attestationObject": b64bytes(att),
			"transports":        []string{"internal"},
		},
	}
	return ts.postJSON(stepup.PathPasskeys, map[string]any{
		"state": opts.body["state"], "name": "Work laptop", "credential": cred,
	}, bearer(idToken))
}

// passkeyOptions fetches the request options of challenge id.
func (ts *testServer) passkeyOptions(id string) response {
	ts.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.issuer+stepup.PathPasskeyChallenges+"/"+id+"/options", nil)
	return ts.do(req)
}

// assertion describes how an assertion deviates from a valid one.
type assertion struct {
	challenge string // base64url; empty means the options' challenge
	origin    string
	rpID      string
	flags     byte // zero means UP and UV
	counter   uint32
	typ       string
}

// sign returns the PublicKeyCredential JSON of an assertion over
// challenge (WebAuthn Level 3, Section 6.3.3: the signature covers
// authenticatorData and the SHA-256 of clientDataJSON).
func (a *authenticator) sign(challenge string, o assertion) map[string]any {
	a.t.Helper()
	if o.challenge != "" {
		challenge = o.challenge
	}
	origin, rpID, flags, typ := a.origin, a.rpID, flagUP|flagUV, "webauthn.get"
	if o.origin != "" {
		origin = o.origin
	}
	if o.rpID != "" {
		rpID = o.rpID
	}
	if o.flags != 0 {
		flags = o.flags
	}
	if o.typ != "" {
		typ = o.typ
	}
	counter := o.counter
	if counter == 0 {
		a.counter++
		counter = a.counter
	}
	ad := a.authData(rpID, flags, counter, false)
	cd := a.clientData(typ, challenge, origin)
	hash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), hash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		a.t.Fatal(err)
	}
	return map[string]any{
		"id": a.id(), "rawId": a.id(), "type": "public-key", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64bytes(cd), "authenticatorData": b64bytes(ad), "signature": b64bytes(sig), "userHandle": b64bytes(a.handle),
		},
	}
}

// approveWithPasskey fetches the options of challenge id and posts an
// assertion by a, shaped by o.
func (ts *testServer) approveWithPasskey(a *authenticator, id string, o assertion) response {
	ts.t.Helper()
	opts := ts.passkeyOptions(id)
	if opts.status != http.StatusOK {
		return opts
	}
	challenge := opts.body["publicKey"].(map[string]any)["challenge"].(string)
	return ts.postJSON(stepup.PathPasskeyChallenges+"/"+id+"/assertion", a.sign(challenge, o),
		http.Header{stepup.CSRFHeader: {opts.body["csrf_token"].(string)}})
}

// expenseForm is an exchange for expense:approve, a passkey step-up action.
func (ts *testServer) expenseForm(idToken string) url.Values {
	f := ts.exchangeForm(idToken)
	f.Set("scope", "expense:approve")
	f.Set("audience", "https://erp.corp.example")
	return f
}

// managerToken is an ID token of a manager named sub.
func (ts *testServer) managerToken(sub string) string {
	return ts.idToken(map[string]any{"sub": sub, "groups": []string{"managers"}})
}

// passkeyChallengeID starts an exchange for expense:approve and returns
// the challenge ID.
func (ts *testServer) passkeyChallengeID(dev *device, form url.Values) string {
	ts.t.Helper()
	first := ts.exchange(dev, form)
	obj := stepUpObject(ts.t, first)
	id, _ := obj["challenge_id"].(string)
	return id
}
