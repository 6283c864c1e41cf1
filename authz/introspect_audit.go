package authz

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// respondInactive records an introspection that found tok inactive for
// reason, and sends the inactive response. tok is nil for a token this
// server does not know.
func (s *Server) respondInactive(w http.ResponseWriter, r *http.Request, caller *Client, tok *storage.AccessToken, reason string) {
	if err := s.recordIntrospection(r.Context(), caller, tok, audit.DecisionInactive, reason); err != nil {
		s.writeError(w, r, oauth.ServerError(err))
		return
	}
	writeJSON(w, http.StatusOK, inactive)
}

// recordIntrospection writes the audit record of one introspection through
// the group-commit writer, so introspections share the commits of the
// exchanges instead of paying a transaction each. The record names the
// token by its jti, never by the token itself. The response waits for the
// commit, so a connector never acts on an introspection the log lacks.
func (s *Server) recordIntrospection(ctx context.Context, caller *Client, tok *storage.AccessToken, decision audit.Decision, reason string) error {
	rec := audit.Record{
		Time:      s.now().UTC(),
		RequestID: oauth.RequestID(ctx),
		Event:     audit.EventIntrospection,
		ClientID:  caller.ID,
		Decision:  decision,
		Reason:    reason,
	}
	if tok != nil {
		rec.Subject, rec.DeviceJKT = tok.Subject, tok.DeviceJKT
		rec.Action, rec.Audience = tok.Scope, tok.Audience
		rec.TokenID, rec.TokenExpiresAt = tok.TokenID, tok.ExpiresAt
	}
	if _, err := s.store.CommitExchange(ctx, storage.ExchangeWrite{Audit: rec}); err != nil {
		return fmt.Errorf("record introspection: %w", err)
	}
	s.metrics.introspections.WithLabelValues(string(decision)).Inc()
	return nil
}
