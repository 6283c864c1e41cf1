package exchange

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/ory/fosite"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// CodeStore is the storage of authorization codes.
type CodeStore interface {
	AuthorizationCode(ctx context.Context, signature string) (*storage.AuthorizationCode, error)
	RedeemAuthorizationCode(ctx context.Context, signature string, now time.Time, w storage.SessionWrite) (storage.RedeemResult, error)
}

// CodeHandler is the fosite.TokenEndpointHandler of the authorization
// code grant (RFC 6749 §4.1.3). A redemption starts a Sotto session,
// with the same tokens as the exchange of a corporate ID token with
// scope sotto:session: a DPoP-bound session access token and a refresh
// token.
//
// It is a handler of its own rather than fosite's authorize-explicit and
// PKCE factories. Those handlers issue fosite's own access and refresh
// tokens from a CoreStorage, while a code here must end in a Sotto
// session, written in one transaction with the code's single use, the
// proof's replay claim and the audit record. They also know neither
// dpop_jkt (RFC 9449 §10) nor DPoP binding, and a second redemption
// there revokes by request ID with no audit record. The checks below
// are the ones of RFC 6749 §4.1.3, RFC 7636 §4.6 and RFC 9449 §10.
type CodeHandler struct {
	h     *Handler
	codes CodeStore
}

var _ fosite.TokenEndpointHandler = (*CodeHandler)(nil)

// NewCodeHandler returns the code handler that shares h's options and
// reads codes from codes.
func NewCodeHandler(h *Handler, codes CodeStore) *CodeHandler {
	return &CodeHandler{h: h, codes: codes}
}

