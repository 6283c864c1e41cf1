package devicebind

import (
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultAlgorithms is the allowlist of DPoP proof signature algorithms used
// when Verifier.Algorithms is empty. All of them are asymmetric, as RFC 9449,
// Section 4.2 requires. The server advertises the list, in this order, as
// dpop_signing_alg_values_supported (RFC 9449, Section 5.1).
var DefaultAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256,
}

const (
	// maxProofBytes bounds the DPoP header value. By our estimate, a proof
	// with an 8192-bit RSA key, the largest this package accepts, needs about
	// 3.5 KiB.
	maxProofBytes = 8 << 10

	// maxJTIBytes bounds the jti claim, which the server stores for replay
	// detection.
	maxJTIBytes = 256

	defaultWindow = 60 * time.Second

	// proofType is the typ header value of a DPoP proof (RFC 9449, Section 4.2).
	proofType = "dpop+jwt"
)

// Verifier checks DPoP proofs (RFC 9449, Section 4.3). The zero value is
// ready to use with the defaults, and a Verifier is safe for concurrent use
// as long as its fields are not changed.
type Verifier struct {
	// Algorithms is the allowlist of proof signature algorithms. Nil or empty
	// means DefaultAlgorithms. A symmetric algorithm or "none" in the list is
	// still rejected, and so is any algorithm outside the ES, EdDSA, RS and PS
	// families.
	Algorithms []jose.SignatureAlgorithm

	// Window is the maximum accepted distance between the proof's iat and
	// Now, in either direction. Zero or negative means 60 seconds.
	Window time.Duration

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Request is the HTTP request that a DPoP proof must match.
type Request struct {
	// Headers contains every value of the DPoP header, as returned by
	// r.Header.Values("DPoP").
	Headers []string

	// Method is the HTTP method of the request.
	Method string

	// URI is the expected htu: the endpoint URI built from the configured
	// issuer, never from the Host header of the request.
	URI string

	// AccessToken, when set, requires the proof to carry an ath claim equal
	// to base64url(SHA-256(AccessToken)) (RFC 9449, Sections 4.3 and 7).
	AccessToken string

	// Nonce, when set, requires the proof's nonce claim to equal it
	// (RFC 9449, Section 8).
	Nonce string

	// AcceptNonce, when set, requires the proof to carry a nonce claim for
	// which AcceptNonce returns true, such as Nonces.Valid, which accepts
	// the current and the previous nonce (RFC 9449, Section 8). It is
	// checked after Nonce. A failure is an [*Error] with Check "nonce".
	AcceptNonce func(nonce string) bool
}

// Proof is a verified DPoP proof.
type Proof struct {
	JTI      string
	IssuedAt time.Time

	// Method is the htm claim.
	Method string

	// URI is the htu claim after NormalizeURI, which equals the normalized
	// Request.URI.
	URI string

	// Algorithm is the alg header parameter.
	Algorithm string

	// Key is the public key from the jwk header parameter.
	Key jose.JSONWebKey

	// JKT is the RFC 7638 SHA-256 thumbprint of Key, base64url-encoded
	// without padding: the value a bound token carries as cnf.jkt.
	JKT string

	// Nonce is the nonce claim, or empty.
	Nonce string

	// AccessTokenHash is the ath claim, or empty.
	AccessTokenHash string
}

// Verify checks the DPoP proof of req against every rule of RFC 9449,
// Section 4.3, and returns the verified proof.
//
// A failed check returns an [*Error]. When the request has no DPoP header,
// the error wraps ErrMissing. When req.URI itself is not a valid http or
// https URI, Verify returns a plain error, because the fault is in the
// server's configuration rather than in the proof.
//
// Verify does not check that the jti is new. The caller must reject a
// replayed proof by claiming the pair (JKT, JTI) in its database when it
// commits the request (RFC 9449, Section 11.1).
func (v *Verifier) Verify(req Request) (*Proof, error) {
	if v == nil {
		v = &Verifier{}
	}

	expectedURI, err := NormalizeURI(req.URI)
	if err != nil {
		return nil, fmt.Errorf("devicebind: request URI is invalid, check the configured issuer: %w", err)
	}

	raw, err := singleProof(req.Headers)
	if err != nil {
		return nil, err
	}

	header, err := parseHeader(raw)
	if err != nil {
		return nil, err
	}

	algorithms := v.Algorithms
	if len(algorithms) == 0 {
		algorithms = DefaultAlgorithms
	}
	if err := header.check(algorithms); err != nil {
		return nil, err
	}

	// RFC 9449, Section 4.3, step 2: the header value is a single well-formed
	// JWT, so only the compact serialization is parsed.
	jws, err := jose.ParseSignedCompact(raw, algorithms)
	if err != nil {
		return nil, classifyParseError(err, header.JWK)
	}
	// RFC 7515, Section 7.1: a compact JWS carries exactly one signature.
	if len(jws.Signatures) != 1 {
		return nil, fail("syntax", "DPoP proof must carry exactly one signature")
	}
	protected := jws.Signatures[0].Protected
	key := protected.JSONWebKey
	if key == nil {
		return nil, fail("jwk", "DPoP proof header has no jwk; include the public key")
	}
	algorithm := jose.SignatureAlgorithm(protected.Algorithm)
	if err := checkKey(algorithm, key.Key); err != nil {
		return nil, err
	}

	// RFC 9449, Section 4.3, step 6: the signature verifies with the public
	// key in the jwk header parameter.
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, fail("signature", "DPoP proof signature does not verify with the key in its jwk header")
	}

	claims, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	if err := v.checkClaims(claims, req, expectedURI); err != nil {
		return nil, err
	}

	jkt, err := Thumbprint(key)
	if err != nil {
		return nil, fail("jwk", "DPoP proof jwk has no computable thumbprint")
	}

	return &Proof{
		JTI:             claims.jti,
		IssuedAt:        unixTime(claims.iat),
		Method:          claims.htm,
		URI:             claims.normalizedHTU,
		Algorithm:       protected.Algorithm,
		Key:             *key,
		JKT:             jkt,
		Nonce:           claims.nonce,
		AccessTokenHash: claims.ath,
	}, nil
}
