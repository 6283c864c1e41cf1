package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/connector"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/sottotest"
)

// startSotto starts a Sotto server from the example configuration on a
// loopback listener with a fresh SQLite database, and returns its issuer.
func startSotto(t *testing.T) string {
	t.Helper()
	dir := sottotest.CopyExamples(t, filepath.Join(".."))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	t.Setenv("SOTTO_ISSUER", issuer)
	t.Setenv("SOTTO_LISTEN", ln.Addr().String())
	in := sottotest.Open(t, filepath.Join(dir, "sotto.yaml"), sottotest.Options{})
	store, srv := in.Store, in.Server
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		store.Close()
	})
	return issuer
}

// startConnector starts the ticket API on a loopback listener, with
// introspection on POST /tickets, and returns its URL.
func startConnector(t *testing.T, issuer string, now func() time.Time, nonces bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	publicURL := "http://" + ln.Addr().String()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := options{
		issuer: issuer, listen: ln.Addr().String(), publicURL: publicURL, audience: "https://itsm.corp.example",
		introspect: true, clientID: "itsm-connector", clientSecret: "itsm-connector-dev-secret", nonces: nonces,
		now: now,
	}
	validator, err := newValidator(context.Background(), opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(http.MaxBytesHandler(newHandler(validator, true, logger), maxBodyBytes))
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	return publicURL
}

// e2eDevice is the assistant's DPoP key.
type e2eDevice struct {
	t   *testing.T
	key *ecdsa.PrivateKey
}

func newE2EDevice(t *testing.T) *e2eDevice {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &e2eDevice{t: t, key: k}
}

func (d *e2eDevice) jkt() string {
	thumb, err := (&jose.JSONWebKey{Key: d.key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		d.t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(thumb)
}

func (d *e2eDevice) proof(method, uri, token string) string {
	claims := map[string]any{"jti": randomID(), "htm": method, "htu": uri, "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	opts := (&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jose.JSONWebKey{Key: d.key.Public()})
	return sign(d.t, jose.SigningKey{Algorithm: jose.ES256, Key: d.key}, opts, claims)
}

func sign(t *testing.T, key jose.SigningKey, opts *jose.SignerOptions, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
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

// idToken signs a corporate ID token with the example IdP key.
func idToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "idp-dev-key.jwk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := map[string]any{
		"iss": "https://sso.corp.example", "aud": "sotto", "sub": "alice", "groups": []string{"employees"},
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "auth_time": now.Add(-time.Minute).Unix(),
		"acr": "urn:corp:acr:mfa", "amr": []string{"pwd", "otp"}, "jti": randomID(),
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.KeyID)
	return sign(t, jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: k.Key}, opts, claims)
}

// exchangeToken runs the RFC 8693 exchange for ticket:create bound to d.
func exchangeToken(t *testing.T, issuer string, d *e2eDevice, subject string) string {
	t.Helper()
	form := url.Values{
		"grant_type": {exchange.GrantType}, "client_id": {"voice-assistant"},
		"subject_token": {subject}, "subject_token_type": {exchange.TokenTypeIDToken},
		"scope": {"ticket:create"}, "audience": {"https://itsm.corp.example"},
	}
	req, _ := http.NewRequest(http.MethodPost, issuer+authz.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", d.proof(http.MethodPost, issuer+authz.PathToken, ""))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token exchange: status %d, decode error %v", resp.StatusCode, err)
	}
	if body.TokenType != "DPoP" {
		t.Fatalf("token_type = %q, want DPoP", body.TokenType)
	}
	return body.AccessToken
}

func revoke(t *testing.T, issuer, token string) {
	t.Helper()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}, "client_id": {"voice-assistant"}}
	resp, err := http.PostForm(issuer+authz.PathRevoke, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation: status %d, want 200", resp.StatusCode)
	}
}

// call sends method to the connector's /tickets with the given headers.
func call(t *testing.T, method, target, scheme, token, proof string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, target, strings.NewReader(`{"title":"Printer on floor 3 is jammed"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", scheme+" "+token)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, challengeError(resp.Header.Get("WWW-Authenticate"))
}

// challengeError returns the error auth-param of a DPoP challenge.
func challengeError(header string) string {
	_, after, ok := strings.Cut(header, `error="`)
	if !ok {
		return ""
	}
	value, _, _ := strings.Cut(after, `"`)
	return value
}

// shiftedClock is a clock that a test can move forward.
type shiftedClock struct {
	mu    sync.Mutex
	shift time.Duration
}

func (c *shiftedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.shift)
}

