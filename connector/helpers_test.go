package connector

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	testAudience  = "https://itsm.corp.example"
	testPublicURL = "https://itsm-api.corp.example"
	testClientID  = "itsm-connector"
	testSecret    = "itsm-connector-secret"
)

// testIssuer is an authorization server that serves metadata, a JWKS
// and introspection, and signs action tokens.
type testIssuer struct {
	t      *testing.T
	server *httptest.Server
	url    string
	key    *ecdsa.PrivateKey
	kid    string

	mu             sync.Mutex
	jwksFetches    int
	introspections int
	revoked        map[string]bool
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss := &testIssuer{t: t, key: key, kid: "key-1", revoked: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":                 iss.url,
			"jwks_uri":               iss.url + "/jwks",
			"introspection_endpoint": iss.url + "/introspect",
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		iss.mu.Lock()
		iss.jwksFetches++
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: iss.key.Public(), KeyID: iss.kid, Algorithm: "ES256", Use: "sig"}}}
		iss.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != testClientID || secret != testSecret {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		iss.mu.Lock()
		iss.introspections++
		active := !iss.revoked[r.PostFormValue("token")]
		iss.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]bool{"active": active})
	})
	iss.server = httptest.NewServer(mux)
	iss.url = iss.server.URL
	t.Cleanup(iss.server.Close)
	return iss
}

func (iss *testIssuer) counts() (jwks, introspections int) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.jwksFetches, iss.introspections
}

// rotate replaces the signing key and its kid.
func (iss *testIssuer) rotate(kid string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		iss.t.Fatal(err)
	}
	iss.mu.Lock()
	iss.key, iss.kid = key, kid
	iss.mu.Unlock()
}

// testClock is an adjustable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestClock() *testClock {
	return &testClock{now: time.Now().Truncate(time.Second)}
}

// newTestValidator returns a validator for iss whose clock is clock.
func newTestValidator(t *testing.T, iss *testIssuer, clock *testClock, edit func(*Config)) *Validator {
	t.Helper()
	cfg := Config{
		Issuer:        iss.url,
		Audience:      testAudience,
		PublicURL:     testPublicURL,
		Now:           clock.Now,
		Introspection: &IntrospectionConfig{ClientID: testClientID, ClientSecret: testSecret},
	}
	if edit != nil {
		edit(&cfg)
	}
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// testDevice is a client's DPoP key.
type testDevice struct {
	t   *testing.T
	key *ecdsa.PrivateKey
	jkt string
}

func newTestDevice(t *testing.T) *testDevice {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	thumb, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &testDevice{t: t, key: key, jkt: base64.RawURLEncoding.EncodeToString(thumb)}
}

// token signs an action token bound to d. Claims in override replace the
// defaults, and a nil value removes a claim.
func (iss *testIssuer) token(d *testDevice, now time.Time, override map[string]any) string {
	iss.t.Helper()
	claims := map[string]any{
		"iss":       iss.url,
		"sub":       "sso.corp.example|alice",
		"aud":       testAudience,
		"exp":       now.Add(5 * time.Minute).Unix(),
		"iat":       now.Unix(),
		"jti":       randomID(),
		"client_id": "voice-assistant",
		"scope":     "ticket:create",
		"acr":       "urn:corp:acr:mfa",
		"amr":       []string{"pwd", "otp"},
		"auth_time": now.Add(-time.Minute).Unix(),
		"cnf":       map[string]string{"jkt": d.jkt},
	}
	for k, v := range override {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	iss.mu.Lock()
	key, kid := iss.key, iss.kid
	iss.mu.Unlock()
	return signCompact(iss.t, jose.ES256, key, map[jose.HeaderKey]any{"typ": "at+jwt", "kid": kid}, claims)
}

// proof signs a DPoP proof by d for method and uri with ath of token.
func (d *testDevice) proof(method, uri, token string, now time.Time, override map[string]any) string {
	d.t.Helper()
	sum := sha256.Sum256([]byte(token))
	claims := map[string]any{
		"jti": randomID(),
		"htm": method,
		"htu": uri,
		"iat": now.Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(sum[:]),
	}
	for k, v := range override {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	headers := map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": jose.JSONWebKey{Key: d.key.Public()}}
	return signCompact(d.t, jose.ES256, d.key, headers, claims)
}

func signCompact(t *testing.T, alg jose.SignatureAlgorithm, key any, headers map[jose.HeaderKey]any, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for k, v := range headers {
		opts = opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
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

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// request builds a request to the connector as the server sees it.
func request(method, path, authorization string, proofs ...string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(""))
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

// challengeParams parses the auth-params of a DPoP challenge written by
// WriteError. It handles only the quoted values that WriteError writes.
func challengeParams(t *testing.T, header string) map[string]string {
	t.Helper()
	rest, ok := strings.CutPrefix(header, "DPoP ")
	if !ok {
		t.Fatalf("WWW-Authenticate = %q, want the DPoP scheme", header)
	}
	params := map[string]string{}
	for rest != "" {
		name, after, ok := strings.Cut(rest, `="`)
		if !ok {
			t.Fatalf("WWW-Authenticate %q: malformed parameter at %q", header, rest)
		}
		value, tail, ok := strings.Cut(after, `"`)
		if !ok {
			t.Fatalf("WWW-Authenticate %q: unterminated value", header)
		}
		params[name] = value
		rest = strings.TrimPrefix(tail, ", ")
	}
	return params
}
