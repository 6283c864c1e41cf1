package exchange

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwksServer is an IdP's jwks_uri whose response a test can change.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu     sync.Mutex
	status int
	body   []byte
	delay  time.Duration
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK, body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, body, delay := s.status, s.body, s.delay
		s.mu.Unlock()
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// remoteFixture is one issuer whose keys come from a jwks_uri only.
type remoteFixture struct {
	clock    *testClock
	server   *jwksServer
	verifier *SubjectVerifier
	logs     *syncBuffer
}

func newRemoteFixture(t *testing.T, server *jwksServer, opts SubjectOptions) *remoteFixture {
	t.Helper()
	f := &remoteFixture{clock: newTestClock(), server: server, logs: &syncBuffer{}}
	opts.Now = f.clock.Now
	opts.Logger = slog.New(slog.NewTextHandler(f.logs, nil))
	opts.HTTPClient = server.Client()
	v, err := NewSubjectVerifier([]TrustedIssuer{{
		Issuer:        issuerA,
		Audience:      "sotto",
		SubjectPrefix: "corp-a",
		JWKSURI:       server.URL + "/jwks",
		Algorithms:    []jose.SignatureAlgorithm{jose.ES256},
	}}, opts)
	if err != nil {
		t.Fatalf("NewSubjectVerifier: %v", err)
	}
	f.verifier = v
	return f
}

// syncBuffer is a bytes.Buffer that log handlers may share between goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestJWKSURIFetchedOnFirstUse(t *testing.T) {
	key := newECKey(t, elliptic.P256(), "k1", jose.ES256)
	server := newJWKSServer(t, jwksJSON(t, key))
	f := newRemoteFixture(t, server, SubjectOptions{})

	if got := server.hits.Load(); got != 0 {
		t.Errorf("fetches before the first token = %d, want 0", got)
	}
	if _, err := f.verifier.Verify(context.Background(), signToken(t, key, false, nil, baseClaims(issuerA))); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got := server.hits.Load(); got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}
}

func TestJWKSURIRefetchOnKeyRotation(t *testing.T) {
	oldKey := newECKey(t, elliptic.P256(), "2026-11", jose.ES256)
	newKey := newECKey(t, elliptic.P256(), "2026-12", jose.ES256)
	server := newJWKSServer(t, jwksJSON(t, oldKey))
	f := newRemoteFixture(t, server, SubjectOptions{CacheSize: -1})
	ctx := context.Background()

	if _, err := f.verifier.Verify(ctx, signToken(t, oldKey, false, nil, baseClaims(issuerA))); err != nil {
		t.Fatalf("Verify with the old key: %v", err)
	}

	// The IdP rotates after the refetch interval has passed.
	server.serve(http.StatusOK, jwksJSON(t, oldKey, newKey))
	f.clock.Advance(31 * time.Second)
	if _, err := f.verifier.Verify(ctx, signToken(t, newKey, false, nil, baseClaims(issuerA))); err != nil {
		t.Fatalf("Verify with the new key: %v", err)
	}
	if got := server.hits.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2 (first use and the unknown kid)", got)
	}
}

func TestJWKSURIRefetchIsRateLimited(t *testing.T) {
	key := newECKey(t, elliptic.P256(), "k1", jose.ES256)
	unknown := newECKey(t, elliptic.P256(), "unknown", jose.ES256)
	server := newJWKSServer(t, jwksJSON(t, key))
	f := newRemoteFixture(t, server, SubjectOptions{CacheSize: -1, RefetchInterval: time.Minute})
	ctx := context.Background()
	token := signToken(t, unknown, false, nil, baseClaims(issuerA))

	steps := []struct {
		name        string
		advance     time.Duration
		wantFetches int64
	}{
		{name: "first use fetches once for both lookups", advance: 0, wantFetches: 1},
		{name: "within the interval nothing is fetched", advance: 30 * time.Second, wantFetches: 1},
		{name: "just before the interval nothing is fetched", advance: 29 * time.Second, wantFetches: 1},
		{name: "after the interval one refetch", advance: time.Second, wantFetches: 2},
		{name: "right after the refetch nothing is fetched", advance: time.Second, wantFetches: 2},
	}
	for _, step := range steps {
		f.clock.Advance(step.advance)
		for range 3 {
			_, err := f.verifier.Verify(ctx, token)
			checkRejected(t, err, "kid")
		}
		if got := server.hits.Load(); got != step.wantFetches {
			t.Errorf("%s: fetches = %d, want %d", step.name, got, step.wantFetches)
		}
	}
}

