package exchange

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/devicebind"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// SessionScope is the reserved scope that requests a Sotto session
// instead of an action token. It is never a catalog action.
const SessionScope = "sotto:session"

// refreshTokenPrefix starts every refresh token, so the revocation
// endpoint distinguishes a refresh token from a JWT without a database
// read.
const refreshTokenPrefix = "sotto_rt_"

// SessionStore is the storage of sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, w storage.SessionWrite) (storage.ExchangeResult, error)
	RotateRefreshToken(ctx context.Context, oldSignature string, now time.Time, w storage.SessionWrite) (storage.RotateResult, error)
	RefreshToken(ctx context.Context, signature string) (*storage.RefreshToken, error)
	Session(ctx context.Context, id string) (*storage.Session, error)
}

// SessionPolicy holds the lifetimes of sessions.
type SessionPolicy struct {
	// IdleTimeout is the lifetime of each refresh token: a session not
	// refreshed within it ends.
	IdleTimeout time.Duration
	// AbsoluteLifetime is the lifetime of a session from its login.
	AbsoluteLifetime time.Duration
	// AccessTokenTTL is the lifetime of a session access token.
	AccessTokenTTL time.Duration
}

// sessionGrant is the token endpoint's decision to issue session tokens:
// the session (new or refreshed) and the generation of the tokens.
type sessionGrant struct {
	session    *storage.Session
	generation int64
	// rotated is the refresh token a refresh presented, or nil for a new
	// session.
	rotated *storage.RefreshToken
}

// IsRefreshToken reports whether token has the form of a refresh token
// of this server. It reads nothing from storage.
func IsRefreshToken(token string) bool {
	return strings.HasPrefix(token, refreshTokenPrefix)
}

// requestsSession reports whether the scope parameter names the session
// scope, alone or with other scopes.
func requestsSession(form url.Values) bool {
	return slices.Contains(strings.Split(form.Get("scope"), " "), SessionScope)
}

// grantSession checks a request for a new session, made with a verified
// corporate subject token and proof, and records the decision in the
// attempt for PopulateTokenEndpointResponse.
func (h *Handler) grantSession(ctx context.Context, ar fosite.AccessRequester, client Client,
	proof *devicebind.Proof, subject *Subject, now time.Time) error {
	attempt := attemptFrom(ctx)
	attempt.sessionRequested = true
	form := ar.GetRequestForm()

	if subject.SessionID != "" {
		return oauth.New("invalid_scope", "session_from_session",
			"A session access token cannot start another session; refresh the session with its refresh_token instead.")
	}
	if scope := form.Get("scope"); scope != SessionScope {
		return oauth.New("invalid_scope", "session_scope_combined", fmt.Sprintf(
			"The scope %s combines %s with other scopes; request a session with scope=%s alone.",
			quote(scope), SessionScope, SessionScope))
	}
	// A session is a refresh token as much as an access token, so the
	// client must be registered for the refresh_token grant that uses it.
	if !slices.Contains(client.GetGrantTypes(), config.GrantTypeRefreshToken) {
		return oauth.New("unauthorized_client", "session_grant_not_allowed",
			"The client is not registered for sessions; add refresh_token to the client's grant_types.")
	}
	// The session access token is for this server only, so the only
	// target a request may name is the issuer (RFC 8707 §2).
	for _, target := range append(slices.Clone(form["audience"]), form["resource"]...) {
		if target != h.Issuer {
			return oauth.New(oauth.CodeInvalidTarget, "session_target", fmt.Sprintf(
				"A session access token is only for this server; omit audience and resource or name %s, not %s.",
				h.Issuer, quote(target)))
		}
	}

	trust, err := h.deviceTrust(ctx, proof.JKT, subject.ID)
	if err != nil {
		return oauth.ServerError(fmt.Errorf("read device: %w", err))
	}
	attempt.DeviceTrust = trust
	if e := checkDevice(trust, &Action{Scope: SessionScope, DeviceTrust: DeviceTrustAny}); e != nil {
		return e
	}

	session := &storage.Session{
		ID:            newTokenID(),
		ClientID:      client.GetID(),
		Subject:       subject.ID,
		SubjectIssuer: subject.Issuer,
		DeviceJKT:     proof.JKT,
		Groups:        subject.Groups,
		ACR:           subject.ACR,
		AMR:           subject.AMR,
		Parent:        subject.TokenID,
		CreatedAt:     now,
		RefreshedAt:   now,
		ExpiresAt:     now.Add(h.Sessions.AbsoluteLifetime),
	}
	if !subject.AuthTime.IsZero() {
		t := subject.AuthTime
		session.AuthTime = &t
	}
	attempt.session = &sessionGrant{session: session}
	ar.GrantScope(SessionScope)
	ar.GrantAudience(h.Issuer)
	return nil
}

