package connector

import (
	"fmt"
	"net/http"
	"strings"
)

const (
	// maxTokenBytes bounds the access token. Sotto's tokens are about
	// 1 KiB; the limit leaves room for long authorization_details.
	maxTokenBytes = 16 << 10

	// maxProofBytes bounds the DPoP header value. A proof with a 4096-bit
	// RSA key is about 2 KiB.
	maxProofBytes = 8 << 10
)

// parseCredentials returns the access token of the Authorization header
// and the DPoP proof of the DPoP header. authorization and dpop contain
// every value of the two header fields.
func parseCredentials(authorization, dpop []string) (token, proof string, err error) {
	// RFC 6750, Section 3.1: a request without credentials gets a
	// challenge without an error code.
	if len(authorization) == 0 {
		return "", "", &Error{Status: http.StatusUnauthorized, Description: "request has no Authorization header"}
	}
	// RFC 9110, Section 5.3: Authorization is a singleton field, so two
	// values make the request malformed (RFC 6750, Section 3.1).
	if len(authorization) > 1 {
		return "", "", reject(CodeInvalidRequest, http.StatusBadRequest,
			"request has more than one Authorization header; send exactly one")
	}

	// RFC 9110, Section 11.4: credentials = auth-scheme [ 1*SP token68 ],
	// and the scheme is case-insensitive (Section 11.1).
	scheme, value, _ := strings.Cut(authorization[0], " ")
	value = strings.TrimLeft(value, " ")
	switch {
	case strings.EqualFold(scheme, "DPoP"):
	case strings.EqualFold(scheme, "Bearer"):
		// RFC 9449, Section 7.1: a DPoP-bound access token is sent with the
		// DPoP scheme. Every Sotto action token is DPoP-bound, so a Bearer
		// token is never accepted here.
		return "", "", invalidToken("the access token is DPoP-bound; send it as Authorization: DPoP with a DPoP proof")
	default:
		return "", "", &Error{Status: http.StatusUnauthorized,
			Description: "the Authorization scheme is not DPoP"}
	}
	if value == "" {
		return "", "", invalidToken("the Authorization header has no access token after DPoP")
	}
	if len(value) > maxTokenBytes {
		return "", "", invalidToken(fmt.Sprintf("the access token exceeds the limit of %d bytes", maxTokenBytes))
	}
	if !isToken68(value) {
		return "", "", invalidToken("the access token is not a token68 value (RFC 9110, Section 11.2)")
	}

	// RFC 9449, Section 4.3, step 1: exactly one DPoP header field.
	switch len(dpop) {
	case 0:
		return "", "", invalidProof("request has no DPoP header; send a DPoP proof with the access token")
	case 1:
	default:
		return "", "", invalidProof("request has more than one DPoP header; send exactly one")
	}
	proof = dpop[0]
	if len(proof) > maxProofBytes {
		return "", "", invalidProof(fmt.Sprintf("the DPoP header exceeds the limit of %d bytes", maxProofBytes))
	}
	// RFC 9449, Section 4.3, step 2: the value is one well-formed JWT. A
	// compact JWS contains only base64url characters and two dots
	// (RFC 7515, Section 7.1), so a comma means a list of proofs.
	if strings.Count(proof, ".") != 2 || strings.Trim(proof, base64URLAlphabet+".") != "" {
		return "", "", invalidProof("the DPoP header is not a single compact JWS")
	}
	return value, proof, nil
}

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// isToken68 reports whether s matches token68 of RFC 9110, Section 11.2:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	return strings.Trim(body, base64URLAlphabet+".~+/") == ""
}
