package connector

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
)

const (
	// proofType is the typ of a DPoP proof (RFC 9449, Section 4.2).
	proofType = "dpop+jwt"

	// maxJTIBytes bounds the jti that the replay cache stores.
	maxJTIBytes = 256
)

// proofClaims is the payload of a DPoP proof (RFC 9449, Section 4.2).
type proofClaims struct {
	JTI   *string  `json:"jti"`
	HTM   *string  `json:"htm"`
	HTU   *string  `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   *string  `json:"ath"`
	Nonce *string  `json:"nonce"`
}

// verifyProof checks the DPoP proof of r for the access token bound to jkt
// (RFC 9449, Sections 4.3 and 7.1), then records its jti.
func (v *Validator) verifyProof(ctx context.Context, r *http.Request, proof, token, jkt string) error {
	header, err := decodeHeader(proof)
	if err != nil {
		return invalidProof("the DPoP proof is not a JWT: " + err.Error())
	}
	// RFC 9449, Section 4.3, step 4: typ is exactly dpop+jwt.
	if header.Typ != proofType {
		return invalidProof("the DPoP proof typ is not dpop+jwt")
	}
	// RFC 9449, Section 4.3, step 5: alg is an allowlisted asymmetric
	// algorithm, never none.
	if !slices.Contains(v.algorithms, jose.SignatureAlgorithm(header.Alg)) {
		return invalidProof("the DPoP proof alg " + header.Alg + " is not accepted; use one of " + v.algNames)
	}
	// RFC 7515, Section 4.1.11: no crit extension is understood.
	if header.hasCrit {
		return invalidProof("the DPoP proof header has crit extensions, which are not supported")
	}

	jws, err := jose.ParseSignedCompact(proof, v.algorithms)
	if err != nil {
		return invalidProof("the DPoP proof is not a well-formed compact JWS with a valid jwk")
	}
	if len(jws.Signatures) != 1 {
		return invalidProof("the DPoP proof must carry exactly one signature")
	}
	// RFC 9449, Section 4.3, step 7: the jwk header is a public key.
	key := jws.Signatures[0].Protected.JSONWebKey
	if key == nil {
		return invalidProof("the DPoP proof header has no jwk")
	}
	if !key.IsPublic() || !key.Valid() {
		return invalidProof("the DPoP proof jwk is not a valid public key")
	}
	// RFC 9449, Section 4.3, step 6: the signature verifies with that key.
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return invalidProof("the DPoP proof signature does not verify with its jwk")
	}

	var claims proofClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return invalidProof("the DPoP proof claims are not a JSON object of the expected types")
	}
	// RFC 9449, Section 4.3, step 3: jti, htm, htu and iat are present.
	if claims.JTI == nil || claims.HTM == nil || claims.HTU == nil || claims.IAT == nil {
		return invalidProof("the DPoP proof lacks one of the claims jti, htm, htu and iat")
	}
	if *claims.JTI == "" || len(*claims.JTI) > maxJTIBytes {
		return invalidProof(fmt.Sprintf("the DPoP proof jti must be 1 to %d bytes", maxJTIBytes))
	}

	// RFC 9449, Section 4.3, step 8: htm is the request method; methods
	// are case-sensitive (RFC 9110, Section 9.1).
	if *claims.HTM != r.Method {
		return invalidProof("the DPoP proof htm does not match the request method " + r.Method)
	}

	// RFC 9449, Section 4.3, step 9: htu is the request URI without query
	// and fragment, compared after RFC 3986, Sections 6.2.2 and 6.2.3
	// normalization. The URI is built from PublicURL, never from the Host
	// header the client chose.
	expected, err := normalizeURI(v.publicURL + requestPath(r))
	if err != nil {
		return invalidProof("the request path cannot be normalized: " + err.Error())
	}
	htu, err := normalizeURI(*claims.HTU)
	if err != nil {
		return invalidProof("the DPoP proof htu is invalid: " + err.Error())
	}
	if htu != expected {
		return invalidProof("the DPoP proof htu does not match " + expected)
	}

	// RFC 9449, Section 4.3, step 11 and Section 11.1: iat lies within the
	// accepted window around the current time.
	if math.IsNaN(*claims.IAT) || math.IsInf(*claims.IAT, 0) {
		return invalidProof("the DPoP proof iat is not a number")
	}
	issuedAt := unixTime(*claims.IAT)
	now := v.now()
	if now.Sub(issuedAt) > v.proofWindow {
		return invalidProof("the DPoP proof iat is too old; create a new proof")
	}
	if issuedAt.Sub(now) > v.proofWindow {
		return invalidProof("the DPoP proof iat is in the future; check the device clock")
	}

	// RFC 9449, Section 4.3, step 12 and Section 7: ath is
	// base64url(SHA-256(access token)).
	sum := sha256.Sum256([]byte(token))
	if claims.ATH == nil || subtle.ConstantTimeCompare([]byte(*claims.ATH),
		[]byte(base64.RawURLEncoding.EncodeToString(sum[:]))) != 1 {
		return invalidProof("the DPoP proof ath is missing or is not the hash of the access token")
	}

	// RFC 9449, Section 4.3, step 12 and Section 6.1: the proof's key is
	// the key the token is bound to.
	thumbprint, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return invalidProof("the DPoP proof jwk has no RFC 7638 thumbprint")
	}
	proofJKT := base64.RawURLEncoding.EncodeToString(thumbprint)
	if subtle.ConstantTimeCompare([]byte(proofJKT), []byte(jkt)) != 1 {
		return invalidProof("the DPoP proof key is not the key the access token is bound to (cnf.jkt)")
	}

	// RFC 9449, Section 4.3, step 10 and Section 9: with nonces on, the
	// proof carries a current nonce, and a missing or stale one gets a
	// fresh nonce in the challenge.
	if v.nonces != nil {
		if claims.Nonce == nil || !v.nonces.Valid(*claims.Nonce, now) {
			return v.nonceChallenge(claims.Nonce == nil)
		}
	}

	// RFC 9449, Section 11.1: a proof is accepted once. The jti is kept
	// until the proof leaves the iat window, after which the window check
	// rejects it anyway.
	fresh, err := v.replay.Claim(ctx, proofJKT, *claims.JTI, issuedAt.Add(v.proofWindow))
	if err != nil {
		return fmt.Errorf("connector: replay cache: %w", err)
	}
	if !fresh {
		return invalidProof("the DPoP proof was already used; create a new proof for each request")
	}
	return nil
}

func (v *Validator) nonceChallenge(missing bool) error {
	nonce, err := v.nonces.Nonce(v.now())
	if err != nil {
		return fmt.Errorf("connector: issue DPoP nonce: %w", err)
	}
	description := "the DPoP proof nonce is stale; use the nonce from the DPoP-Nonce header"
	if missing {
		description = "the resource server requires a nonce in the DPoP proof"
	}
	e := reject(CodeUseDPoPNonce, http.StatusUnauthorized, description)
	e.Nonce = nonce
	return e
}

// requestPath returns the path of the request as the client sent it.
// RequestURI is used in preference to URL.Path, so that a handler behind
// http.StripPrefix still checks the full path.
func requestPath(r *http.Request) string {
	if r.RequestURI != "" {
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
			return u.EscapedPath()
		}
	}
	return r.URL.EscapedPath()
}
