package devicebind

import (
	"errors"
	"strings"
)

// ErrMissing reports that the request carried no DPoP header. Verify returns
// it wrapped in an [*Error] with Check "header", so errors.Is(err, ErrMissing)
// lets the caller decide whether a proof is required for the request.
var ErrMissing = errors.New("devicebind: missing DPoP header")

// Error is a failed check of a DPoP proof.
//
// Check is a stable short code of the check that failed: "header", "syntax",
// "typ", "alg", "jwk", "signature", "claims", "jti", "htm", "htu", "iat",
// "ath" or "nonce". Description is a sentence for the client, suitable as an
// OAuth error_description: it contains no key material and only the
// characters that RFC 6749, Section 5.2 allows there.
type Error struct {
	Check       string
	Description string

	cause error
}

// Error returns the check code and the description.
func (e *Error) Error() string {
	return "devicebind: " + e.Check + " check failed: " + e.Description
}

// Unwrap returns the sentinel behind the failure, such as ErrMissing, or nil.
func (e *Error) Unwrap() error {
	return e.cause
}

func fail(check, description string) *Error {
	return &Error{Check: check, Description: description}
}

// maxQuotedBytes caps how much of a client-supplied value a description
// repeats back.
const maxQuotedBytes = 64

// quote wraps a client-supplied value in single quotes for a description.
// RFC 6749, Section 5.2 allows only %x20-21 / %x23-5B / %x5D-7E in
// error_description, so other bytes become '?' and long values are truncated.
func quote(s string) string {
	truncated := len(s) > maxQuotedBytes
	if truncated {
		s = s[:maxQuotedBytes]
	}

	var b strings.Builder
	b.Grow(len(s) + 5)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			c = '?'
		}
		b.WriteByte(c)
	}
	if truncated {
		b.WriteString("...")
	}
	b.WriteByte('\'')
	return b.String()
}
