package devicebind

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
)

const (
	// minRSABits is the RSA key size floor of RFC 7518, Sections 3.3 and 3.5.
	minRSABits = 2048

	// maxRSABits bounds the cost of verifying an RSA signature, which grows
	// with the square of the modulus size.
	maxRSABits = 8192
)

// rawJWK is the set of jwk members that this package inspects before go-jose parses
// the key. The private members are "d" (RFC 7518, Sections 6.2.2.1 and
// 6.3.2.1, and RFC 8037, Section 2), the RSA members p, q, dp, dq, qi and
// oth (RFC 7518, Section 6.3.2), and the symmetric "k" (RFC 7518,
// Section 6.4.1).
type rawJWK struct {
	Kty json.RawMessage `json:"kty"`
	D   json.RawMessage `json:"d"`
	P   json.RawMessage `json:"p"`
	Q   json.RawMessage `json:"q"`
	DP  json.RawMessage `json:"dp"`
	DQ  json.RawMessage `json:"dq"`
	QI  json.RawMessage `json:"qi"`
	Oth json.RawMessage `json:"oth"`
	K   json.RawMessage `json:"k"`
}

// privateMember returns the name of the first private member present, or "".
func (k *rawJWK) privateMember() string {
	members := []struct {
		name  string
		value json.RawMessage
	}{
		{"d", k.D}, {"p", k.P}, {"q", k.Q}, {"dp", k.DP}, {"dq", k.DQ},
		{"qi", k.QI}, {"oth", k.Oth}, {"k", k.K},
	}
	for _, m := range members {
		if len(m.value) > 0 {
			return m.name
		}
	}
	return ""
}

// checkAlgorithm applies RFC 9449, Section 4.3, step 5: alg names an
// asymmetric signature algorithm, not "none", that local policy allows.
func checkAlgorithm(alg string, allowed []jose.SignatureAlgorithm) error {
	if alg == "" {
		return fail("alg", "DPoP proof header has no alg string")
	}
	if !isAsymmetric(jose.SignatureAlgorithm(alg)) {
		return fail("alg", "DPoP proof alg "+quote(alg)+" is not an asymmetric signature algorithm")
	}
	for _, a := range allowed {
		if string(a) == alg {
			return nil
		}
	}

	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return fail("alg", "DPoP proof alg "+quote(alg)+" is not supported; use one of "+strings.Join(names, ", "))
}

// isAsymmetric reports whether alg is one of the digital signature
// algorithms of RFC 7518, Section 3.1 or RFC 8037, Section 3.1 that this
// package can match to a key type.
func isAsymmetric(alg jose.SignatureAlgorithm) bool {
	switch alg {
	case jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
		jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		return true
	}
	return false
}

// checkRawJWK inspects the jwk header parameter as sent, before go-jose
// parses it. go-jose v4.1.9 rejects most private members of an embedded jwk
// itself, but not "oth", and its error does not name the failed check.
func checkRawJWK(raw json.RawMessage) error {
	// RFC 9449, Section 4.2: the jwk header parameter is required.
	if len(raw) == 0 || string(raw) == "null" {
		return fail("jwk", "DPoP proof header has no jwk; include the public key")
	}

	var members rawJWK
	if err := json.Unmarshal(raw, &members); err != nil {
		return fail("jwk", "DPoP proof jwk is not a JSON object without duplicate members")
	}

	// RFC 9449, Section 4.3, step 7: the jwk does not contain a private key.
	if name := members.privateMember(); name != "" {
		return fail("jwk", "DPoP proof jwk contains the private member '"+name+"'; send only the public key")
	}

	// RFC 9449, Section 4.2: the key is the public key of an asymmetric pair,
	// so a symmetric key (RFC 7518, Section 6.4) is never acceptable.
	if kty, _ := jsonString(members.Kty); kty == "oct" {
		return fail("jwk", "DPoP proof jwk is a symmetric key (kty 'oct'); use an asymmetric key pair")
	}
	return nil
}

// checkKey checks that the parsed public key suits alg.
func checkKey(alg jose.SignatureAlgorithm, key any) error {
	switch alg {
	// RFC 7518, Section 3.4: ES256 uses P-256, ES384 P-384, ES512 P-521.
	case jose.ES256:
		return checkCurve(alg, key, elliptic.P256())
	case jose.ES384:
		return checkCurve(alg, key, elliptic.P384())
	case jose.ES512:
		return checkCurve(alg, key, elliptic.P521())

	// RFC 8037, Section 3.1: EdDSA with an OKP key. go-jose supports the
	// Ed25519 curve only.
	case jose.EdDSA:
		if _, ok := key.(ed25519.PublicKey); !ok {
			return fail("jwk", "DPoP proof alg 'EdDSA' needs an Ed25519 key but the jwk is "+describeKey(key))
		}
		return nil

	// RFC 7518, Sections 3.3 and 3.5: RS and PS algorithms use RSA keys of
	// 2048 bits or more.
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		rsaKey, ok := key.(*rsa.PublicKey)
		if !ok {
			return fail("jwk", "DPoP proof alg "+quote(string(alg))+" needs an RSA key but the jwk is "+describeKey(key))
		}
		bits := rsaKey.N.BitLen()
		if bits < minRSABits {
			return fail("jwk", fmt.Sprintf("DPoP proof jwk is a %d-bit RSA key; RSA keys need at least %d bits",
				bits, minRSABits))
		}
		if bits > maxRSABits {
			return fail("jwk", fmt.Sprintf("DPoP proof jwk is a %d-bit RSA key; this server accepts at most %d bits",
				bits, maxRSABits))
		}
		return nil
	}
	return fail("alg", "DPoP proof alg "+quote(string(alg))+" is not an asymmetric signature algorithm")
}

func checkCurve(alg jose.SignatureAlgorithm, key any, curve elliptic.Curve) error {
	ecKey, ok := key.(*ecdsa.PublicKey)
	if !ok || ecKey.Curve != curve {
		return fail("jwk", "DPoP proof alg "+quote(string(alg))+" needs a "+curve.Params().Name+
			" key but the jwk is "+describeKey(key))
	}
	return nil
}

// describeKey names the type of a public key for an error description,
// without any of its values.
func describeKey(key any) string {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return "an EC " + k.Curve.Params().Name + " key"
	case ed25519.PublicKey:
		return "an Ed25519 key"
	case *rsa.PublicKey:
		return "an RSA key"
	}
	return "another key type"
}