// verifySessionSubject checks a session access token presented as the
// subject_token and returns the identity of its session. The stored
// record is found by the token's jti and the hash of the whole token, one
// read by primary key, so the token's signature needs no check: only a
// token this server issued has a matching record. Revoking a session
// revokes its access tokens in the same transaction, so the record alone shows
// whether the session is still live.
func (h *Handler) verifySessionSubject(ctx context.Context, token string) (*Subject, error) {
	rec, err := LookupToken(ctx, h.Store, token)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.InvalidRequest("subject_token_unknown",
			"The subject_token is not an access token issued by this server; exchange the corporate ID token as "+TokenTypeIDToken+".")
	}
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	// RFC 8693 §2.2.2: an action token is never a valid subject token,
	// even one exchanged from a session, which has a SessionID too.
	if rec.SessionID == "" || rec.Scope != SessionScope || rec.Audience != h.Issuer {
		return nil, oauth.InvalidRequest("subject_action_token",
			"The subject_token is an action token, which cannot be exchanged again; exchange the corporate ID token or a session access token instead.")
	}

	attempt := attemptFrom(ctx)
	now := h.Now()
	switch {
	case rec.RevokedAt != nil:
		return nil, oauth.InvalidRequest("subject_revoked",
			"The session access token was revoked, or its session ended; sign in again to start a new session.")
	case rec.ExpiresAt.Sub(now) < minRemainingLifetime:
		return nil, oauth.InvalidRequest("subject_exp",
			"The session access token has expired; get a new one with the session's refresh_token.")
	case rec.ClientID != attempt.ClientID:
		return nil, oauth.InvalidRequest("subject_client",
			"The session access token was issued to another client; each client exchanges its own session.")
	// RFC 9449 §6.1: the session is bound to the key named by cnf.jkt, so
	// every token derived from it must be proved with the same key.
	case attempt.Proof != nil && rec.DeviceJKT != attempt.Proof.JKT:
		return nil, oauth.InvalidRequest("subject_key_mismatch",
			"The DPoP proof is signed by another key than the one the session is bound to (cnf.jkt); sign the proof with the session's device key (RFC 9449 §6.1).")
	}

	var stored Session
	if err := json.Unmarshal(rec.Session, &stored); err != nil {
		return nil, oauth.ServerError(fmt.Errorf("decode session access token %s: %w", rec.TokenID, err))
	}
	c := stored.Claims
	_, corporateSub, _ := strings.Cut(c.Subject, "|")
	subject := &Subject{
		Issuer:    c.SubjectIssuer,
		Subject:   corporateSub,
		ID:        c.Subject,
		Groups:    stored.Groups,
		ACR:       c.ACR,
		AMR:       c.AMR,
		IssuedAt:  time.Unix(c.IssuedAt, 0),
		ExpiresAt: rec.ExpiresAt,
		TokenID:   c.Parent,
		SessionID: rec.SessionID,
	}
	if c.AuthTime != 0 {
		subject.AuthTime = time.Unix(c.AuthTime, 0)
	}
	return subject, nil
}

// sessionParent names generation gen of session id as the parent of the
// tokens issued in it: "session:<id>/<gen>".
func sessionParent(id string, gen int64) string {
	return fmt.Sprintf("session:%s/%d", id, gen)
}

// newRefreshToken returns a fresh refresh token: the prefix and 32 random
// bytes in base64url.
func newRefreshToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return refreshTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// sessionTokens are the tokens of one session generation, signed and
// ready to be stored.
type sessionTokens struct {
	claims       *Claims
	accessToken  string
	refreshToken string
	write        storage.SessionWrite
}

