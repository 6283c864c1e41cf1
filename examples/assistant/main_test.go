package main

import (
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const testTokenEndpoint = "http://127.0.0.1:8080/oauth2/token"

func TestProofHeaderAndClaims(t *testing.T) {
	key, err := newDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)

	proof, err := key.proof("POST", testTokenEndpoint, "", now)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("ParseSignedCompact: %v", err)
	}
	header := parsed.Signatures[0].Protected

	if got := header.ExtraHeaders[jose.HeaderType]; got != "dpop+jwt" {
		t.Errorf("typ = %v, want dpop+jwt", got)
	}
	if header.Algorithm != "ES256" {
		t.Errorf("alg = %q, want ES256", header.Algorithm)
	}
	if header.JSONWebKey == nil {
		t.Fatal("proof has no jwk header")
	}
	if !header.JSONWebKey.IsPublic() {
		t.Error("jwk header contains a private key")
	}

	thumbprint, err := jwkThumbprint(*header.JSONWebKey)
	if err != nil {
		t.Fatal(err)
	}
	if thumbprint != key.thumbprint {
		t.Errorf("thumbprint of the jwk header = %q, want %q", thumbprint, key.thumbprint)
	}

	var claims proofClaims
	token, err := jwt.ParseSigned(proof, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if err := token.Claims(header.JSONWebKey, &claims); err != nil {
		t.Fatalf("verify proof with its own jwk: %v", err)
	}
	if claims.Method != "POST" {
		t.Errorf("htm = %q, want POST", claims.Method)
	}
	if claims.URL != testTokenEndpoint {
		t.Errorf("htu = %q, want %q", claims.URL, testTokenEndpoint)
	}
	if claims.IssuedAt != now.Unix() {
		t.Errorf("iat = %d, want %d", claims.IssuedAt, now.Unix())
	}
	if claims.ID == "" {
		t.Error("jti is empty")
	}
	if claims.Nonce != "" {
		t.Errorf("nonce = %q, want none", claims.Nonce)
	}
}

func TestProofUniqueJTIAndNonce(t *testing.T) {
	key, err := newDPoPKey()
	if err != nil {
		t.Fatal(err)
	}

	first := decodeProof(t, key, "")
	second := decodeProof(t, key, "server-nonce")

	if first.ID == second.ID {
		t.Errorf("two proofs share jti %q", first.ID)
	}
	if second.Nonce != "server-nonce" {
		t.Errorf("nonce = %q, want server-nonce", second.Nonce)
	}
}

func TestThumbprintRFC7638Example(t *testing.T) {
	// The RSA key and its SHA-256 thumbprint from RFC 7638, Section 3.1.
	const rfcKey = `{"kty":"RSA","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFb` +
		`WhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt` +
		`7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdk` +
		`t-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}`
	const want = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

	var key jose.JSONWebKey
	if err := key.UnmarshalJSON([]byte(rfcKey)); err != nil {
		t.Fatal(err)
	}
	got, err := jwkThumbprint(key)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("thumbprint = %q, want %q", got, want)
	}
}

func TestIDTokenClaims(t *testing.T) {
	key, err := loadIdPKey("../idp-dev-key.jwk.json")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	raw, err := signIDToken(key, "alice", []string{"employees"}, now)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if kid := token.Headers[0].KeyID; kid != "corp-dev-2026" {
		t.Errorf("kid = %q, want corp-dev-2026", kid)
	}

	var claims idTokenClaims
	public := key.Public()
	if err := token.Claims(&public, &claims); err != nil {
		t.Fatalf("verify ID token with the IdP public key: %v", err)
	}
	expected := jwt.Expected{Issuer: corporateIssuer, Subject: "alice", AnyAudience: jwt.Audience{"sotto"}}
	if err := claims.ValidateWithLeeway(expected.WithTime(now), 0); err != nil {
		t.Errorf("validate: %v", err)
	}
	if got := claims.Expiry.Time().Sub(now); got < 9*time.Minute || got > idTokenLifetime {
		t.Errorf("lifetime = %v, want %v", got, idTokenLifetime)
	}
	if len(claims.Groups) != 1 || claims.Groups[0] != "employees" {
		t.Errorf("groups = %v, want [employees]", claims.Groups)
	}
	if claims.ACR == "" {
		t.Error("acr is empty")
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		url    string
		wantOK bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://localhost:8080", true},
		{"http://[::1]:8080", true},
		{"https://127.5.0.1", true},
		{"http://10.0.0.1:8080", false},
		{"https://sotto.corp.example", false},
		{"http://127.0.0.1.example.com", false},
		{"ftp://127.0.0.1", false},
	}
	for _, test := range tests {
		err := checkLoopback(test.url)
		if gotOK := err == nil; gotOK != test.wantOK {
			t.Errorf("checkLoopback(%q) = %v, want ok=%t", test.url, err, test.wantOK)
		}
	}
}

func TestPrefixHidesToken(t *testing.T) {
	token := strings.Repeat("a", 300)
	got := prefix(token)
	if strings.Contains(got, token[:17]) {
		t.Errorf("prefix(token) = %q, shows more than 16 characters", got)
	}
}

func decodeProof(t *testing.T, key *dpopKey, nonce string) proofClaims {
	t.Helper()
	proof, err := key.proof("POST", testTokenEndpoint, nonce, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.ParseSigned(proof, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var claims proofClaims
	if err := token.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	return claims
}
