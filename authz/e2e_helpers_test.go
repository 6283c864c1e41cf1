package authz_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/sottotest"
	"github.com/sotto-auth/sotto/storage"
)

// testServer is a Sotto server on a real loopback listener, configured
// from the example files and a fresh SQLite database.
type testServer struct {
	t      *testing.T
	dir    string
	addr   string
	issuer string
	http   *httptest.Server
	store  *storage.Store
	srv    *authz.Server
	idpKey jose.JSONWebKey
}

// newTestServer starts a server in dir; a second call with the same dir
// and addr is a restart on the same database.
func newTestServer(t *testing.T, dir, addr string) *testServer {
	t.Helper()
	if dir == "" {
		dir = sottotest.CopyExamples(t, filepath.Join("..", "examples"))
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	if host := os.Getenv("SOTTO_TEST_ISSUER_HOST"); host != "" {
		// Passkey tests need a domain: WebAuthn accepts no IP address as RP ID.
		issuer = "http://" + net.JoinHostPort(host, strconvPort(ln.Addr()))
	}
	t.Setenv("SOTTO_ISSUER", issuer+os.Getenv("SOTTO_TEST_ISSUER_PATH"))
	t.Setenv("SOTTO_LISTEN", ln.Addr().String())
	in := sottotest.Open(t, filepath.Join(dir, "sotto.yaml"), sottotest.Options{})
	cfg, store, srv := in.Config, in.Store, in.Server

	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()

	ts := &testServer{t: t, dir: dir, addr: ln.Addr().String(), issuer: cfg.Issuer, http: hs, store: store, srv: srv}
	ts.idpKey = loadIDPKey(t)
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.http == nil {
		return
	}
	ts.http.Close()
	ts.store.Close()
	ts.http = nil
}

func loadIDPKey(t *testing.T) jose.JSONWebKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "idp-dev-key.jwk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	return k
}

// idToken signs a corporate ID token with the example IdP key. Claims in
// override replace the defaults; a nil value removes a claim.
func (ts *testServer) idToken(override map[string]any) string {
	ts.t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss":       "https://sso.corp.example",
		"aud":       "sotto",
		"sub":       "alice",
		"groups":    []string{"employees"},
		"iat":       now.Unix(),
		"exp":       now.Add(10 * time.Minute).Unix(),
		"auth_time": now.Add(-time.Minute).Unix(),
		"acr":       "urn:corp:acr:mfa",
		"amr":       []string{"pwd", "otp"},
		"jti":       randomString(),
	}
	for k, v := range override {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	return signJWT(ts.t, ts.idpKey, "JWT", claims, nil)
}

func signJWT(t *testing.T, key jose.JSONWebKey, typ string, claims map[string]any, extraHeaders map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", key.KeyID)
	for k, v := range extraHeaders {
		opts = opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key.Key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// device is an assistant's DPoP key.
type device struct {
	t   *testing.T
	key *ecdsa.PrivateKey
	jkt string
}

func newDevice(t *testing.T) *device {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	thumb, err := (&jose.JSONWebKey{Key: k.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &device{t: t, key: k, jkt: base64.RawURLEncoding.EncodeToString(thumb)}
}

// proof returns a DPoP proof (RFC 9449 §4.2) for method and uri.
func (d *device) proof(method, uri string, override map[string]any) string {
	d.t.Helper()
	opts := (&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jose.JSONWebKey{Key: d.key.Public()})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: d.key}, opts)
	if err != nil {
		d.t.Fatal(err)
	}
	claims := map[string]any{"jti": randomString(), "htm": method, "htu": uri, "iat": time.Now().Unix()}
	for k, v := range override {
		claims[k] = v
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		d.t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func randomString() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// exchangeForm is a valid token exchange request for ticket:create.
func (ts *testServer) exchangeForm(subject string) url.Values {
	return url.Values{
		"grant_type":         {exchange.GrantType},
		"client_id":          {"voice-assistant"},
		"subject_token":      {subject},
		"subject_token_type": {exchange.TokenTypeIDToken},
		"scope":              {"ticket:create"},
		"audience":           {"https://itsm.corp.example"},
	}
}

// response is a decoded JSON answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
}

func (r response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// post sends form to path with the given headers.
func (ts *testServer) post(path string, form url.Values, header http.Header) response {
	ts.t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	return ts.do(req)
}

func (ts *testServer) do(req *http.Request) response {
	ts.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &out.body); err != nil {
			ts.t.Fatalf("%s %s: body is not JSON: %q", req.Method, req.URL.Path, body)
		}
	}
	return out
}

// exchange sends a token exchange with a fresh proof from d.
func (ts *testServer) exchange(d *device, form url.Values) response {
	ts.t.Helper()
	return ts.post(authz.PathToken, form, http.Header{"DPoP": {d.proof("POST", ts.issuer+authz.PathToken, nil)}})
}

func (ts *testServer) introspect(token string) response {
	ts.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.issuer+authz.PathIntrospect,
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("itsm-connector", "itsm-connector-dev-secret")
	return ts.do(req)
}

func (ts *testServer) jwks() jose.JSONWebKeySet {
	ts.t.Helper()
	resp, err := http.Get(ts.issuer + authz.PathJWKS)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		ts.t.Fatal(err)
	}
	return set
}

// verifyActionToken checks token as a connector would, against the JWKS.
func verifyActionToken(t *testing.T, set jose.JSONWebKeySet, token string) map[string]any {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parse action token: %v", err)
	}
	if typ, _ := parsed.Headers[0].ExtraHeaders["typ"].(string); typ != "at+jwt" {
		t.Errorf("action token typ = %q, want at+jwt (RFC 9068 §2.1)", typ)
	}
	keys := set.Key(parsed.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q found %d times in the JWKS, want once", parsed.Headers[0].KeyID, len(keys))
	}
	claims := map[string]any{}
	if err := parsed.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("verify action token: %v", err)
	}
	return claims
}

func sha256B64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func strconvPort(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}