func TestJWKSURIKeepsLastGoodSet(t *testing.T) {
	key := newECKey(t, elliptic.P256(), "k1", jose.ES256)
	unknown := newECKey(t, elliptic.P256(), "unknown", jose.ES256)
	server := newJWKSServer(t, jwksJSON(t, key))
	f := newRemoteFixture(t, server, SubjectOptions{CacheSize: -1})
	ctx := context.Background()
	good := signToken(t, key, false, nil, baseClaims(issuerA))

	if _, err := f.verifier.Verify(ctx, good); err != nil {
		t.Fatalf("Verify before the outage: %v", err)
	}
	server.serve(http.StatusServiceUnavailable, []byte("maintenance"))
	f.clock.Advance(31 * time.Second)

	_, err := f.verifier.Verify(ctx, signToken(t, unknown, false, nil, baseClaims(issuerA)))
	checkRejected(t, err, "kid")
	if got := server.hits.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2", got)
	}
	if _, err := f.verifier.Verify(ctx, good); err != nil {
		t.Errorf("Verify with the last good set: %v", err)
	}

	logs := f.logs.String()
	if !strings.Contains(logs, "jwks_uri fetch failed") || !strings.Contains(logs, issuerA) {
		t.Errorf("logs = %q, want a fetch warning naming issuer %q", logs, issuerA)
	}
	if !strings.Contains(logs, "status 503") {
		t.Errorf("logs = %q, want the status 503", logs)
	}
}

func TestJWKSURIRefreshesAfterCacheTTL(t *testing.T) {
	oldKey := newECKey(t, elliptic.P256(), "old", jose.ES256)
	newKey := newECKey(t, elliptic.P256(), "new", jose.ES256)
	server := newJWKSServer(t, jwksJSON(t, oldKey))
	f := newRemoteFixture(t, server, SubjectOptions{CacheSize: -1, CacheTTL: 10 * time.Minute})
	ctx := context.Background()
	token := signToken(t, oldKey, false, nil, with(baseClaims(issuerA), "exp", testStart.Add(time.Hour).Unix()))

	if _, err := f.verifier.Verify(ctx, token); err != nil {
		t.Fatalf("first Verify: %v", err)
	}
	server.serve(http.StatusOK, jwksJSON(t, newKey))
	f.clock.Advance(9 * time.Minute)
	if _, err := f.verifier.Verify(ctx, token); err != nil {
		t.Fatalf("Verify before the TTL: %v", err)
	}
	if got := server.hits.Load(); got != 1 {
		t.Errorf("fetches before the TTL = %d, want 1", got)
	}

	// The call after the TTL still uses the cached set, and the refresh runs
	// in the background.
	f.clock.Advance(time.Minute)
	if _, err := f.verifier.Verify(ctx, token); err != nil {
		t.Fatalf("Verify at the TTL: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for server.hits.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := server.hits.Load(); got != 2 {
		t.Fatalf("fetches after the TTL = %d, want 2", got)
	}

	// Once the refresh has finished, the old key is gone.
	keys := f.verifier.issuers[issuerA].keys.remote
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if set := keys.snapshot(); len(set) == 1 && set[0].KeyID == "new" {
			break
		}
	}
	_, err := f.verifier.Verify(ctx, token)
	checkRejected(t, err, "kid")
}

func TestJWKSURIConcurrentFirstUseFetchesOnce(t *testing.T) {
	key := newECKey(t, elliptic.P256(), "k1", jose.ES256)
	server := newJWKSServer(t, jwksJSON(t, key))
	server.delay = 100 * time.Millisecond
	f := newRemoteFixture(t, server, SubjectOptions{CacheSize: -1})
	token := signToken(t, key, false, nil, baseClaims(issuerA))

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := f.verifier.Verify(context.Background(), token); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Verify: %v", err)
	}
	if got := server.hits.Load(); got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}
}

func TestJWKSURIUnusableResponse(t *testing.T) {
	key := newECKey(t, elliptic.P256(), "k1", jose.ES256)
	private, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.private, KeyID: "k1"}}})
	if err != nil {
		t.Fatalf("encode private key: %v", err)
	}
	good := jwksJSON(t, key)
	oversized := append(good[:len(good)-1:len(good)-1], []byte(`,"padding":"`+strings.Repeat("x", maxJWKSBodySize)+`"}`)...)

	tests := []struct {
		name    string
		status  int
		body    []byte
		wantLog string
	}{
		{name: "status 404 is rejected", status: http.StatusNotFound, body: good, wantLog: "status 404"},
		{name: "status 204 is rejected", status: http.StatusNoContent, body: nil, wantLog: "status 204"},
		{name: "body over 1 MiB is rejected", status: http.StatusOK, body: oversized, wantLog: "larger than"},
		{name: "invalid JSON is rejected", status: http.StatusOK, body: []byte("<html>"), wantLog: "decode JWK set"},
		{name: "empty key set is rejected", status: http.StatusOK, body: []byte(`{"keys":[]}`), wantLog: "no usable"},
		{name: "private key is rejected", status: http.StatusOK, body: private, wantLog: "private key material"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := newJWKSServer(t, tt.body)
			server.serve(tt.status, tt.body)
			f := newRemoteFixture(t, server, SubjectOptions{})

			_, err := f.verifier.Verify(context.Background(), signToken(t, key, false, nil, baseClaims(issuerA)))
			checkRejected(t, err, "jwks")
			if logs := f.logs.String(); !strings.Contains(logs, tt.wantLog) {
				t.Errorf("logs = %q, want them to contain %q", logs, tt.wantLog)
			}
			if logs := f.logs.String(); strings.Contains(logs, `"d"`) {
				t.Errorf("logs = %q, want no key material", logs)
			}
		})
	}
}