// issueSessionTokens signs a session access token and makes a refresh
// token for generation g of the session, and returns them with the write
// that stores them.
func (h *Handler) issueSessionTokens(ar fosite.AccessRequester, attempt *Attempt, g *sessionGrant, now time.Time) (*sessionTokens, error) {
	s := g.session
	claims := &Claims{
		Issuer:        h.Issuer,
		Subject:       s.Subject,
		Audience:      h.Issuer,
		Expiry:        min(now.Add(h.Sessions.AccessTokenTTL).Unix(), s.ExpiresAt.Unix()),
		IssuedAt:      now.Unix(),
		ID:            newTokenID(),
		ClientID:      s.ClientID,
		Scope:         SessionScope,
		ACR:           s.ACR,
		AMR:           s.AMR,
		Confirmation:  Confirmation{JKT: s.DeviceJKT},
		Parent:        sessionParent(s.ID, g.generation),
		SubjectIssuer: s.SubjectIssuer,
		SessionID:     s.ID,
	}
	if s.AuthTime != nil {
		claims.AuthTime = s.AuthTime.Unix()
	}
	attempt.claims = claims

	payload, err := json.Marshal(claims)
	if err != nil {
		return nil, err
	}
	token, err := h.Signer.SignAccessToken(payload)
	if err != nil {
		return nil, fmt.Errorf("sign session access token: %w", err)
	}
	session, err := json.Marshal(&Session{Claims: *claims, Groups: s.Groups})
	if err != nil {
		return nil, err
	}
	refresh := newRefreshToken()
	refreshExpiry := now.Add(h.Sessions.IdleTimeout)
	if refreshExpiry.After(s.ExpiresAt) {
		refreshExpiry = s.ExpiresAt
	}

	record := h.auditRecord(attempt, audit.DecisionIssued, "", "")
	record.TokenID = claims.ID
	record.TokenExpiresAt = time.Unix(claims.Expiry, 0).UTC()
	return &sessionTokens{
		claims:       claims,
		accessToken:  token,
		refreshToken: refresh,
		write: storage.SessionWrite{
			Proof: proofClaim(attempt.Proof, h.DPoP),
			Refresh: storage.RefreshToken{
				Signature:  TokenSignature(refresh),
				SessionID:  s.ID,
				Generation: g.generation,
				ClientID:   s.ClientID,
				DeviceJKT:  s.DeviceJKT,
				IssuedAt:   now,
				ExpiresAt:  refreshExpiry,
			},
			Token: storage.AccessToken{
				Signature: TokenSignature(token),
				TokenID:   claims.ID,
				RequestID: ar.GetID(),
				ClientID:  claims.ClientID,
				Subject:   claims.Subject,
				Scope:     claims.Scope,
				Audience:  claims.Audience,
				DeviceJKT: claims.Confirmation.JKT,
				Parent:    claims.Parent,
				IssuedAt:  now.UTC(),
				ExpiresAt: time.Unix(claims.Expiry, 0).UTC(),
				Session:   session,
				SessionID: s.ID,
			},
			Audit:       record,
			ReplayAudit: h.replayRecord(attempt),
		},
	}, nil
}

// populateSession issues a new session: it stores the session with its
// first tokens and audit record in one transaction and writes the response.
func (h *Handler) populateSession(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder, attempt *Attempt) error {
	if h.SessionStore == nil {
		return oauth.ServerError(errors.New("sessions are requested but the handler has no SessionStore"))
	}
	tokens, err := h.issueSessionTokens(ar, attempt, attempt.session, h.Now())
	if err != nil {
		return oauth.ServerError(err)
	}
	tokens.write.Session = attempt.session.session
	result, err := h.SessionStore.CreateSession(ctx, tokens.write)
	if err != nil {
		return oauth.ServerError(fmt.Errorf("create session: %w", err))
	}
	attempt.recorded = true
	if result.Replayed {
		return errReplay
	}
	writeSessionResponse(resp, tokens)
	resp.SetExtra("issued_token_type", TokenTypeAccessToken) // RFC 8693 §2.2.1
	return nil
}

// writeSessionResponse sets the members of a session response: the session
// access token, DPoP-bound (RFC 9449 §5), and the refresh token (RFC 6749
// §5.1).
func writeSessionResponse(resp fosite.AccessResponder, t *sessionTokens) {
	resp.SetAccessToken(t.accessToken)
	resp.SetTokenType("DPoP")
	resp.SetExpiresIn(time.Duration(t.claims.Expiry-t.claims.IssuedAt) * time.Second)
	resp.SetScopes(fosite.Arguments{SessionScope})
	resp.SetExtra("refresh_token", t.refreshToken)
}
