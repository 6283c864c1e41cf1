package authz

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// inactive is the whole answer for a token that is not active, or that
// the caller may not see (RFC 7662 §2.2, §4).
var inactive = map[string]bool{"active": false}

// handleIntrospect serves token introspection (RFC 7662 §2). Callers are
// confidential clients; an active token is shown only to a caller whose
// audiences include the token's audience.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form, err := parseForm(r, s.cfg.HTTP.MaxBodyBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}

	// RFC 7662 §2.1: the endpoint requires authorization. This server
	// takes client authentication only, not a bearer token.
	if strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "bearer ") ||
		strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "dpop ") {
		s.writeError(w, r, &oauth.Error{Code: "invalid_client", Reason: "introspection_bearer", Status: http.StatusUnauthorized,
			Description: "Introspection callers authenticate as confidential clients with client_secret_basic or client_secret_post, not with a token."})
		return
	}
	if err := checkOneAuthMethod(r, form); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, _, ok := r.BasicAuth(); !ok && form.Get("client_id") == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="sotto", charset="UTF-8"`)
		s.writeError(w, r, &oauth.Error{Code: "invalid_client", Reason: "introspection_unauthenticated", Status: http.StatusUnauthorized,
			Description: "Introspection requires client authentication: send the connector's client_id and secret with HTTP Basic."})
		return
	}
	fc, err := s.provider.AuthenticateClient(ctx, r, form)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	caller := fc.(*Client)
	if caller.Public {
		s.writeError(w, r, &oauth.Error{Code: "invalid_client", Reason: "introspection_public_client", Status: http.StatusUnauthorized,
			Description: "Public clients cannot introspect tokens; use a confidential client with a secret."})
		return
	}
	// A client whose kill switch is on sees no token: RFC 7662 §2.1 lets
	// the server refuse a caller it no longer authorizes.
	if exchange.IsDisabled(caller) {
		s.writeError(w, r, &oauth.Error{Code: "invalid_client", Reason: "client_disabled", Status: http.StatusUnauthorized,
			Description: "The client is disabled by an administrator and cannot introspect tokens."})
		return
	}

	token := form.Get("token")
	if token == "" {
		s.writeError(w, r, oauth.InvalidRequest("token_missing", "The token parameter is missing (RFC 7662 §2.1)."))
		return
	}

	rec, err := exchange.LookupToken(ctx, s.store, token)
	if errors.Is(err, storage.ErrNotFound) {
		s.respondInactive(w, r, caller, nil, "unknown_token")
		return
	}
	if err != nil {
		s.writeError(w, r, oauth.ServerError(err))
		return
	}
	now := s.now()
	switch {
	case rec.RevokedAt != nil:
		s.respondInactive(w, r, caller, rec, "revoked")
		return
	case !now.Before(rec.ExpiresAt):
		s.respondInactive(w, r, caller, rec, "expired")
		return
	case !slices.Contains(caller.Audiences, rec.Audience):
		s.respondInactive(w, r, caller, rec, "audience_not_allowed")
		return
	}

	if rec.SessionID != "" {
		live, err := s.sessionLive(ctx, rec.SessionID, now)
		if err != nil {
			s.writeError(w, r, oauth.ServerError(err))
			return
		}
		if !live {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
	}

	var session exchange.Session
	if err := json.Unmarshal(rec.Session, &session); err != nil {
		s.writeError(w, r, oauth.ServerError(err))
		return
	}
	c := session.Claims
	// RFC 7662 §2.2 members, with token_type DPoP and cnf.jkt of RFC 9449
	// §6.2.
	answer := map[string]any{
		"active":     true,
		"scope":      c.Scope,
		"client_id":  c.ClientID,
		"sub":        c.Subject,
		"aud":        c.Audience,
		"iss":        c.Issuer,
		"exp":        c.Expiry,
		"iat":        c.IssuedAt,
		"jti":        c.ID,
		"token_type": "DPoP",
		"cnf":        map[string]string{"jkt": c.Confirmation.JKT},
	}
	if c.ACR != "" {
		answer["acr"] = c.ACR
	}
	if len(c.AMR) > 0 {
		answer["amr"] = c.AMR
	}
	if c.AuthTime != 0 {
		answer["auth_time"] = c.AuthTime
	}
	if c.SessionID != "" {
		answer["sid"] = c.SessionID
	}
	if err := s.recordIntrospection(ctx, caller, rec, audit.DecisionActive, ""); err != nil {
		s.writeError(w, r, oauth.ServerError(err))
		return
	}
	writeJSON(w, http.StatusOK, answer)
}

// writeJSON writes v with Cache-Control: no-store, which every answer
// that may carry token data needs (RFC 6749 §5.1).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
