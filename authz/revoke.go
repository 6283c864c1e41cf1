package authz

import (
	"errors"
	"net/http"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// handleRevoke serves token revocation (RFC 7009 §2). The revocation and
// its audit record are written in one transaction, so a restart never loses a
// revocation that was confirmed.
//
// fosite's revocation flow answers 200 when the token belongs to another
// client; RFC 7009 §2.1 says that request is refused, so this endpoint
// does the lookup itself and uses fosite only to authenticate the client.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form, err := parseForm(r, s.cfg.HTTP.MaxBodyBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkOneAuthMethod(r, form); err != nil {
		s.writeError(w, r, err)
		return
	}
	fc, err := s.provider.AuthenticateClient(ctx, r, form)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	client := fc.(*Client)

	token := form.Get("token")
	if token == "" {
		s.writeError(w, r, oauth.InvalidRequest("token_missing", "The token parameter is missing (RFC 7009 §2.1)."))
		return
	}
	// RFC 7009 §2.1: token_type_hint is only a hint. A refresh token is
	// recognised by its prefix, so the hint does not change the search.
	if exchange.IsRefreshToken(token) {
		s.revokeRefreshToken(w, r, client, token)
		return
	}

	rec, err := exchange.LookupToken(ctx, s.store, token)
	if errors.Is(err, storage.ErrNotFound) {
		// RFC 7009 §2.2: the response to an invalid or unknown token is 200.
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	if err != nil {
		s.writeError(w, r, oauth.ServerError(err))
		return
	}
	// RFC 7009 §2.1: the server verifies that the token was issued to
	// the client making the request.
	if rec.ClientID != client.ID {
		s.logger.InfoContext(ctx, "revocation refused: token of another client",
			"request_id", oauth.RequestID(ctx), "client_id", client.ID, "token_id", rec.TokenID)
		s.writeError(w, r, oauth.New("unauthorized_client", "revoke_other_client",
			"The token was issued to another client; only that client can revoke it."))
		return
	}
	// A session access token stands for its session, so revoking it ends
	// the session and everything derived from it.
	if s.isSessionAccessToken(rec) {
		s.endSession(w, r, client, rec.SessionID, rec.DeviceJKT, "session access token")
		return
	}

	n, err := s.store.RevokeAccessTokens(ctx, rec.RequestID, s.now().UTC(), audit.Record{
		Time:      s.now().UTC(),
		RequestID: oauth.RequestID(ctx),
		Event:     audit.EventRevocation,
		ClientID:  client.ID,
		Subject:   rec.Subject,
		DeviceJKT: rec.DeviceJKT,
		Action:    rec.Scope,
		Audience:  rec.Audience,
		Decision:  audit.DecisionRevoked,
		Reason:    "client_request",
		TokenID:   rec.TokenID,
	})
	if err != nil {
		s.writeError(w, r, oauth.ServerError(err))
		return
	}
	s.metrics.revocations.WithLabelValues("client_request").Inc()
	s.metrics.revokedTokens.Add(float64(n))
	s.logger.InfoContext(ctx, "token revoked",
		"request_id", oauth.RequestID(ctx), "client_id", client.ID, "token_id", rec.TokenID, "tokens_ended", n)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
