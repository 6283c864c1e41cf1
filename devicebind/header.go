package devicebind

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
)

// singleProof returns the one DPoP header value of a request.
func singleProof(values []string) (string, error) {
	// RFC 9449, Section 4.3, step 1: there is not more than one DPoP header
	// field. A missing header is the caller's decision.
	if len(values) == 0 {
		return "", &Error{
			Check:       "header",
			Description: "request has no DPoP header",
			cause:       ErrMissing,
		}
	}
	if len(values) > 1 {
		return "", fail("header", "request has more than one DPoP header; send exactly one")
	}

	raw := values[0]
	// The size limit comes before any parsing, so an oversize value costs
	// nothing more than its length check.
	if len(raw) > maxProofBytes {
		return "", fail("header", fmt.Sprintf("DPoP header exceeds the limit of %d bytes", maxProofBytes))
	}
	if raw == "" {
		return "", fail("header", "DPoP header is empty")
	}

	// RFC 9449, Section 4.3, step 2: the value is a single JWT. A compact JWS
	// contains only base64url characters and dots (RFC 7515, Section 7.1), so
	// a comma means a list of values and anything else is malformed.
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == ',':
			return "", fail("header", "DPoP header contains a list of values; send exactly one proof")
		case !isBase64URL(c) && c != '.':
			return "", fail("syntax", "DPoP proof is not a compact JWS: it contains characters outside base64url")
		}
	}
	return raw, nil
}

func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// proofHeader is the set of protected header members that this package
// checks itself. It is decoded with go-jose's JSON package, which matches member
// names case-sensitively and rejects duplicates, so both readings of the
// header agree.
type proofHeader struct {
	Alg  json.RawMessage `json:"alg"`
	Typ  json.RawMessage `json:"typ"`
	JWK  json.RawMessage `json:"jwk"`
	Crit json.RawMessage `json:"crit"`
	B64  json.RawMessage `json:"b64"`
}

func parseHeader(raw string) (*proofHeader, error) {
	encoded, _, ok := strings.Cut(raw, ".")
	if !ok {
		return nil, fail("syntax", "DPoP proof is not a compact JWS: it needs three dot-separated parts")
	}
	decoded, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fail("syntax", "DPoP proof header is not valid base64url")
	}

	var header proofHeader
	if err := json.Unmarshal(decoded, &header); err != nil {
		return nil, fail("syntax", "DPoP proof header is not a JSON object without duplicate members")
	}
	return &header, nil
}

// check applies the header rules that can be decided before go-jose parses
// the proof, so a proof of the wrong kind costs no key parsing.
func (h *proofHeader) check(algorithms []jose.SignatureAlgorithm) error {
	// RFC 9449, Section 4.3, step 5: alg is a registered asymmetric
	// signature algorithm, not "none", and allowed by local policy.
	alg, _ := jsonString(h.Alg)
	if err := checkAlgorithm(alg, algorithms); err != nil {
		return err
	}

	// RFC 9449, Section 4.3, step 4: typ is exactly "dpop+jwt".
	typ, ok := jsonString(h.Typ)
	if !ok {
		return fail("typ", "DPoP proof header has no typ; set typ to 'dpop+jwt'")
	}
	if typ != proofType {
		return fail("typ", "DPoP proof typ "+quote(typ)+" is not 'dpop+jwt'")
	}

	// RFC 7515, Section 4.1.11: a recipient must reject a crit extension it
	// does not understand, and the DPoP proof type defines none. RFC 7797,
	// Section 6 requires b64 to appear in crit, so b64 alone is malformed.
	if len(h.Crit) > 0 || len(h.B64) > 0 {
		return fail("syntax", "DPoP proof header uses JWS extensions (crit or b64); remove them")
	}

	// RFC 9449, Section 4.3, step 7: the jwk contains no private key.
	return checkRawJWK(h.JWK)
}

// classifyParseError maps a go-jose parse failure to the check it belongs to.
// It runs only on the failure path, so parsing the jwk a second time here
// costs valid proofs nothing.
func classifyParseError(err error, rawJWK json.RawMessage) error {
	var unexpected *jose.ErrUnexpectedSignatureAlgorithm
	if errors.As(err, &unexpected) {
		return fail("alg", "DPoP proof alg "+quote(string(unexpected.Got))+" is not allowed")
	}

	var key jose.JSONWebKey
	if key.UnmarshalJSON(rawJWK) != nil || !key.Valid() || !key.IsPublic() {
		return fail("jwk", "DPoP proof jwk is not a valid public key")
	}
	return fail("syntax", "DPoP proof is not a well-formed compact JWS")
}
