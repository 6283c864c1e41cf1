package connector

import "net/http"

// Require returns a handler that validates each request against req and
// passes it to next with the token's claims in its context (see
// [ClaimsFrom]). A rejected request gets the challenge of
// [Validator.WriteError] and never reaches next.
func (v *Validator) Require(req Requirement, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := v.Validate(r, req)
		if err != nil {
			v.WriteError(w, err)
			return
		}
		// RFC 9449, Sections 8.2 and 9: a resource server may send the next nonce
		// with a successful response, so the client need not be challenged.
		if v.nonces != nil {
			if nonce, err := v.nonces.Nonce(v.now()); err == nil {
				w.Header().Set("DPoP-Nonce", nonce)
			}
		}
		next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), claims)))
	})
}
