package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

func sessionPolicy(cfg *config.Config) exchange.SessionPolicy {
	return exchange.SessionPolicy{
		IdleTimeout:      time.Duration(cfg.Sessions.IdleTimeout),
		AbsoluteLifetime: time.Duration(cfg.Sessions.AbsoluteLifetime),
		AccessTokenTTL:   time.Duration(cfg.Sessions.AccessTokenTTL),
	}
}

// revokeRefreshToken serves the revocation of a refresh token (RFC 7009
// §2.1): it revokes the whole session, since RFC 7009 §2.1 lets the
// server revoke the access tokens of the same grant too, and a session
// is one grant.
func (s *Server) revokeRefreshToken(w http.ResponseWriter, r *http.Request, client *Client, token string) {
	ctx := r.Context()
	rt, err := s.store.RefreshToken(ctx, exchange.TokenSignature(token))
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
	if rt.ClientID != client.ID {
		s.refuseOtherClient(w, r, client, rt.SessionID)
		return
	}
	s.endSession(w, r, client, rt.SessionID, rt.DeviceJKT, "refresh_token")
}

// endSession revokes session id and every token of it or derived from it,
// with an audit record that counts the tokens it ended, and responds with 200.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request, client *Client, id, jkt, presented string) {
	ctx := r.Context()
	session, err := s.store.Session(ctx, id)
	if err != nil {
		s.writeError(w, r, oauth.ServerError(fmt.Errorf("read session to revoke: %w", err)))
		return
	}
	now := s.now().UTC()
	n, err := s.store.RevokeSession(ctx, id, now, audit.Record{
		Time:          now,
		RequestID:     oauth.RequestID(ctx),
		Event:         audit.EventRevocation,
		ClientID:      client.ID,
		Subject:       session.Subject,
		SubjectIssuer: session.SubjectIssuer,
		DeviceJKT:     jkt,
		Action:        exchange.SessionScope,
		Audience:      s.cfg.Issuer,
		Decision:      audit.DecisionRevoked,
		Reason:        "client_request",
		Detail:        "The client revoked the session with its " + presented + ".",
		TokenID:       id,
	})
	if err != nil {
		s.writeError(w, r, oauth.ServerError(err))
		return
	}
	s.logger.InfoContext(ctx, "session revoked",
		"request_id", oauth.RequestID(ctx), "client_id", client.ID, "session_id", id, "tokens_ended", n)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) refuseOtherClient(w http.ResponseWriter, r *http.Request, client *Client, tokenID string) {
	ctx := r.Context()
	s.logger.InfoContext(ctx, "revocation refused: token of another client",
		"request_id", oauth.RequestID(ctx), "client_id", client.ID, "token_id", tokenID)
	s.writeError(w, r, oauth.New("unauthorized_client", "revoke_other_client",
		"The token was issued to another client; only that client can revoke it."))
}

// isSessionAccessToken reports whether rec is a session's own access
// token, as opposed to an action token exchanged from a session.
func (s *Server) isSessionAccessToken(rec *storage.AccessToken) bool {
	return rec.SessionID != "" && rec.Scope == exchange.SessionScope && rec.Audience == s.cfg.Issuer
}

// sessionLive reports whether the session of a token derived from a
// session is still live. A session revoked while an exchange from it was
// in flight may leave an action token written after the revocation, so
// introspection checks the session as well as the token.
func (s *Server) sessionLive(ctx context.Context, id string, now time.Time) (bool, error) {
	session, err := s.store.Session(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return session.RevokedAt == nil && now.Before(session.ExpiresAt), nil
}
