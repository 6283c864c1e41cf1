package devicebind

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testNow is the injected clock of every test.
var testNow = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

const testURI = "https://sotto.example/token"

func testVerifier() *Verifier {
	return &Verifier{Now: func() time.Time { return testNow }}
}

// testKeys contains one key per algorithm family, generated once per run
// because RSA key generation is slow.
type testKeys struct {
	p256, p384 *ecdsa.PrivateKey
	p256Other  *ecdsa.PrivateKey
	ed         ed25519.PrivateKey
	rsa2048    *rsa.PrivateKey
	rsa1024    *rsa.PrivateKey
}

var (
	keysOnce sync.Once
	keys     testKeys
	keysErr  error
)

func loadKeys(tb testing.TB) *testKeys {
	tb.Helper()
	keysOnce.Do(func() { keysErr = generateKeys(&keys) })
	if keysErr != nil {
		tb.Fatalf("generate test keys: %v", keysErr)
	}
	return &keys
}

func generateKeys(k *testKeys) error {
	var err error
	if k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	if k.p256Other, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	if k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		return err
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return err
	}
	if k.rsa2048, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return err
	}
	k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024)
	return err
}

// absent marks a header member or claim that a proof must leave out.
type absent struct{}

// proofSpec describes a test proof. Header and claims are merged over the
// defaults of a valid proof, and a value of absent{} removes the member.
type proofSpec struct {
	alg    string
	key    crypto.Signer // signs the proof
	jwkKey crypto.Signer // the key whose public part goes into jwk; nil means key
	header map[string]any
	claims map[string]any
	// jwk members merged over the public JWK of jwkKey.
	jwk map[string]any
}

func publicJWK(tb testing.TB, signer crypto.Signer) map[string]any {
	tb.Helper()
	data, err := json.Marshal(jose.JSONWebKey{Key: signer.Public()})
	if err != nil {
		tb.Fatalf("marshal public JWK: %v", err)
	}
	var members map[string]any
	if err := json.Unmarshal(data, &members); err != nil {
		tb.Fatalf("unmarshal public JWK: %v", err)
	}
	return members
}

func merge(base, overrides map[string]any) map[string]any {
	for name, value := range overrides {
		if _, ok := value.(absent); ok {
			delete(base, name)
			continue
		}
		base[name] = value
	}
	return base
}

// signProof builds a compact JWS by hand, so that tests can produce proofs
// that no careful JOSE library would sign.
func signProof(tb testing.TB, spec proofSpec) string {
	tb.Helper()
	jwkKey := spec.jwkKey
	if jwkKey == nil {
		jwkKey = spec.key
	}

	header := map[string]any{
		"typ": "dpop+jwt",
		"alg": spec.alg,
		"jwk": merge(publicJWK(tb, jwkKey), spec.jwk),
	}
	claims := map[string]any{
		"jti": "e1j3V_bKic8-LAEB",
		"htm": "POST",
		"htu": testURI,
		"iat": testNow.Unix(),
	}
	headerJSON, err := json.Marshal(merge(header, spec.header))
	if err != nil {
		tb.Fatalf("marshal header: %v", err)
	}
	claimsJSON, err := json.Marshal(merge(claims, spec.claims))
	if err != nil {
		tb.Fatalf("marshal claims: %v", err)
	}

	input := base64.RawURLEncoding.EncodeToString(headerJSON) + "." +
		base64.RawURLEncoding.EncodeToString(claimsJSON)
	signature := sign(tb, spec.alg, spec.key, []byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(signature)
}

func sign(tb testing.TB, alg string, key crypto.Signer, input []byte) []byte {
	tb.Helper()
	switch alg {
	case "none":
		return nil
	case "HS256":
		mac := hmac.New(sha256.New, []byte("a shared secret of thirty-two by"))
		mac.Write(input)
		return mac.Sum(nil)
	case "ES256", "ES384":
		ecKey := key.(*ecdsa.PrivateKey)
		var digest []byte
		if alg == "ES256" {
			sum := sha256.Sum256(input)
			digest = sum[:]
		} else {
			sum := sha512.Sum384(input)
			digest = sum[:]
		}
		r, s, err := ecdsa.Sign(rand.Reader, ecKey, digest)
		if err != nil {
			tb.Fatalf("ECDSA sign: %v", err)
		}
		size := (ecKey.Curve.Params().BitSize + 7) / 8
		return append(fixed(r, size), fixed(s, size)...)
	case "EdDSA":
		return ed25519.Sign(key.(ed25519.PrivateKey), input)
	case "RS256", "PS256":
		sum := sha256.Sum256(input)
		var (
			signature []byte
			err       error
		)
		if alg == "RS256" {
			signature, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, sum[:])
		} else {
			opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
			signature, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, sum[:], opts)
		}
		if err != nil {
			tb.Fatalf("RSA sign: %v", err)
		}
		return signature
	}
	tb.Fatalf("sign: no test signer for alg %q", alg)
	return nil
}

// fixed encodes n big-endian in exactly size bytes (RFC 7518, Section 3.4).
func fixed(n *big.Int, size int) []byte {
	return n.FillBytes(make([]byte, size))
}

func validRequest(proof string) Request {
	return Request{Headers: []string{proof}, Method: "POST", URI: testURI}
}