func (c *shiftedClock) set(d time.Duration) {
	c.mu.Lock()
	c.shift = d
	c.mu.Unlock()
}

func TestEndToEnd(t *testing.T) {
	issuer := startSotto(t)
	clock := &shiftedClock{}
	base := startConnector(t, issuer, clock.Now, false)
	tickets := base + "/tickets"
	device := newE2EDevice(t)

	token := exchangeToken(t, issuer, device, idToken(t))
	replayed := device.proof(http.MethodPost, tickets, token)

	t.Run("token and proof create a ticket", func(t *testing.T) {
		if status, _ := call(t, http.MethodPost, tickets, "DPoP", token, replayed); status != http.StatusCreated {
			t.Errorf("status = %d, want 201", status)
		}
	})

	revoked := exchangeToken(t, issuer, device, idToken(t))
	revoke(t, issuer, revoked)

	tests := []struct {
		name       string
		method     string
		scheme     string
		token      string
		proof      func() string
		wantStatus int
		wantError  string
	}{
		{name: "proof by another key", token: token,
			proof:      func() string { return newE2EDevice(t).proof(http.MethodPost, tickets, token) },
			wantStatus: http.StatusUnauthorized, wantError: connector.CodeInvalidDPoPProof},
		{name: "replayed proof", token: token, proof: func() string { return replayed },
			wantStatus: http.StatusUnauthorized, wantError: connector.CodeInvalidDPoPProof},
		{name: "proof for another URL", token: token,
			proof:      func() string { return device.proof(http.MethodPost, base+"/admin", token) },
			wantStatus: http.StatusUnauthorized, wantError: connector.CodeInvalidDPoPProof},
		{name: "token sent as Bearer", scheme: "Bearer", token: token, proof: func() string { return "" },
			wantStatus: http.StatusUnauthorized, wantError: connector.CodeInvalidToken},
		{name: "revoked token with introspection", token: revoked,
			proof:      func() string { return device.proof(http.MethodPost, tickets, revoked) },
			wantStatus: http.StatusUnauthorized, wantError: connector.CodeInvalidToken},
		{name: "ID token as access token", token: idToken(t),
			proof:      func() string { return device.proof(http.MethodPost, tickets, "") },
			wantStatus: http.StatusUnauthorized, wantError: connector.CodeInvalidToken},
		{name: "token without ticket:read", method: http.MethodGet, token: token,
			proof:      func() string { return device.proof(http.MethodGet, tickets, token) },
			wantStatus: http.StatusForbidden, wantError: connector.CodeInsufficientScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, scheme := tt.method, tt.scheme
			if method == "" {
				method = http.MethodPost
			}
			if scheme == "" {
				scheme = "DPoP"
			}
			status, code := call(t, method, tickets, scheme, tt.token, tt.proof())
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d", status, tt.wantStatus)
			}
			if code != tt.wantError {
				t.Errorf("WWW-Authenticate error = %q, want %q", code, tt.wantError)
			}
		})
	}

	t.Run("expired token", func(t *testing.T) {
		// The token lives 5 minutes, and the connector's clock moves past that
		// while the proof stays fresh by the same clock.
		clock.set(6 * time.Minute)
		defer clock.set(0)
		// A proof with the real time as iat would look 6 minutes old to
		// the moved clock, so its iat follows the moved clock.
		proof := signProofAt(t, device, tickets, token, clock.Now())
		status, code := call(t, http.MethodPost, tickets, "DPoP", token, proof)
		if status != http.StatusUnauthorized || code != connector.CodeInvalidToken {
			t.Errorf("status %d, error %q; want 401 invalid_token", status, code)
		}
	})
}

func signProofAt(t *testing.T, d *e2eDevice, uri, token string, at time.Time) string {
	sum := sha256.Sum256([]byte(token))
	claims := map[string]any{"jti": randomID(), "htm": http.MethodPost, "htu": uri, "iat": at.Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(sum[:])}
	opts := (&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jose.JSONWebKey{Key: d.key.Public()})
	return sign(t, jose.SigningKey{Algorithm: jose.ES256, Key: d.key}, opts, claims)
}
