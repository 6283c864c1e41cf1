package connector

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes of the WWW-Authenticate challenge.
const (
	// CodeInvalidToken means the access token is missing a required part,
	// expired, revoked or otherwise invalid (RFC 6750, Section 3.1).
	CodeInvalidToken = "invalid_token"

	// CodeInvalidRequest means the request is malformed, for example with
	// two Authorization headers (RFC 6750, Section 3.1).
	CodeInvalidRequest = "invalid_request"

	// CodeInsufficientScope means the token lacks the route's scope
	// (RFC 6750, Section 3.1).
	CodeInsufficientScope = "insufficient_scope"

	// CodeInvalidDPoPProof means the DPoP proof failed a check of RFC 9449,
	// Section 4.3 (RFC 9449, Section 7.1).
	CodeInvalidDPoPProof = "invalid_dpop_proof"

	// CodeUseDPoPNonce means the proof must carry the nonce sent in the
	// DPoP-Nonce header (RFC 9449, Section 9).
	CodeUseDPoPNonce = "use_dpop_nonce"

	// CodeInsufficientUserAuthentication means the user's authentication
	// is not strong or recent enough for the route (RFC 9470, Section 3).
	CodeInsufficientUserAuthentication = "insufficient_user_authentication"
)

// Error is a rejected request. Its fields are the parameters of the
// WWW-Authenticate challenge that [Validator.WriteError] sends.
type Error struct {
	// Code is one of the Code constants, or empty when the request carried
	// no credentials at all (RFC 6750, Section 3.1).
	Code string

	// Description is a message for the client developer. It contains only
	// the characters RFC 6749, Section 5.2 allows, and never a token or
	// proof.
	Description string

	// Status is the HTTP status code: 400, 401 or 403.
	Status int

	// Scope is the scope the route requires, sent with insufficient_scope.
	Scope string

	// ACRValues and MaxAge are the RFC 9470 parameters sent with
	// insufficient_user_authentication. A zero MaxAge is not sent.
	ACRValues []string
	MaxAge    time.Duration

	// Nonce, when set, is sent as the DPoP-Nonce header (RFC 9449,
	// Section 8.1).
	Nonce string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return "connector: " + e.Description
	}
	return "connector: " + e.Code + ": " + e.Description
}

func reject(code string, status int, description string) *Error {
	return &Error{Code: code, Status: status, Description: sanitize(description)}
}

func invalidToken(description string) *Error {
	return reject(CodeInvalidToken, http.StatusUnauthorized, description)
}

func invalidProof(description string) *Error {
	return reject(CodeInvalidDPoPProof, http.StatusUnauthorized, description)
}

// sanitize keeps the characters RFC 6749, Section 5.2 allows in
// error_description (%x20-21 / %x23-5B / %x5D-7E) and replaces any other,
// so a claim value copied into a message cannot break the header syntax.
func sanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if allowedDescriptionByte(s[i]) {
			b.WriteByte(s[i])
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}

func allowedDescriptionByte(c byte) bool {
	return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'
}

// WriteError sends the response for an error from [Validator.Validate]: a
// challenge with the DPoP scheme for an [*Error], and 503 Service
// Unavailable without details for any other error, which is the
// connector's own fault (a replay cache or issuer that failed).
func (v *Validator) WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		v.logger.Error("connector: request validation failed", "error", err)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "service temporarily unavailable", http.StatusServiceUnavailable)
		return
	}

	// RFC 9449, Section 7.1: the DPoP scheme's challenge carries algs, the
	// proof algorithms the resource server accepts.
	params := []string{}
	if e.Code != "" {
		params = append(params, param("error", e.Code))
		if e.Description != "" {
			params = append(params, param("error_description", sanitize(e.Description)))
		}
	}
	if e.Scope != "" {
		params = append(params, param("scope", e.Scope))
	}
	if len(e.ACRValues) > 0 {
		params = append(params, param("acr_values", strings.Join(e.ACRValues, " ")))
	}
	if e.MaxAge > 0 {
		params = append(params, param("max_age", strconv.FormatInt(int64(e.MaxAge/time.Second), 10)))
	}
	params = append(params, param("algs", v.algNames))

	header := w.Header()
	header.Set("WWW-Authenticate", "DPoP "+strings.Join(params, ", "))
	if e.Nonce != "" {
		header.Set("DPoP-Nonce", e.Nonce)
	}
	header.Set("Cache-Control", "no-store")
	header.Set("Content-Type", "text/plain; charset=utf-8")
	status := e.Status
	if status == 0 {
		status = http.StatusUnauthorized
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(http.StatusText(status) + "\n"))
}

// param formats one auth-param as a quoted-string (RFC 9110, Section 11.2).
// Values are sanitized, so they need no escaping.
func param(name, value string) string {
	return name + `="` + sanitize(value) + `"`
}
