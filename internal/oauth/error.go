// Package oauth holds the one OAuth error type of the server and the one
// function that writes it, so every refusal leaves as an RFC 6749 §5.2
// JSON body with an error_description a person can act on.
package oauth

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/ory/fosite"
)

// Error codes beyond RFC 6749 §5.2 that the server sends.
const (
	// CodeInvalidTarget is RFC 8707 §2: the audience or resource is not
	// one the action serves.
	CodeInvalidTarget = "invalid_target"
	// CodeInvalidDPoPProof is RFC 9449 §5.
	CodeInvalidDPoPProof = "invalid_dpop_proof"
	// CodeInsufficientUserAuthentication is RFC 9470 §3. RFC 9470 defines
	// it for resource servers; the token endpoint reuses it on purpose to
	// ask for step-up before an action token is issued.
	CodeInsufficientUserAuthentication = "insufficient_user_authentication"
	// CodeUseDPoPNonce is RFC 9449 §8: the proof must carry the nonce
	// sent in the DPoP-Nonce header of the answer.
	CodeUseDPoPNonce = "use_dpop_nonce"
)

// Error is an OAuth error response. Code and Description are sent; Reason
// is a finer code for audit records and logs; Cause is logged and never
// sent.
type Error struct {
	Code        string
	Description string
	Status      int
	// Extra holds additional members of the JSON body, such as the
	// acr_values and max_age of RFC 9470 §3.
	Extra map[string]any
	// Header holds response headers, such as WWW-Authenticate.
	Header http.Header
	Reason string
	Cause  error
}

// Error returns the code and description.
func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// New returns an Error with HTTP status 400.
func New(code, reason, description string) *Error {
	return &Error{Code: code, Reason: reason, Description: description, Status: http.StatusBadRequest}
}

// InvalidRequest returns an invalid_request error (RFC 6749 §5.2).
func InvalidRequest(reason, description string) *Error {
	return New("invalid_request", reason, description)
}

// ServerError returns a server_error that carries cause for the log only.
func ServerError(cause error) *Error {
	return &Error{
		Code:        "server_error",
		Reason:      "server_error",
		Description: "The server failed to complete the request. Retry later; the failure was logged.",
		Status:      http.StatusInternalServerError,
		Cause:       cause,
	}
}

// From converts any error into an Error. Errors of fosite keep their RFC
// 6749 code and description but lose their debug text; anything else is a
// server_error.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var fe *fosite.RFC6749Error
	if errors.As(err, &fe) {
		status := fe.CodeField
		if status == 0 {
			status = http.StatusBadRequest
		}
		if fe.ErrorField == fosite.ErrServerError.ErrorField ||
			fe.ErrorField == fosite.ErrTemporarilyUnavailable.ErrorField {
			out := ServerError(err)
			out.Code = fe.ErrorField
			out.Status = status
			return out
		}
		return &Error{
			Code:        fe.ErrorField,
			Reason:      fe.ErrorField,
			Description: fe.GetDescription(),
			Status:      status,
			Cause:       err,
		}
	}
	return ServerError(err)
}

// Write sends err as a JSON error response with Cache-Control: no-store
// (RFC 6749 §5.1, §5.2). A server error is logged with its cause at error
// level; the client sees only a generic description. The description is
// sent in the character set that RFC 6749 §5.2 allows.
func Write(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	e := From(err)
	if e.Status >= http.StatusInternalServerError && logger != nil {
		logger.ErrorContext(r.Context(), "request failed",
			"path", r.URL.Path, "error", e.Cause, "request_id", RequestID(r.Context()))
	}

	body := make(map[string]any, 2+len(e.Extra))
	for k, v := range e.Extra {
		body[k] = v
	}
	body["error"] = e.Code
	if e.Description != "" {
		body["error_description"] = descriptionText(e.Description)
	}

	h := w.Header()
	for k, vs := range e.Header {
		h[k] = vs
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(body)
}

// maxQuoted is the number of bytes of a client-supplied value that Quote
// keeps, so a hostile value cannot make an answer or an audit record large.
const maxQuoted = 64

// Quote returns s in single quotes for an error description. It keeps at
// most 64 bytes of s and replaces every byte that RFC 6749, Section 5.2
// does not allow in error_description with '?'.
func Quote(s string) string {
	truncated := len(s) > maxQuoted
	if truncated {
		s = s[:maxQuoted]
	}
	var b strings.Builder
	b.Grow(len(s) + 5)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !descriptionByte(c) {
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

// descriptionByte reports whether c may appear in error_description: RFC
// 6749, Section 5.2 allows only %x20-21 / %x23-5B / %x5D-7E.
func descriptionByte(c byte) bool {
	return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'
}

// descriptionText returns desc in the character set of RFC 6749, Section
// 5.2. A section sign becomes "Section ", a double quote becomes a single
// quote, and any other character outside the set becomes '?'. It is the
// last line of defence for descriptions that repeat fosite hints or
// library errors, which may carry client input.
func descriptionText(desc string) string {
	clean := true
	for i := 0; i < len(desc); i++ {
		if !descriptionByte(desc[i]) {
			clean = false
			break
		}
	}
	if clean {
		return desc
	}

	var b strings.Builder
	b.Grow(len(desc) + 8)
	for i := 0; i < len(desc); {
		c := desc[i]
		if descriptionByte(c) {
			b.WriteByte(c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(desc[i:])
		switch {
		case r == '\u00a7':
			b.WriteString("Section ")
		case c == '"':
			b.WriteByte('\'')
		default:
			b.WriteByte('?')
		}
		i += size
	}
	return b.String()
}