// CanSkipClientAuth implements fosite.TokenEndpointHandler: every client
// identifies itself, since a code is bound to its client.
func (c *CodeHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (c *CodeHandler) CanHandleTokenEndpointRequest(_ context.Context, ar fosite.AccessRequester) bool {
	return ar.GetGrantTypes().ExactOne(config.GrantTypeAuthorizationCode)
}

// codeRedemption is the decision to redeem a code.
type codeRedemption struct {
	signature string
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler. The
// checks run in this order: client grant, DPoP proof, code, client,
// single use, expiry, redirect_uri, code_verifier, dpop_jkt, device.
func (c *CodeHandler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !c.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	h := c.h
	attempt := attemptFrom(ctx)
	attempt.event = audit.EventCodeRedemption
	attempt.sessionRequested = true
	now := h.Now()
	form := ar.GetRequestForm()

	client, err := grantClient(ar, attempt, config.GrantTypeAuthorizationCode, "authorization_code")
	if err != nil {
		return err
	}
	if c.codes == nil || h.SessionStore == nil {
		return oauth.ServerError(errors.New("a code was presented but the handler has no CodeStore or SessionStore"))
	}

	// A session is DPoP-bound from its first token (RFC 9449 §5).
	proof, err := h.verifyProof(ctx, client)
	if err != nil {
		return err
	}
	attempt.Proof = proof

	code := form.Get("code")
	if code == "" {
		return oauth.InvalidRequest("code_missing", "The code parameter is missing (RFC 6749 §4.1.3).")
	}
	signature := TokenSignature(code)
	rec, err := c.codes.AuthorizationCode(ctx, signature)
	if errors.Is(err, storage.ErrNotFound) {
		return oauth.New("invalid_grant", "code_unknown",
			"The code is not one this server issued; start a new authorization request.")
	}
	if err != nil {
		return oauth.ServerError(err)
	}
	attempt.Subject = &Subject{ID: rec.Subject, Issuer: rec.SubjectIssuer}
	// RFC 6749 §4.1.3: the code was issued to the authenticated client.
	if rec.ClientID != client.GetID() {
		return oauth.New("invalid_grant", "code_client",
			"The code was issued to another client; each client redeems its own codes.")
	}

	session := &storage.Session{
		ID:            newTokenID(),
		ClientID:      rec.ClientID,
		Subject:       rec.Subject,
		SubjectIssuer: rec.SubjectIssuer,
		DeviceJKT:     proof.JKT,
		Groups:        rec.Groups,
		ACR:           rec.ACR,
		AMR:           rec.AMR,
		AuthTime:      rec.AuthTime,
		Parent:        "login:" + rec.LoginID,
		CreatedAt:     now,
		RefreshedAt:   now,
		ExpiresAt:     now.Add(h.Sessions.AbsoluteLifetime),
	}
	grant := func() error {
		attempt.session = &sessionGrant{session: session}
		attempt.code = &codeRedemption{signature: signature}
		ar.GrantScope(SessionScope)
		ar.GrantAudience(h.Issuer)
		return nil
	}
	// RFC 6749 §4.1.2: a code used before goes on to the redemption,
	// which refuses it and revokes the session of the first redemption
	// in its transaction.
	if rec.UsedAt != nil {
		return grant()
	}

	if !now.Before(rec.ExpiresAt) {
		return oauth.New("invalid_grant", "code_expired",
			"The code has expired; codes are valid for a minute, so redeem it at once or start a new authorization request.")
	}
	// RFC 6749 §4.1.3: redirect_uri is required when the authorization
	// request had one, which every request here has, and must be
	// identical to it.
	redirectURI := form.Get("redirect_uri")
	if redirectURI == "" {
		return oauth.InvalidRequest("redirect_uri_missing",
			"The redirect_uri parameter is missing: send the redirect_uri of the authorization request (RFC 6749 §4.1.3).")
	}
	if redirectURI != rec.RedirectURI {
		return oauth.New("invalid_grant", "redirect_uri_mismatch", fmt.Sprintf(
			"The redirect_uri %s differs from the one of the authorization request (RFC 6749 §4.1.3).", quote(redirectURI)))
	}
	if e := checkCodeVerifier(form.Get("code_verifier"), rec.CodeChallenge); e != nil {
		return e
	}
	// RFC 9449 §10: a code requested with dpop_jkt is redeemed only with
	// a proof of that key.
	if rec.DPoPJKT != "" && rec.DPoPJKT != proof.JKT {
		return oauth.New("invalid_grant", "code_key_mismatch",
			"The DPoP proof is signed by another key than the dpop_jkt of the authorization request; sign the proof with that key (RFC 9449 §10).")
	}

	trust, err := h.deviceTrust(ctx, proof.JKT, rec.Subject)
	if err != nil {
		return oauth.ServerError(fmt.Errorf("read device: %w", err))
	}
	attempt.DeviceTrust = trust
	if e := checkDevice(trust, &Action{Scope: SessionScope, DeviceTrust: DeviceTrustAny}); e != nil {
		return e
	}
	return grant()
}

// checkCodeVerifier checks the PKCE code_verifier against the S256
// code_challenge of the authorization request (RFC 7636 §4.6). Every
// failure is invalid_grant, as RFC 7636 §4.6 requires for a mismatch: a code
// without its verifier proves nothing.
func checkCodeVerifier(verifier, challenge string) *oauth.Error {
	if verifier == "" {
		return oauth.New("invalid_grant", "code_verifier_missing",
			"The code_verifier parameter is missing; send the PKCE verifier of the authorization request (RFC 7636 §4.5).")
	}
	// RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] /
	// "-" / "." / "_" / "~".
	if !ValidCodeVerifier(verifier) {
		return oauth.New("invalid_grant", "code_verifier_syntax", fmt.Sprintf(
			"The code_verifier is %d characters long or has characters outside A-Z, a-z, 0-9 and -._~; it must be 43 to 128 of them (RFC 7636 §4.1).",
			len(verifier)))
	}
	sum := sha256.Sum256([]byte(verifier))
	computed := base64.RawURLEncoding.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(computed), []byte(challenge)) != 1 {
		return oauth.New("invalid_grant", "code_verifier_mismatch",
			"The code_verifier does not match the code_challenge of the authorization request (RFC 7636 §4.6).")
	}
	return nil
}

// ValidCodeVerifier reports whether v has the syntax of RFC 7636 §4.1.
func ValidCodeVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		b := v[i]
		switch {
		case b >= 'A' && b <= 'Z', b >= 'a' && b <= 'z', b >= '0' && b <= '9', b == '-', b == '.', b == '_', b == '~':
		default:
			return false
		}
	}
	return true
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler:
// it redeems the code and stores the new session with its first tokens
// and the audit record in one transaction, then writes the response.
func (c *CodeHandler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !c.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	h := c.h
	attempt := attemptFrom(ctx)
	if attempt.session == nil || attempt.code == nil {
		return oauth.ServerError(errors.New("code redemption reached the response without a decision"))
	}

	now := h.Now()
	tokens, err := h.issueSessionTokens(ar, attempt, attempt.session, now)
	if err != nil {
		return oauth.ServerError(err)
	}
	tokens.write.Session = attempt.session.session
	result, err := c.codes.RedeemAuthorizationCode(ctx, attempt.code.signature, now, tokens.write)
	if err != nil {
		return oauth.ServerError(fmt.Errorf("redeem authorization code: %w", err))
	}
	attempt.recorded = true

	switch result.Outcome {
	case storage.RedeemReplayed:
		return errReplay
	case storage.RedeemReused:
		h.Logger.WarnContext(ctx, "authorization code redeemed twice, so its session was revoked",
			"request_id", attempt.RequestID, "client_id", attempt.ClientID, "tokens_ended", result.Revoked)
		// RFC 6749 §4.1.2: a code used more than once is refused, and
		// the tokens issued from it are revoked.
		return oauth.New("invalid_grant", "code_reuse",
			"The code was already redeemed, so the session issued from it was revoked (RFC 6749 §4.1.2); start a new authorization request.")
	case storage.RedeemInactive:
		return oauth.New("invalid_grant", "code_inactive",
			"The code has expired; start a new authorization request.")
	}
	writeSessionResponse(resp, tokens)
	return nil
}
