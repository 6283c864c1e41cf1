package exchange

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testStart is the injected clock's start, on a whole second.
var testStart = time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)

const (
	issuerA = "https://idp-a.example"
	issuerB = "https://idp-b.example"
)

// testClock is an injected clock that moves only when a test moves it.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: testStart} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testKey is a private signing key with the kid and alg it is published under.
type testKey struct {
	private any
	kid     string
	alg     jose.SignatureAlgorithm
}

func newECKey(t testing.TB, curve elliptic.Curve, kid string, alg jose.SignatureAlgorithm) testKey {
	t.Helper()
	private, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return testKey{private: private, kid: kid, alg: alg}
}

// publicJWK returns the public half of k as published in a JWK set.
func (k testKey) publicJWK() jose.JSONWebKey {
	jwk := jose.JSONWebKey{Key: k.private, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
	return jwk.Public()
}

// jwksJSON encodes the public halves of keys as a JWK set.
func jwksJSON(t testing.TB, keys ...testKey) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.publicJWK())
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatalf("encode JWK set: %v", err)
	}
	return data
}

// writeJWKS writes a JWK set file and returns its absolute path.
func writeJWKS(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write JWK set: %v", err)
	}
	return path
}

// signToken signs claims with k. The kid header is set unless omitKID, and
// headers are added to the protected header.
func signToken(t testing.TB, k testKey, omitKID bool, headers map[jose.HeaderKey]any, claims map[string]any) string {
	t.Helper()
	var signingKey any = k.private
	if !omitKID {
		signingKey = jose.JSONWebKey{Key: k.private, KeyID: k.kid}
	}
	opts := &jose.SignerOptions{ExtraHeaders: headers}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: signingKey}, opts)
	if err != nil {
		t.Fatalf("new signer: %v", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("encode claims: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return token
}

// unsignedToken builds header.payload.signature from raw JSON parts.
func unsignedToken(header, claims map[string]any, signature []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + enc.EncodeToString(signature)
}

// baseClaims returns valid claims for iss that expire in ten minutes.
func baseClaims(iss string) map[string]any {
	return map[string]any{
		"iss": iss,
		"aud": "sotto",
		"sub": "user-1",
		"exp": testStart.Add(10 * time.Minute).Unix(),
		"iat": testStart.Unix(),
		"nbf": testStart.Unix(),
	}
}

func with(claims map[string]any, name string, value any) map[string]any {
	out := make(map[string]any, len(claims)+1)
	for k, v := range claims {
		out[k] = v
	}
	out[name] = value
	return out
}

func without(claims map[string]any, name string) map[string]any {
	out := with(claims, name, nil)
	delete(out, name)
	return out
}

// fixture is two trusted issuers whose keys are in JWKS files.
type fixture struct {
	clock    *testClock
	verifier *SubjectVerifier
	keyA     testKey // issuer A, ES256, kid "a1"
	keyB     testKey // issuer B, ES256, kid "b1"
	keyB384  testKey // issuer B, ES384, kid "b2"
	stranger testKey // in no issuer's JWK set, kid "a1"
}

func newFixture(t testing.TB, opts SubjectOptions) *fixture {
	t.Helper()
	f := &fixture{
		clock:    newTestClock(),
		keyA:     newECKey(t, elliptic.P256(), "a1", jose.ES256),
		keyB:     newECKey(t, elliptic.P256(), "b1", jose.ES256),
		keyB384:  newECKey(t, elliptic.P384(), "b2", jose.ES384),
		stranger: newECKey(t, elliptic.P256(), "a1", jose.ES256),
	}
	issuers := []TrustedIssuer{
		{
			Issuer:        issuerA,
			Audience:      "sotto",
			SubjectPrefix: "corp-a",
			JWKSFile:      writeJWKS(t, jwksJSON(t, f.keyA)),
			Algorithms:    []jose.SignatureAlgorithm{jose.ES256},
		},
		{
			Issuer:        issuerB,
			Audience:      "sotto",
			GroupsClaim:   "roles",
			SubjectPrefix: "corp-b",
			JWKSFile:      writeJWKS(t, jwksJSON(t, f.keyB, f.keyB384)),
			Algorithms:    []jose.SignatureAlgorithm{jose.ES256, jose.ES384},
		},
	}
	opts.Now = f.clock.Now
	opts.Leeway = 30 * time.Second
	v, err := NewSubjectVerifier(issuers, opts)
	if err != nil {
		t.Fatalf("NewSubjectVerifier: %v", err)
	}
	f.verifier = v
	return f
}

// checkRejected fails the test unless err is a *SubjectError for check.
func checkRejected(t *testing.T, err error, check string) {
	t.Helper()
	var se *SubjectError
	if !errors.As(err, &se) {
		t.Fatalf("Verify error = %v, want a *SubjectError with check %q", err, check)
	}
	if se.Check != check {
		t.Errorf("check = %q (%s), want %q", se.Check, se.Description, check)
	}
	if se.Description == "" {
		t.Error("description is empty")
	}
}

func TestSubjectVerifyChecks(t *testing.T) {
	f := newFixture(t, SubjectOptions{CacheSize: -1})
	a := baseClaims(issuerA)
	now := testStart.Unix()

	publicDER, err := x509.MarshalPKIXPublicKey(&f.keyA.private.(*ecdsa.PrivateKey).PublicKey)
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	hmacWithPublicKey := testKey{private: publicDER, kid: "a1", alg: jose.HS256}
	p384 := f.keyB384
	p384.kid = "a1"

	tests := []struct {
		name      string
		token     string
		wantCheck string // "" means accepted
		check     func(t *testing.T, s *Subject)
	}{
		{
			name:  "valid token is accepted",
			token: signToken(t, f.keyA, false, nil, a),
			check: func(t *testing.T, s *Subject) {
				if s.Issuer != issuerA {
					t.Errorf("Issuer = %q, want %q", s.Issuer, issuerA)
				}
				if s.Subject != "user-1" {
					t.Errorf("Subject = %q, want %q", s.Subject, "user-1")
				}
				if want := testStart.Add(10 * time.Minute); !s.ExpiresAt.Equal(want) {
					t.Errorf("ExpiresAt = %v, want %v", s.ExpiresAt, want)
				}
				if !s.IssuedAt.Equal(testStart) {
					t.Errorf("IssuedAt = %v, want %v", s.IssuedAt, testStart)
				}
				if s.Groups != nil {
					t.Errorf("Groups = %q, want nil without a groups claim", s.Groups)
				}
			},
		},
		{name: "expired token is rejected", token: signToken(t, f.keyA, false, nil, with(a, "exp", now-1)), wantCheck: "exp"},
		{name: "token expiring now is rejected", token: signToken(t, f.keyA, false, nil, with(a, "exp", now)), wantCheck: "exp"},
		{name: "missing exp is rejected", token: signToken(t, f.keyA, false, nil, without(a, "exp")), wantCheck: "exp"},
		{
			name:      "token expiring in 500 ms is rejected as too soon",
			token:     signToken(t, f.keyA, false, nil, with(a, "exp", float64(now)+0.5)),
			wantCheck: "exp",
		},
		{name: "exp as a string is rejected", token: signToken(t, f.keyA, false, nil, with(a, "exp", "2099-01-01")), wantCheck: "exp"},
		{name: "nbf beyond leeway is rejected", token: signToken(t, f.keyA, false, nil, with(a, "nbf", now+31)), wantCheck: "nbf"},
		{name: "nbf within leeway is accepted", token: signToken(t, f.keyA, false, nil, with(a, "nbf", now+30))},
		{name: "nbf as a string is rejected", token: signToken(t, f.keyA, false, nil, with(a, "nbf", "0")), wantCheck: "nbf"},
		{name: "iat in the future beyond leeway is rejected", token: signToken(t, f.keyA, false, nil, with(a, "iat", now+60)), wantCheck: "iat"},
		{name: "iat within leeway is accepted", token: signToken(t, f.keyA, false, nil, with(a, "iat", now+20))},
		{
			name:  "missing iat is accepted with a zero IssuedAt",
			token: signToken(t, f.keyA, false, nil, without(a, "iat")),
			check: func(t *testing.T, s *Subject) {
				if !s.IssuedAt.IsZero() {
					t.Errorf("IssuedAt = %v, want zero", s.IssuedAt)
				}
			},
		},
		{name: "aud array with the audience and azp of this server is accepted", token: signToken(t, f.keyA, false, nil, with(with(a, "aud", []string{"other", "sotto"}), "azp", "sotto"))},
		{name: "aud array with the audience and no azp is rejected (OIDC Core 3.1.3.7)", token: signToken(t, f.keyA, false, nil, with(a, "aud", []string{"other", "sotto"})), wantCheck: "aud"},
		{name: "aud array with azp of another party is rejected", token: signToken(t, f.keyA, false, nil, with(with(a, "aud", []string{"other", "sotto"}), "azp", "other")), wantCheck: "aud"},
		{name: "aud array with only this server is accepted", token: signToken(t, f.keyA, false, nil, with(a, "aud", []string{"sotto"}))},
		{name: "sub with a control character is rejected", token: signToken(t, f.keyA, false, nil, with(a, "sub", "alice\x00admin")), wantCheck: "sub"},
		{name: "aud array without the audience is rejected", token: signToken(t, f.keyA, false, nil, with(a, "aud", []string{"other"})), wantCheck: "aud"},
		{name: "aud string of another audience is rejected", token: signToken(t, f.keyA, false, nil, with(a, "aud", "other")), wantCheck: "aud"},
		{name: "missing aud is rejected", token: signToken(t, f.keyA, false, nil, without(a, "aud")), wantCheck: "aud"},
		{name: "aud as a number is rejected", token: signToken(t, f.keyA, false, nil, with(a, "aud", 7)), wantCheck: "aud"},
		{name: "untrusted iss is rejected", token: signToken(t, f.keyA, false, nil, with(a, "iss", "https://evil.example")), wantCheck: "iss"},
		{name: "iss differing only in case is rejected", token: signToken(t, f.keyA, false, nil, with(a, "iss", "https://IDP-A.example")), wantCheck: "iss"},
		{name: "missing iss is rejected", token: signToken(t, f.keyA, false, nil, without(a, "iss")), wantCheck: "iss"},
		{
			name:      "unknown kid is rejected",
			token:     signToken(t, testKey{private: f.keyA.private, kid: "rotated", alg: jose.ES256}, false, nil, a),
			wantCheck: "kid",
		},
		{name: "token without kid is tried against the issuer's keys", token: signToken(t, f.keyA, true, nil, a)},
		{name: "typ JWT is accepted", token: signToken(t, f.keyA, false, map[jose.HeaderKey]any{"typ": "JWT"}, a)},
		{name: "typ jwt in lower case is accepted", token: signToken(t, f.keyA, false, map[jose.HeaderKey]any{"typ": "jwt"}, a)},
		{name: "typ application/jwt is accepted", token: signToken(t, f.keyA, false, map[jose.HeaderKey]any{"typ": "application/jwt"}, a)},
		{name: "typ at+jwt is rejected", token: signToken(t, f.keyA, false, map[jose.HeaderKey]any{"typ": "at+jwt"}, a), wantCheck: "typ"},
		{name: "typ dpop+jwt is rejected", token: signToken(t, f.keyA, false, map[jose.HeaderKey]any{"typ": "dpop+jwt"}, a), wantCheck: "typ"},
		{name: "typ as a number is rejected", token: signToken(t, f.keyA, false, map[jose.HeaderKey]any{"typ": 1}, a), wantCheck: "typ"},
		{name: "HS256 signed with the public key bytes is rejected", token: signToken(t, hmacWithPublicKey, false, nil, a), wantCheck: "alg"},
		{
			name:      "alg none is rejected",
			token:     unsignedToken(map[string]any{"alg": "none", "kid": "a1"}, a, nil),
			wantCheck: "alg",
		},
		{name: "alg allowed for another issuer only is rejected", token: signToken(t, p384, false, nil, a), wantCheck: "alg"},
		{name: "signature by another key under a trusted kid is rejected", token: signToken(t, f.stranger, false, nil, a), wantCheck: "signature"},
		{name: "signature by another key without kid is rejected", token: signToken(t, f.stranger, true, nil, a), wantCheck: "signature"},
		{
			name:      "tampered payload is rejected",
			token:     tamperPayload(t, signToken(t, f.keyA, false, nil, a), with(a, "sub", "admin")),
			wantCheck: "signature",
		},
		{name: "missing sub is rejected", token: signToken(t, f.keyA, false, nil, without(a, "sub")), wantCheck: "sub"},
		{name: "empty sub is rejected", token: signToken(t, f.keyA, false, nil, with(a, "sub", "")), wantCheck: "sub"},
		{name: "sub as a number is rejected", token: signToken(t, f.keyA, false, nil, with(a, "sub", 42)), wantCheck: "sub"},
		{name: "sub of 255 bytes is accepted", token: signToken(t, f.keyA, false, nil, with(a, "sub", strings.Repeat("s", 255)))},
		{name: "sub of 256 bytes is rejected", token: signToken(t, f.keyA, false, nil, with(a, "sub", strings.Repeat("s", 256))), wantCheck: "sub"},
		{name: "token over 16 KiB is rejected", token: strings.Repeat("a", MaxSubjectTokenSize+1), wantCheck: "size"},
		{name: "empty token is rejected", token: "", wantCheck: "syntax"},
		{name: "token of two parts is rejected", token: "eyJhbGciOiJFUzI1NiJ9.e30", wantCheck: "syntax"},
		{name: "JWS JSON serialization is rejected", token: `{"payload":"e30","signatures":[]}`, wantCheck: "syntax"},
		{
			name:      "payload that is not an object is rejected",
			token:     signRawPayload(t, f.keyA, []byte(`["iss"]`)),
			wantCheck: "syntax",
		},
		{
			name:  "groups array is copied",
			token: signToken(t, f.keyA, false, nil, with(a, "groups", []string{"sre", "payments"})),
			check: func(t *testing.T, s *Subject) {
				if want := []string{"sre", "payments"}; !slices.Equal(s.Groups, want) {
					t.Errorf("Groups = %q, want %q", s.Groups, want)
				}
			},
		},
		{
			name:  "groups as one string is one group",
			token: signToken(t, f.keyA, false, nil, with(a, "groups", "sre")),
			check: func(t *testing.T, s *Subject) {
				if want := []string{"sre"}; !slices.Equal(s.Groups, want) {
					t.Errorf("Groups = %q, want %q", s.Groups, want)
				}
			},
		},
		{
			name:  "groups with a non-string member are ignored",
			token: signToken(t, f.keyA, false, nil, with(a, "groups", []any{"sre", 7})),
			check: func(t *testing.T, s *Subject) {
				if s.Groups != nil {
					t.Errorf("Groups = %q, want nil", s.Groups)
				}
			},
		},
		{
			name:  "groups as an object are ignored",
			token: signToken(t, f.keyA, false, nil, with(a, "groups", map[string]any{"sre": true})),
			check: func(t *testing.T, s *Subject) {
				if s.Groups != nil {
					t.Errorf("Groups = %q, want nil", s.Groups)
				}
			},
		},
		{
			name: "custom groups claim name is read",
			token: signToken(t, f.keyB, false, nil,
				with(with(baseClaims(issuerB), "roles", []string{"approver"}), "groups", []string{"ignored"})),
			check: func(t *testing.T, s *Subject) {
				if want := []string{"approver"}; !slices.Equal(s.Groups, want) {
					t.Errorf("Groups = %q, want %q from the roles claim", s.Groups, want)
				}
			},
		},
		{
			name:  "ES384 key of an issuer that allows it is accepted",
			token: signToken(t, f.keyB384, false, nil, baseClaims(issuerB)),
		},
		{
			name: "acr, amr and auth_time are copied",
			token: signToken(t, f.keyA, false, nil, with(with(with(a,
				"acr", "phr"), "amr", []string{"hwk", "pin"}), "auth_time", now-120)),
			check: func(t *testing.T, s *Subject) {
				if s.ACR != "phr" {
					t.Errorf("ACR = %q, want %q", s.ACR, "phr")
				}
				if want := []string{"hwk", "pin"}; !slices.Equal(s.AMR, want) {
					t.Errorf("AMR = %q, want %q", s.AMR, want)
				}
				if want := testStart.Add(-2 * time.Minute); !s.AuthTime.Equal(want) {
					t.Errorf("AuthTime = %v, want %v", s.AuthTime, want)
				}
			},
		},
		{
			name:  "auth_time as a string is ignored",
			token: signToken(t, f.keyA, false, nil, with(a, "auth_time", "yesterday")),
			check: func(t *testing.T, s *Subject) {
				if !s.AuthTime.IsZero() {
					t.Errorf("AuthTime = %v, want zero", s.AuthTime)
				}
			},
		},
		{
			name:  "TokenID uses jti when present",
			token: signToken(t, f.keyA, false, nil, with(a, "jti", "abc-123")),
			check: func(t *testing.T, s *Subject) {
				if s.TokenID != "jti:corp-a|abc-123" {
					t.Errorf("TokenID = %q, want %q", s.TokenID, "jti:corp-a|abc-123")
				}
			},
		},
		{
			name:  "ID is the subject prefix and sub",
			token: signToken(t, f.keyA, false, nil, a),
			check: func(t *testing.T, s *Subject) {
				if s.ID != "corp-a|user-1" {
					t.Errorf("ID = %q, want %q", s.ID, "corp-a|user-1")
				}
			},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := f.verifier.Verify(context.Background(), tt.token)
			if tt.wantCheck != "" {
				checkRejected(t, err, tt.wantCheck)
				if s != nil {
					t.Errorf("Verify returned a subject %+v with its error", s)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

// tamperPayload replaces the payload of a signed token and keeps its signature.
func tamperPayload(t *testing.T, token string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("encode claims: %v", err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func signRawPayload(t *testing.T, k testKey, payload []byte) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.private, KeyID: k.kid}}, nil)
	if err != nil {
		t.Fatalf("new signer: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return token
}

func TestSubjectVerifyErrorOmitsToken(t *testing.T) {
	f := newFixture(t, SubjectOptions{})
	token := signToken(t, f.keyA, false, nil, with(baseClaims(issuerA), "exp", testStart.Unix()-60))

	_, err := f.verifier.Verify(context.Background(), token)
	checkRejected(t, err, "exp")
	for _, part := range strings.Split(token, ".") {
		if strings.Contains(err.Error(), part) {
			t.Errorf("error %q contains a part of the token", err)
		}
	}
}

func TestSubjectVerifyTokenIDWithoutJTI(t *testing.T) {
	f := newFixture(t, SubjectOptions{})
	token := signToken(t, f.keyA, false, nil, baseClaims(issuerA))

	s, err := f.verifier.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	sum := sha256.Sum256([]byte(token))
	want := "sha256:" + base64.RawURLEncoding.EncodeToString(sum[:])[:22]
	if s.TokenID != want {
		t.Errorf("TokenID = %q, want %q", s.TokenID, want)
	}
	if len(s.TokenID) != len("sha256:")+22 {
		t.Errorf("TokenID length = %d, want %d", len(s.TokenID), len("sha256:")+22)
	}
}

func TestSubjectVerifyPrefixSeparatesIssuers(t *testing.T) {
	f := newFixture(t, SubjectOptions{})
	ctx := context.Background()

	fromA, err := f.verifier.Verify(ctx, signToken(t, f.keyA, false, nil, baseClaims(issuerA)))
	if err != nil {
		t.Fatalf("Verify token of issuer A: %v", err)
	}
	fromB, err := f.verifier.Verify(ctx, signToken(t, f.keyB, false, nil, baseClaims(issuerB)))
	if err != nil {
		t.Fatalf("Verify token of issuer B: %v", err)
	}

	if fromA.Subject != fromB.Subject {
		t.Fatalf("corporate subs = %q and %q, want the same sub for this test", fromA.Subject, fromB.Subject)
	}
	if fromA.ID != "corp-a|user-1" {
		t.Errorf("ID from issuer A = %q, want %q", fromA.ID, "corp-a|user-1")
	}
	if fromB.ID != "corp-b|user-1" {
		t.Errorf("ID from issuer B = %q, want %q", fromB.ID, "corp-b|user-1")
	}
}

func TestSubjectVerifyKeyOfOtherIssuer(t *testing.T) {
	f := newFixture(t, SubjectOptions{})
	// Issuer B's key, with issuer A's iss and issuer B's kid.
	token := signToken(t, f.keyB, false, nil, baseClaims(issuerA))

	_, err := f.verifier.Verify(context.Background(), token)
	checkRejected(t, err, "kid")
}

func TestSubjectVerifyExampleIdPKey(t *testing.T) {
	data, err := os.ReadFile("../examples/idp-dev-key.jwk.json")
	if err != nil {
		t.Fatalf("read example key: %v", err)
	}
	var private jose.JSONWebKey
	if err := private.UnmarshalJSON(data); err != nil {
		t.Fatalf("decode example key: %v", err)
	}
	jwksFile, err := filepath.Abs("../examples/idp.jwks.json")
	if err != nil {
		t.Fatalf("resolve example JWK set: %v", err)
	}
	clock := newTestClock()
	v, err := NewSubjectVerifier([]TrustedIssuer{{
		Issuer:        "https://sso.corp.example",
		Audience:      "sotto",
		SubjectPrefix: "corp",
		JWKSFile:      jwksFile,
		Algorithms:    []jose.SignatureAlgorithm{jose.ES256},
	}}, SubjectOptions{Now: clock.Now})
	if err != nil {
		t.Fatalf("NewSubjectVerifier: %v", err)
	}

	key := testKey{private: private.Key, kid: private.KeyID, alg: jose.ES256}
	token := signToken(t, key, false, map[jose.HeaderKey]any{"typ": "JWT"},
		with(baseClaims("https://sso.corp.example"), "sub", "alice"))
	s, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if s.ID != "corp|alice" {
		t.Errorf("ID = %q, want %q", s.ID, "corp|alice")
	}
}

func TestSubjectVerifyCacheSkipsSignatureCheck(t *testing.T) {
	tests := []struct {
		name       string
		cacheSize  int
		wantChecks int64
	}{
		{name: "cache on verifies once", cacheSize: 0, wantChecks: 1},
		{name: "cache off verifies every time", cacheSize: -1, wantChecks: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, SubjectOptions{CacheSize: tt.cacheSize})
			token := signToken(t, f.keyA, false, nil, baseClaims(issuerA))

			for i := range 2 {
				if _, err := f.verifier.Verify(context.Background(), token); err != nil {
					t.Fatalf("Verify %d: %v", i+1, err)
				}
			}
			if got := f.verifier.signatureChecks.Load(); got != tt.wantChecks {
				t.Errorf("signature checks = %d, want %d", got, tt.wantChecks)
			}
		})
	}
}

func TestSubjectVerifyCachedTokenExpires(t *testing.T) {
	f := newFixture(t, SubjectOptions{})
	token := signToken(t, f.keyA, false, nil, baseClaims(issuerA))
	ctx := context.Background()

	if _, err := f.verifier.Verify(ctx, token); err != nil {
		t.Fatalf("first Verify: %v", err)
	}
	f.clock.Advance(10*time.Minute - 500*time.Millisecond)
	_, err := f.verifier.Verify(ctx, token)
	checkRejected(t, err, "exp")
	if got := f.verifier.cache.len(); got != 0 {
		t.Errorf("cache entries after rejection = %d, want 0", got)
	}
	if got := f.verifier.signatureChecks.Load(); got != 1 {
		t.Errorf("signature checks = %d, want 1 because the rejection came from the cache", got)
	}
}

func TestSubjectVerifyFailureNotCached(t *testing.T) {
	f := newFixture(t, SubjectOptions{})
	// Not yet valid now, valid after the clock moves past nbf.
	token := signToken(t, f.keyA, false, nil, with(baseClaims(issuerA), "nbf", testStart.Unix()+60))
	ctx := context.Background()

	_, err := f.verifier.Verify(ctx, token)
	checkRejected(t, err, "nbf")
	f.clock.Advance(time.Minute)
	if _, err := f.verifier.Verify(ctx, token); err != nil {
		t.Errorf("Verify after nbf: %v", err)
	}
}

func TestSubjectVerifyCacheReturnsCopies(t *testing.T) {
	f := newFixture(t, SubjectOptions{})
	token := signToken(t, f.keyA, false, nil, with(baseClaims(issuerA), "groups", []string{"sre"}))
	ctx := context.Background()

	first, err := f.verifier.Verify(ctx, token)
	if err != nil {
		t.Fatalf("first Verify: %v", err)
	}
	first.Groups[0] = "admin"
	second, err := f.verifier.Verify(ctx, token)
	if err != nil {
		t.Fatalf("second Verify: %v", err)
	}
	if want := []string{"sre"}; !slices.Equal(second.Groups, want) {
		t.Errorf("cached Groups = %q, want %q", second.Groups, want)
	}

	second.Groups[0] = "admin"
	third, err := f.verifier.Verify(ctx, token)
	if err != nil {
		t.Fatalf("third Verify: %v", err)
	}
	if want := []string{"sre"}; !slices.Equal(third.Groups, want) {
		t.Errorf("Groups after changing a cached result = %q, want %q", third.Groups, want)
	}
}

// The verified iss is checked again, although a valid signature over the
// same payload normally guarantees a match. This test calls the claim
// checks directly to reach that branch.
func TestSubjectCheckClaimsVerifiedIssuer(t *testing.T) {
	f := newFixture(t, SubjectOptions{})
	claims := make(map[string]json.RawMessage)
	for name, value := range with(baseClaims(issuerA), "iss", issuerB) {
		raw, err := json.Marshal(value)
		if err != nil {
			t.Fatalf("encode claim %s: %v", name, err)
		}
		claims[name] = raw
	}

	_, err := f.verifier.checkClaims(claims, f.verifier.issuers[issuerA], [32]byte{}, testStart)
	checkRejected(t, err, "iss")
}

func TestTokenCacheEvictsSoonestExpiry(t *testing.T) {
	c := newTokenCache(2)
	entry := func(exp time.Duration) *Subject { return &Subject{ExpiresAt: testStart.Add(exp)} }
	key := func(b byte) [32]byte { return [32]byte{b} }

	c.put(key(1), entry(5*time.Minute), testStart)
	c.put(key(2), entry(1*time.Minute), testStart)
	c.put(key(3), entry(9*time.Minute), testStart)

	if _, ok := c.get(key(2)); ok {
		t.Error("entry expiring first is still cached, want it evicted")
	}
	for _, k := range []byte{1, 3} {
		if _, ok := c.get(key(k)); !ok {
			t.Errorf("entry %d was evicted, want it kept", k)
		}
	}

	// Entry 1 has expired by now, so it goes although the cache is not full.
	c.remove(key(3))
	c.put(key(4), entry(20*time.Minute), testStart.Add(6*time.Minute))
	if _, ok := c.get(key(1)); ok {
		t.Error("expired entry is still cached, want it evicted")
	}
	if got := c.len(); got != 1 {
		t.Errorf("cache entries = %d, want 1", got)
	}
}

func TestSubjectVerifyConcurrent(t *testing.T) {
	f := newFixture(t, SubjectOptions{CacheSize: 8})
	tokens := make([]string, 16)
	for i := range tokens {
		tokens[i] = signToken(t, f.keyA, false, nil, with(baseClaims(issuerA), "jti", string(rune('a'+i))))
	}

	var wg sync.WaitGroup
	errs := make(chan error, 4*len(tokens))
	for range 4 {
		for _, token := range tokens {
			wg.Go(func() {
				if _, err := f.verifier.Verify(context.Background(), token); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Verify: %v", err)
	}
	if got := f.verifier.cache.len(); got > 8 {
		t.Errorf("cache entries = %d, want at most 8", got)
	}
}

func TestNewSubjectVerifierRejectsConfig(t *testing.T) {
	jwksFile := writeJWKS(t, jwksJSON(t, newECKey(t, elliptic.P256(), "k", jose.ES256)))
	valid := TrustedIssuer{
		Issuer:        issuerA,
		Audience:      "sotto",
		SubjectPrefix: "corp-a",
		JWKSFile:      jwksFile,
		Algorithms:    []jose.SignatureAlgorithm{jose.ES256},
	}
	change := func(edit func(*TrustedIssuer)) []TrustedIssuer {
		cfg := valid
		edit(&cfg)
		return []TrustedIssuer{cfg}
	}
	second := valid
	second.Issuer = issuerB

	tests := []struct {
		name    string
		issuers []TrustedIssuer
		opts    SubjectOptions
		want    string
	}{
		{name: "no issuers", issuers: nil, want: "no trusted issuers"},
		{name: "HS256 is not allowed", issuers: change(func(c *TrustedIssuer) { c.Algorithms = []jose.SignatureAlgorithm{jose.HS256} }), want: `"HS256" is not allowed`},
		{name: "none is not allowed", issuers: change(func(c *TrustedIssuer) { c.Algorithms = []jose.SignatureAlgorithm{"none"} }), want: `"none" is not allowed`},
		{name: "empty algorithm list", issuers: change(func(c *TrustedIssuer) { c.Algorithms = nil }), want: "no algorithms"},
		{name: "empty issuer", issuers: change(func(c *TrustedIssuer) { c.Issuer = "" }), want: "issuer is empty"},
		{name: "empty audience", issuers: change(func(c *TrustedIssuer) { c.Audience = "" }), want: "audience is empty"},
		{name: "empty subject prefix", issuers: change(func(c *TrustedIssuer) { c.SubjectPrefix = "" }), want: "subject prefix is empty"},
		{name: "subject prefix with separator", issuers: change(func(c *TrustedIssuer) { c.SubjectPrefix = "a|b" }), want: `contains "|"`},
		{name: "no key source", issuers: change(func(c *TrustedIssuer) { c.JWKSFile = "" }), want: "no keys configured"},
		{name: "relative jwks_file", issuers: change(func(c *TrustedIssuer) { c.JWKSFile = "idp.jwks.json" }), want: "not an absolute path"},
		{name: "missing jwks_file", issuers: change(func(c *TrustedIssuer) { c.JWKSFile = jwksFile + ".missing" }), want: "read jwks_file"},
		{name: "plain http jwks_uri", issuers: change(func(c *TrustedIssuer) { c.JWKSURI = "http://idp.example/jwks" }), want: "must use https"},
		{name: "duplicate issuer", issuers: []TrustedIssuer{valid, valid}, want: "configured twice"},
		{name: "duplicate subject prefix", issuers: []TrustedIssuer{valid, second}, want: "used by another issuer"},
		{name: "negative leeway", issuers: []TrustedIssuer{valid}, opts: SubjectOptions{Leeway: -time.Second}, want: "leeway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewSubjectVerifier(tt.issuers, tt.opts)
			if err == nil {
				t.Fatalf("NewSubjectVerifier = %v, want an error containing %q", v, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNewSubjectVerifierReportsEveryProblem(t *testing.T) {
	_, err := NewSubjectVerifier([]TrustedIssuer{{
		Issuer:     issuerA,
		Algorithms: []jose.SignatureAlgorithm{jose.HS256},
	}}, SubjectOptions{})
	if err == nil {
		t.Fatal("NewSubjectVerifier succeeded, want an error")
	}
	for _, want := range []string{"audience is empty", "subject prefix is empty", "no keys configured", `"HS256" is not allowed`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	}
}

func BenchmarkSubjectVerify(b *testing.B) {
	for _, bc := range []struct {
		name      string
		cacheSize int
	}{
		{name: "uncached", cacheSize: -1},
		{name: "cached", cacheSize: 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFixture(b, SubjectOptions{CacheSize: bc.cacheSize})
			token := signToken(b, f.keyA, false, map[jose.HeaderKey]any{"typ": "JWT"},
				with(baseClaims(issuerA), "groups", []string{"sre", "payments"}))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.verifier.Verify(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
