package devicebind

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

type verifyCase struct {
	name     string
	spec     proofSpec
	tamper   func(proof string) string   // edits the signed proof
	headers  func(proof string) []string // replaces the DPoP header values
	request  func(req *Request)          // edits the request
	verifier *Verifier                   // nil means testVerifier()
	want     string                      // the failed check; empty means valid
}

func verifyCases(k *testKeys) []verifyCase {
	es256 := func(claims map[string]any) proofSpec {
		return proofSpec{alg: "ES256", key: k.p256, claims: claims}
	}
	accessToken := "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	tokenHash := sha256.Sum256([]byte(accessToken))
	ath := base64.RawURLEncoding.EncodeToString(tokenHash[:])

	return []verifyCase{
		// Valid proofs, one per default algorithm.
		{name: "ES256 proof is valid", spec: es256(nil)},
		{name: "ES384 proof is valid", spec: proofSpec{alg: "ES384", key: k.p384}},
		{name: "EdDSA proof is valid", spec: proofSpec{alg: "EdDSA", key: k.ed}},
		{name: "RS256 proof is valid", spec: proofSpec{alg: "RS256", key: k.rsa2048}},
		{name: "PS256 proof is valid", spec: proofSpec{alg: "PS256", key: k.rsa2048}},

		// RFC 9449, Section 4.3, step 1: one DPoP header.
		{name: "missing header is reported as missing", spec: es256(nil),
			headers: func(string) []string { return nil }, want: "header"},
		{name: "two headers are rejected", spec: es256(nil),
			headers: func(p string) []string { return []string{p, p} }, want: "header"},
		{name: "comma-separated values in one header are rejected", spec: es256(nil),
			headers: func(p string) []string { return []string{p + "," + p} }, want: "header"},
		{name: "empty header is rejected", spec: es256(nil),
			headers: func(string) []string { return []string{""} }, want: "header"},
		{name: "header over 8 KiB is rejected", spec: es256(map[string]any{"pad": strings.Repeat("a", 9000)}),
			want: "header"},

		// Step 2: a well-formed compact JWS.
		{name: "value that is not a JWS is rejected", spec: es256(nil),
			headers: func(string) []string { return []string{"not-a-jwt"} }, want: "syntax"},
		{name: "JWS with spaces is rejected", spec: es256(nil),
			tamper: func(p string) string { return strings.Replace(p, ".", ". ", 1) }, want: "syntax"},
		{name: "JWS with four parts is rejected", spec: es256(nil),
			tamper: func(p string) string { return p + ".e30" }, want: "syntax"},
		{name: "header with a duplicate member is rejected", spec: es256(nil),
			tamper: func(p string) string {
				_, rest, _ := strings.Cut(p, ".")
				dup := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256"}`))
				return dup + "." + rest
			}, want: "syntax"},
		{name: "crit header is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			header: map[string]any{"crit": []string{"exp"}, "exp": 1}}, want: "syntax"},
		{name: "b64 header is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			header: map[string]any{"b64": false}}, want: "syntax"},

		// Step 5: an allowed asymmetric alg.
		{name: "alg none is rejected", spec: proofSpec{alg: "none", key: k.p256}, want: "alg"},
		{name: "HS256 with a jwk is rejected", spec: proofSpec{alg: "HS256", key: k.p256}, want: "alg"},
		{name: "missing alg is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			header: map[string]any{"alg": absent{}}}, want: "alg"},
		{name: "alg outside the allowlist is rejected", spec: proofSpec{alg: "RS256", key: k.rsa2048},
			verifier: &Verifier{Algorithms: []jose.SignatureAlgorithm{jose.ES256},
				Now: func() time.Time { return testNow }}, want: "alg"},

		// Step 4: typ is dpop+jwt.
		{name: "typ JWT is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			header: map[string]any{"typ": "JWT"}}, want: "typ"},
		{name: "typ in upper case is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			header: map[string]any{"typ": "DPOP+JWT"}}, want: "typ"},
		{name: "missing typ is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			header: map[string]any{"typ": absent{}}}, want: "typ"},

		// Step 7 and Section 4.2: a public asymmetric jwk that suits alg.
		{name: "missing jwk is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			header: map[string]any{"jwk": absent{}}}, want: "jwk"},
		{name: "jwk that is a string is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			header: map[string]any{"jwk": "key"}}, want: "jwk"},
		{name: "jwk with private member d is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			jwk: map[string]any{"d": base64.RawURLEncoding.EncodeToString(k.p256.D.Bytes())}}, want: "jwk"},
		{name: "EC jwk with member k is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			jwk: map[string]any{"k": "c2VjcmV0"}}, want: "jwk"},
		{name: "RSA jwk with member p is rejected", spec: proofSpec{alg: "RS256", key: k.rsa2048,
			jwk: map[string]any{"p": base64.RawURLEncoding.EncodeToString(k.rsa2048.Primes[0].Bytes())}},
			want: "jwk"},
		{name: "RSA jwk with member oth is rejected", spec: proofSpec{alg: "RS256", key: k.rsa2048,
			jwk: map[string]any{"oth": []any{}}}, want: "jwk"},
		{name: "symmetric jwk is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			header: map[string]any{"jwk": map[string]any{"kty": "oct"}}}, want: "jwk"},
		{name: "EC jwk off the curve is rejected", spec: proofSpec{alg: "ES256", key: k.p256,
			jwk: map[string]any{"x": base64.RawURLEncoding.EncodeToString(make([]byte, 32))}}, want: "jwk"},
		{name: "RSA key of 1024 bits is rejected", spec: proofSpec{alg: "RS256", key: k.rsa1024}, want: "jwk"},
		{name: "ES256 with a P-384 key is rejected", spec: proofSpec{alg: "ES256", key: k.p384}, want: "jwk"},
		{name: "EdDSA with an EC key is rejected", spec: proofSpec{alg: "EdDSA", key: k.ed,
			jwkKey: k.p256}, want: "jwk"},
		{name: "PS256 with an EC key is rejected", spec: proofSpec{alg: "PS256", key: k.rsa2048,
			jwkKey: k.p256}, want: "jwk"},

		// Step 6: the signature verifies with the jwk.
		{name: "altered payload fails the signature", spec: es256(nil),
			tamper: func(p string) string {
				parts := strings.Split(p, ".")
				parts[1] = base64.RawURLEncoding.EncodeToString([]byte(
					`{"jti":"x","htm":"POST","htu":"` + testURI + `","iat":` + itoa(testNow.Unix()) + `}`))
				return strings.Join(parts, ".")
			}, want: "signature"},
		{name: "signature by another key fails", spec: proofSpec{alg: "ES256", key: k.p256,
			jwkKey: k.p256Other}, want: "signature"},

		// Step 3: the required claims of Section 4.2.
		{name: "missing jti is rejected", spec: es256(map[string]any{"jti": absent{}}), want: "claims"},
		{name: "missing htm is rejected", spec: es256(map[string]any{"htm": absent{}}), want: "claims"},
		{name: "missing htu is rejected", spec: es256(map[string]any{"htu": absent{}}), want: "claims"},
		{name: "missing iat is rejected", spec: es256(map[string]any{"iat": absent{}}), want: "claims"},
		{name: "iat as a string is rejected", spec: es256(map[string]any{"iat": itoa(testNow.Unix())}),
			want: "claims"},
		{name: "jti as a number is rejected", spec: es256(map[string]any{"jti": 7}), want: "claims"},
		{name: "jti as null is rejected", spec: es256(map[string]any{"jti": nil}), want: "claims"},
		{name: "ath as a number is rejected", spec: es256(map[string]any{"ath": 1}), want: "claims"},
		{name: "empty jti is rejected", spec: es256(map[string]any{"jti": ""}), want: "jti"},
		{name: "jti over 256 bytes is rejected", spec: es256(map[string]any{"jti": strings.Repeat("j", 257)}),
			want: "jti"},
		{name: "jti of 256 bytes is accepted", spec: es256(map[string]any{"jti": strings.Repeat("j", 256)})},

		// Step 8: htm matches the method.
		{name: "htm GET on a POST request is rejected", spec: es256(map[string]any{"htm": "GET"}), want: "htm"},
		{name: "htm in lower case is rejected", spec: es256(map[string]any{"htm": "post"}), want: "htm"},

		// Step 9: htu matches the URI, ignoring query and fragment.
		{name: "htu with another host is rejected",
			spec: es256(map[string]any{"htu": "https://attacker.example/token"}), want: "htu"},
		{name: "htu with another path is rejected",
			spec: es256(map[string]any{"htu": "https://sotto.example/authorize"}), want: "htu"},
		{name: "htu with http scheme is rejected",
			spec: es256(map[string]any{"htu": "http://sotto.example/token"}), want: "htu"},
		{name: "relative htu is rejected", spec: es256(map[string]any{"htu": "/token"}), want: "htu"},
		{name: "htu with query is accepted",
			spec: es256(map[string]any{"htu": testURI + "?client_id=assistant"})},
		{name: "htu with fragment is accepted", spec: es256(map[string]any{"htu": testURI + "#top"})},
		{name: "htu with upper-case host and default port is accepted",
			spec: es256(map[string]any{"htu": "HTTPS://Sotto.EXAMPLE:443/token"})},
		{name: "htu with http default port 80 is accepted",
			spec:    es256(map[string]any{"htu": "http://localhost:80/token"}),
			request: func(r *Request) { r.URI = "http://localhost/token" }},
		{name: "htu with dot segments and encoded letters is accepted",
			spec: es256(map[string]any{"htu": "https://sotto.example/a/../%74oken"})},

		// Step 11: iat within the window.
		{name: "iat 61 seconds old is rejected",
			spec: es256(map[string]any{"iat": testNow.Add(-61 * time.Second).Unix()}), want: "iat"},
		{name: "iat 61 seconds ahead is rejected",
			spec: es256(map[string]any{"iat": testNow.Add(61 * time.Second).Unix()}), want: "iat"},
		{name: "iat 60 seconds old is accepted",
			spec: es256(map[string]any{"iat": testNow.Add(-60 * time.Second).Unix()})},
		{name: "iat 60 seconds ahead is accepted",
			spec: es256(map[string]any{"iat": testNow.Add(60 * time.Second).Unix()})},
		{name: "iat with a fraction is accepted",
			spec: es256(map[string]any{"iat": float64(testNow.Unix()) + 0.5})},
		{name: "iat outside a custom window is rejected",
			spec:     es256(map[string]any{"iat": testNow.Add(-11 * time.Second).Unix()}),
			verifier: &Verifier{Window: 10 * time.Second, Now: func() time.Time { return testNow }},
			want:     "iat"},
		{name: "huge iat is rejected", spec: es256(map[string]any{"iat": 1e300}), want: "iat"},

		// Step 12: ath with an access token.
		{name: "missing ath with an access token is rejected", spec: es256(nil),
			request: func(r *Request) { r.AccessToken = accessToken }, want: "ath"},
		{name: "ath of another token is rejected", spec: es256(map[string]any{"ath": ath}),
			request: func(r *Request) { r.AccessToken = accessToken + "x" }, want: "ath"},
		{name: "matching ath is accepted", spec: es256(map[string]any{"ath": ath}),
			request: func(r *Request) { r.AccessToken = accessToken }},

		// Step 10: nonce when the server provided one.
		{name: "missing nonce is rejected", spec: es256(nil),
			request: func(r *Request) { r.Nonce = "eyJ7S_zG.eyJH0-Z.HX4w-7v" }, want: "nonce"},
		{name: "other nonce is rejected", spec: es256(map[string]any{"nonce": "old-nonce"}),
			request: func(r *Request) { r.Nonce = "eyJ7S_zG.eyJH0-Z.HX4w-7v" }, want: "nonce"},
		{name: "matching nonce is accepted", spec: es256(map[string]any{"nonce": "eyJ7S_zG.eyJH0-Z.HX4w-7v"}),
			request: func(r *Request) { r.Nonce = "eyJ7S_zG.eyJH0-Z.HX4w-7v" }},
	}
}

func TestVerify(t *testing.T) {
	k := loadKeys(t)
	for _, tc := range verifyCases(k) {
		t.Run(tc.name, func(t *testing.T) {
			proof := signProof(t, tc.spec)
			if tc.tamper != nil {
				proof = tc.tamper(proof)
			}
			req := validRequest(proof)
			if tc.headers != nil {
				req.Headers = tc.headers(proof)
			}
			if tc.request != nil {
				tc.request(&req)
			}
			v := tc.verifier
			if v == nil {
				v = testVerifier()
			}

			got, err := v.Verify(req)
			if tc.want != "" {
				checkFailure(t, got, err, tc.want)
				return
			}
			if err != nil {
				t.Fatalf("Verify: got error %v, want a valid proof", err)
			}
			checkProof(t, got, tc.spec, req)
		})
	}
}

func checkFailure(t *testing.T, got *Proof, err error, want string) {
	t.Helper()
	if got != nil {
		t.Errorf("Verify: got a proof, want nil with a %q failure", want)
	}
	var verr *Error
	if !errors.As(err, &verr) {
		t.Fatalf("Verify: got error %v, want an *Error with check %q", err, want)
	}
	if verr.Check != want {
		t.Errorf("Verify: got check %q (%s), want %q", verr.Check, verr.Description, want)
	}
	if verr.Description == "" {
		t.Errorf("Verify: got an empty description for check %q", verr.Check)
	}
	// RFC 6749, Section 5.2: error_description excludes '"' and '\'.
	if strings.ContainsAny(verr.Description, "\"\\") {
		t.Errorf("Verify: description %q contains characters error_description forbids", verr.Description)
	}
}

func checkProof(t *testing.T, got *Proof, spec proofSpec, req Request) {
	t.Helper()
	jwkKey := spec.jwkKey
	if jwkKey == nil {
		jwkKey = spec.key
	}
	wantJWK := jose.JSONWebKey{Key: jwkKey.Public()}
	sum, err := wantJWK.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatalf("thumbprint of the signing key: %v", err)
	}
	wantJKT := base64.RawURLEncoding.EncodeToString(sum)

	if got.JKT != wantJKT {
		t.Errorf("JKT: got %q, want %q", got.JKT, wantJKT)
	}
	if got.Algorithm != spec.alg {
		t.Errorf("Algorithm: got %q, want %q", got.Algorithm, spec.alg)
	}
	if got.Method != "POST" {
		t.Errorf("Method: got %q, want %q", got.Method, "POST")
	}
	if wantJTI, ok := spec.claims["jti"].(string); ok && got.JTI != wantJTI {
		t.Errorf("JTI: got %q, want %q", got.JTI, wantJTI)
	}
	if got.JTI == "" {
		t.Errorf("JTI: got empty, want the proof's jti")
	}
	if d := got.IssuedAt.Sub(testNow); d < -time.Minute || d > time.Minute {
		t.Errorf("IssuedAt: got %v, want within a minute of %v", got.IssuedAt, testNow)
	}
	if !got.Key.IsPublic() {
		t.Errorf("Key: got a key that is not public")
	}
	wantURI, err := NormalizeURI(req.URI)
	if err != nil {
		t.Fatalf("NormalizeURI(%q): %v", req.URI, err)
	}
	if got.URI != wantURI {
		t.Errorf("URI: got %q, want %q", got.URI, wantURI)
	}
}

func TestVerifyMissingHeaderWrapsErrMissing(t *testing.T) {
	_, err := testVerifier().Verify(Request{Method: "POST", URI: testURI})
	if !errors.Is(err, ErrMissing) {
		t.Fatalf("Verify without a header: got %v, want an error wrapping ErrMissing", err)
	}

	k := loadKeys(t)
	_, err = testVerifier().Verify(Request{Headers: []string{signProof(t, proofSpec{alg: "ES256", key: k.p256,
		header: map[string]any{"typ": "JWT"}})}, Method: "POST", URI: testURI})
	if errors.Is(err, ErrMissing) {
		t.Errorf("Verify with a bad proof: got %v, want an error that does not wrap ErrMissing", err)
	}
}

func TestVerifyFieldsOfValidProof(t *testing.T) {
	k := loadKeys(t)
	iat := float64(testNow.Unix()) - 2.25
	spec := proofSpec{alg: "ES256", key: k.p256, claims: map[string]any{
		"jti": "a8b1f2", "iat": iat, "nonce": "n-1", "ath": "hash-value",
		"htu": "https://SOTTO.example:443/token?x=1",
	}}
	got, err := testVerifier().Verify(validRequest(signProof(t, spec)))
	if err != nil {
		t.Fatalf("Verify: got error %v, want a valid proof", err)
	}

	wantIAT := time.Unix(testNow.Unix()-3, 750_000_000).UTC()
	if !got.IssuedAt.Equal(wantIAT) {
		t.Errorf("IssuedAt: got %v, want %v", got.IssuedAt, wantIAT)
	}
	if got.JTI != "a8b1f2" {
		t.Errorf("JTI: got %q, want %q", got.JTI, "a8b1f2")
	}
	if got.URI != testURI {
		t.Errorf("URI: got %q, want the normalized htu %q", got.URI, testURI)
	}
	if got.Nonce != "n-1" {
		t.Errorf("Nonce: got %q, want %q", got.Nonce, "n-1")
	}
	if got.AccessTokenHash != "hash-value" {
		t.Errorf("AccessTokenHash: got %q, want %q", got.AccessTokenHash, "hash-value")
	}
}

func TestVerifyDefaultsOfZeroVerifier(t *testing.T) {
	k := loadKeys(t)
	now := time.Now()
	spec := proofSpec{alg: "EdDSA", key: k.ed, claims: map[string]any{"iat": now.Unix()}}
	var v Verifier
	if _, err := v.Verify(validRequest(signProof(t, spec))); err != nil {
		t.Errorf("zero Verifier with a fresh proof: got error %v, want a valid proof", err)
	}

	spec.claims["iat"] = now.Add(-2 * time.Minute).Unix()
	_, err := v.Verify(validRequest(signProof(t, spec)))
	var verr *Error
	if !errors.As(err, &verr) || verr.Check != "iat" {
		t.Errorf("zero Verifier with a 2-minute-old proof: got %v, want an iat failure", err)
	}
}

func TestVerifyInvalidRequestURI(t *testing.T) {
	k := loadKeys(t)
	req := validRequest(signProof(t, proofSpec{alg: "ES256", key: k.p256}))
	req.URI = "token"

	_, err := testVerifier().Verify(req)
	if err == nil {
		t.Fatalf("Verify with a relative request URI: got nil error, want a configuration error")
	}
	var verr *Error
	if errors.As(err, &verr) {
		t.Errorf("Verify with a relative request URI: got proof failure %q, want a plain error", verr.Check)
	}
}

func itoa(n int64) string {
	return strconv.FormatInt(n, 10)
}