func TestParseJWKS(t *testing.T) {
	ec := newECKey(t, elliptic.P256(), "ec", jose.ES256)
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	encode := func(keys ...jose.JSONWebKey) []byte {
		data, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		if err != nil {
			t.Fatalf("encode JWK set: %v", err)
		}
		return data
	}
	encOnly := ec.publicJWK()
	encOnly.Use = "enc"
	goodEC := string(encode(ec.publicJWK()))
	unknownKty := `{"kty":"XYZ","kid":"future"}`

	tests := []struct {
		name     string
		data     []byte
		wantErr  string // "" means accepted
		wantKeys int
	}{
		{name: "public EC key is accepted", data: encode(ec.publicJWK()), wantKeys: 1},
		{name: "not JSON is rejected", data: []byte("keys"), wantErr: "decode JWK set"},
		{name: "empty file is rejected", data: nil, wantErr: "decode JWK set"},
		{name: "object without keys is rejected", data: []byte(`{}`), wantErr: "no usable"},
		{name: "empty key list is rejected", data: []byte(`{"keys":[]}`), wantErr: "no usable"},
		{name: "private key is rejected", data: encode(jose.JSONWebKey{Key: ec.private, KeyID: "ec"}), wantErr: "private key material"},
		{
			name:    "symmetric key is rejected",
			data:    encode(ec.publicJWK(), jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac"}),
			wantErr: "symmetric",
		},
		{name: "RSA key under 2048 bits is skipped", data: encode(jose.JSONWebKey{Key: &smallRSA.PublicKey, KeyID: "rsa"}), wantErr: "no usable"},
		{name: "encryption key is skipped", data: encode(encOnly), wantErr: "no usable"},
		{
			name:     "unknown key type is skipped beside a usable key",
			data:     []byte(`{"keys":[` + unknownKty + `,` + strings.TrimSuffix(strings.TrimPrefix(goodEC, `{"keys":[`), `]}`) + `]}`),
			wantKeys: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := parseJWKS(tt.data, issuerA, slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parseJWKS error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseJWKS: %v", err)
			}
			if len(keys) != tt.wantKeys {
				t.Errorf("keys = %d, want %d", len(keys), tt.wantKeys)
			}
		})
	}
}

func TestNewSubjectVerifierRejectsJWKSFile(t *testing.T) {
	ec := newECKey(t, elliptic.P256(), "ec", jose.ES256)
	private, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ec.private, KeyID: "ec"}}})
	if err != nil {
		t.Fatalf("encode private key: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{name: "empty set", data: []byte(`{"keys":[]}`), want: "no usable"},
		{name: "private key", data: private, want: "private key material"},
		{name: "symmetric key", data: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0","kid":"h"}]}`), want: "symmetric"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSubjectVerifier([]TrustedIssuer{{
				Issuer:        issuerA,
				Audience:      "sotto",
				SubjectPrefix: "corp-a",
				JWKSFile:      writeJWKS(t, tt.data),
				Algorithms:    []jose.SignatureAlgorithm{jose.ES256},
			}}, SubjectOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewSubjectVerifier error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestKeyFitsAlgorithm(t *testing.T) {
	p256 := newECKey(t, elliptic.P256(), "p256", jose.ES256).publicJWK()
	p384 := newECKey(t, elliptic.P384(), "p384", jose.ES384).publicJWK()
	noAlg := p256
	noAlg.Algorithm = ""

	tests := []struct {
		name string
		key  jose.JSONWebKey
		alg  jose.SignatureAlgorithm
		want bool
	}{
		{name: "P-256 key fits ES256", key: p256, alg: jose.ES256, want: true},
		{name: "P-384 key does not fit ES256", key: p384, alg: jose.ES256, want: false},
		{name: "key with alg ES256 does not fit ES384", key: p256, alg: jose.ES384, want: false},
		{name: "P-256 key without alg fits ES256", key: noAlg, alg: jose.ES256, want: true},
		{name: "P-256 key without alg does not fit ES384", key: noAlg, alg: jose.ES384, want: false},
		{name: "EC key does not fit RS256", key: noAlg, alg: jose.RS256, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keyFitsAlgorithm(tt.key, tt.alg); got != tt.want {
				t.Errorf("keyFitsAlgorithm(%s, %s) = %v, want %v", tt.key.KeyID, tt.alg, got, tt.want)
			}
		})
	}
}

func TestValidateJWKSURI(t *testing.T) {
	tests := []struct {
		uri     string
		wantErr bool
	}{
		{uri: "https://idp.example/keys", wantErr: false},
		{uri: "http://127.0.0.1:8080/keys", wantErr: false},
		{uri: "http://[::1]:8080/keys", wantErr: false},
		{uri: "http://localhost/keys", wantErr: false},
		{uri: "http://idp.example/keys", wantErr: true},
		{uri: "ftp://idp.example/keys", wantErr: true},
		{uri: "https:///keys", wantErr: true},
		{uri: "://bad", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			err := validateJWKSURI(tt.uri)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("validateJWKSURI(%q) error = %v, want error %v", tt.uri, err, tt.wantErr)
			}
		})
	}
}
