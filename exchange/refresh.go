package exchange

import (
	"context"
	"errors"
	"fmt"

	"github.com/ory/fosite"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// RefreshHandler is the fosite.TokenEndpointHandler of the refresh token
// grant (RFC 6749 §6) for Sotto sessions. Each refresh rotates the
// refresh token, issues a session access token for the same DPoP key,
// and keeps the identity of the login: sub, groups, acr, amr, auth_time.
//
// It is a handler of its own rather than fosite's
// OAuth2RefreshTokenGrantFactory because fosite v0.49.0's handler would
// need a CoreStorage that fakes authorization codes, and its semantics
// differ from the ones sessions need. It copies the old session and so
// keeps a stale iat, it ignores a requested scope and rechecks scopes
// against the client's current ones, and it has no DPoP key
// binding. Its reuse detection deletes by request ID without an audit
// record or a count. Here the rotation is one conditional UPDATE in the
// same transaction as the new tokens, the proof's replay claim and the
// audit record.
type RefreshHandler struct {
	h *Handler
}

var _ fosite.TokenEndpointHandler = (*RefreshHandler)(nil)

// NewRefreshHandler returns the refresh handler that shares h's options:
// issuer, DPoP verifier, signer and stores.
func NewRefreshHandler(h *Handler) *RefreshHandler {
	return &RefreshHandler{h: h}
}

// CanSkipClientAuth implements fosite.TokenEndpointHandler: every client
// identifies itself, since a refresh token is bound to its client.
func (r *RefreshHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (r *RefreshHandler) CanHandleTokenEndpointRequest(_ context.Context, ar fosite.AccessRequester) bool {
	return ar.GetGrantTypes().ExactOne(config.GrantTypeRefreshToken)
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler. The
// checks run in this order: client grant, DPoP proof, refresh token,
// scope, session, device.
func (r *RefreshHandler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !r.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	h := r.h
	attempt := attemptFrom(ctx)
	attempt.event = audit.EventRefresh
	now := h.Now()
	form := ar.GetRequestForm()

	// A disabled client is refused here too, so a refresh cannot keep its
	// sessions alive.
	client, err := grantClient(ar, attempt, config.GrantTypeRefreshToken, "refresh_token")
	if err != nil {
		return err
	}
	if h.SessionStore == nil {
		return oauth.ServerError(errors.New("a refresh was requested but the handler has no SessionStore"))
	}

	proof, err := h.verifyProof(ctx, client)
	if err != nil {
		return err
	}
	attempt.Proof = proof

	token := form.Get("refresh_token")
	if token == "" {
		return oauth.InvalidRequest("refresh_token_missing",
			"The refresh_token parameter is missing (RFC 6749 §6).")
	}
	// RFC 6749 §6: a requested scope must not exceed the one originally
	// granted, and a session grants only the session scope.
	if scope := form.Get("scope"); scope != "" && scope != SessionScope {
		return oauth.New("invalid_scope", "refresh_scope", fmt.Sprintf(
			"The scope %s exceeds the session's scope; omit scope or send %s (RFC 6749 §6).", quote(scope), SessionScope))
	}

	old, err := h.SessionStore.RefreshToken(ctx, TokenSignature(token))
	if errors.Is(err, storage.ErrNotFound) || !IsRefreshToken(token) {
		return oauth.New("invalid_grant", "refresh_token_unknown",
			"The refresh_token is not one this server issued; start a new session.")
	}
	if err != nil {
		return oauth.ServerError(err)
	}
	// RFC 6749 §6: the refresh token is bound to the client it was issued
	// to.
	if old.ClientID != client.GetID() {
		return oauth.New("invalid_grant", "refresh_token_client",
			"The refresh_token was issued to another client; each client refreshes its own session.")
	}
	// RFC 9449 §5: a refresh token issued with a DPoP proof to a public
	// client is bound to the proof's key, and a refresh with another key
	// is refused.
	if old.DeviceJKT != proof.JKT {
		return oauth.New("invalid_grant", "refresh_token_key_mismatch",
			"The DPoP proof is signed by another key than the one the refresh_token is bound to; sign the proof with the session's device key (RFC 9449 §5).")
	}

	session, err := h.SessionStore.Session(ctx, old.SessionID)
	if err != nil {
		return oauth.ServerError(fmt.Errorf("read session of a refresh token: %w", err))
	}
	attempt.Subject = &Subject{ID: session.Subject, Issuer: session.SubjectIssuer}
	switch {
	case session.RevokedAt != nil:
		return oauth.New("invalid_grant", "session_revoked",
			"The session was revoked; sign in again to start a new session.")
	case !now.Before(session.ExpiresAt):
		return oauth.New("invalid_grant", "session_expired",
			"The session reached its absolute lifetime; sign in again to start a new session.")
	case old.RevokedAt != nil:
		return oauth.New("invalid_grant", "refresh_token_revoked",
			"The refresh_token was revoked; sign in again to start a new session.")
	case old.UsedAt == nil && !now.Before(old.ExpiresAt):
		return oauth.New("invalid_grant", "refresh_token_expired",
			"The refresh_token expired because the session was idle too long; sign in again to start a new session.")
	}
	// A token that was already used goes on to the rotation, which
	// detects the reuse and revokes the session in its transaction.

	trust, err := h.deviceTrust(ctx, proof.JKT, session.Subject)
	if err != nil {
		return oauth.ServerError(fmt.Errorf("read device: %w", err))
	}
	attempt.DeviceTrust = trust
	if e := checkDevice(trust, &Action{Scope: SessionScope, DeviceTrust: DeviceTrustAny}); e != nil {
		return e
	}

	attempt.session = &sessionGrant{session: session, generation: old.Generation + 1, rotated: old}
	ar.GrantScope(SessionScope)
	ar.GrantAudience(h.Issuer)
	return nil
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler:
// it rotates the refresh token and stores the new tokens and the audit
// record in one transaction, then writes the answer.
func (r *RefreshHandler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !r.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	h := r.h
	attempt := attemptFrom(ctx)
	grant := attempt.session
	if grant == nil || grant.rotated == nil {
		return oauth.ServerError(errors.New("refresh reached the response without a decision"))
	}

	now := h.Now()
	tokens, err := h.issueSessionTokens(ar, attempt, grant, now)
	if err != nil {
		return oauth.ServerError(err)
	}
	result, err := h.SessionStore.RotateRefreshToken(ctx, grant.rotated.Signature, now, tokens.write)
	if err != nil {
		return oauth.ServerError(fmt.Errorf("rotate refresh token: %w", err))
	}
	attempt.recorded = true

	switch result.Outcome {
	case storage.RotateReplayed:
		return errReplay
	case storage.RotateReused:
		h.Logger.WarnContext(ctx, "refresh token reused, so its session was revoked",
			"request_id", attempt.RequestID, "client_id", attempt.ClientID,
			"session_id", grant.session.ID, "tokens_ended", result.Revoked)
		// RFC 9700 §4.14.2: a rotated refresh token presented again
		// revokes the whole session.
		return oauth.New("invalid_grant", "refresh_token_reuse",
			"The refresh_token was already used, so the session was revoked as a precaution (RFC 9700 §4.14.2); sign in again. Never send one refresh token twice.")
	case storage.RotateInactive:
		return oauth.New("invalid_grant", "refresh_token_inactive",
			"The refresh_token is no longer valid: it expired or was revoked, or its session ended; sign in again.")
	}
	writeSessionResponse(resp, tokens)
	return nil
}

// sessionAction is the audit action of session requests.
func sessionAction(a *Attempt) string {
	if a.session != nil || a.sessionRequested || a.event == audit.EventRefresh || a.event == audit.EventCodeRedemption {
		return SessionScope
	}
	return ""
}
