package login

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// identity is the user as the corporate IdP's ID token names them.
type identity struct {
	Subject  string     `json:"sub"` // <subject_prefix>|<corporate sub>
	Groups   []string   `json:"groups,omitempty"`
	ACR      string     `json:"acr,omitempty"`
	AMR      []string   `json:"amr,omitempty"`
	AuthTime *time.Time `json:"auth_time,omitempty"`
	// LoginID names the sign-in, as the parent of the session.
	LoginID string `json:"login_id"`
}

// maxSubjectLength bounds the corporate sub, as for subject tokens.
const maxSubjectLength = 255

// handleCallback serves the redirect back from the corporate IdP (OpenID
// Connect Core §3.1.2.5). It checks the state against the sign-in of this
// browser, redeems the IdP's code with the PKCE verifier and verifies the
// ID token and its nonce. Then it shows the consent page or issues the
// code.
func (h *Handler) handleCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	handle, st, ok := h.loadLogin(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	// RFC 6749 §10.12: the state binds the response to this browser's request.
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		h.showError(w, r, http.StatusBadRequest, oauth.InvalidRequest("idp_state_mismatch",
			"The answer of the corporate identity provider does not belong to this sign-in; start the sign-in again from the app."))
		return
	}
	if e := q.Get("error"); e != "" {
		h.Logger.InfoContext(ctx, "sign-in refused at the corporate IdP",
			"request_id", oauth.RequestID(ctx), "client_id", st.Request.ClientID, "idp_error", oauth.Quote(e))
		h.finish(w, r, handle, st, oauth.New("access_denied", "idp_refused",
			"The sign-in at the corporate identity provider was cancelled or refused ("+oauth.Quote(e)+")."))
		return
	}

	id, err := h.verifyLogin(r, st, q.Get("code"))
	if err != nil {
		h.Logger.WarnContext(ctx, "sign-in at the corporate IdP failed",
			"request_id", oauth.RequestID(ctx), "client_id", st.Request.ClientID, "error", err)
		h.finish(w, r, handle, st, oauth.New("access_denied", "idp_login_failed",
			"The sign-in at the corporate identity provider could not be verified; try again."))
		return
	}
	st.Identity = id

	client, ok := h.Client(st.Request.ClientID)
	if !ok {
		h.showError(w, r, http.StatusBadRequest, oauth.InvalidRequest("client_unknown", "The client is no longer registered."))
		return
	}
	if client.FirstParty {
		h.finish(w, r, handle, st, nil)
		return
	}
	st.CSRF = randomToken()
	if err := h.saveLogin(r, handle, st); err != nil {
		h.serverError(w, r, err)
		return
	}
	h.showConsent(w, r, client, st)
}

// verifyLogin redeems the IdP's code and verifies its ID token: the
// signature, iss, aud, exp (go-oidc, OpenID Connect Core §3.1.3.7) and
// the nonce (§3.1.3.7 step 11), then maps its claims to the identity.
func (h *Handler) verifyLogin(r *http.Request, st *loginState, code string) (*identity, error) {
	if code == "" {
		return nil, errors.New("the IdP's response has no code")
	}
	// go-oidc and x/oauth2 each take the HTTP client from the context.
	ctx := oidc.ClientContext(r.Context(), h.HTTPClient)
	ctx = context.WithValue(ctx, oauth2.HTTPClient, h.HTTPClient)
	p, _, err := h.provider(ctx)
	if err != nil {
		return nil, fmt.Errorf("discover the IdP: %w", err)
	}
	tok, err := h.oauth2Config(p).Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return nil, fmt.Errorf("redeem the IdP's code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the IdP's token response has no id_token")
	}
	idToken, err := p.Verifier(&oidc.Config{ClientID: h.Login.ClientID, Now: h.Now}).Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("verify the IdP's ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idToken.Nonce), []byte(st.Nonce)) != 1 {
		return nil, errors.New("the ID token's nonce differs from the sign-in's")
	}
	if err := checkSubject(idToken.Subject); err != nil {
		return nil, err
	}

	var claims map[string]any
	if err := idToken.Claims(&claims); err != nil {
		return nil, fmt.Errorf("decode the ID token's claims: %w", err)
	}
	id := &identity{
		Subject: h.SubjectPrefix + "|" + idToken.Subject,
		Groups:  stringList(claims[h.Login.GroupsClaim]),
		AMR:     stringList(claims["amr"]),
		LoginID: randomToken()[:22],
	}
	id.ACR, _ = claims["acr"].(string)
	if at, ok := claims["auth_time"].(float64); ok && at > 0 {
		t := time.Unix(int64(at), 0).UTC()
		id.AuthTime = &t
	}
	return id, nil
}

// checkSubject applies the rules of subject tokens to the corporate sub:
// present, at most 255 bytes, no control characters.
func checkSubject(sub string) error {
	if sub == "" || len(sub) > maxSubjectLength {
		return fmt.Errorf("the ID token's sub is empty or longer than %d bytes", maxSubjectLength)
	}
	for _, c := range sub {
		if unicode.IsControl(c) {
			return errors.New("the ID token's sub contains a control character")
		}
	}
	return nil
}

// stringList returns v as a list of strings when it is a string or an
// array of strings, and nil otherwise.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil
			}
			out = append(out, s)
		}
		return out
	}
	return nil
}

// handleConsent serves the consent form's answer. The form carries the
// CSRF token of the sign-in, compared in constant time with the stored
// one, and the sign-in is deleted whatever the answer, so a form is
// answered once.
func (h *Handler) handleConsent(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.showError(w, r, http.StatusMethodNotAllowed, oauth.InvalidRequest("method", "The consent form is sent by POST."))
		return
	}
	handle, st, ok := h.loadLogin(w, r)
	if !ok {
		return
	}
	if err := r.ParseForm(); err != nil {
		h.showError(w, r, http.StatusBadRequest, oauth.InvalidRequest("form", "The consent form could not be read."))
		return
	}
	if st.Identity == nil || st.CSRF == "" ||
		subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf_token")), []byte(st.CSRF)) != 1 {
		h.showError(w, r, http.StatusForbidden, oauth.InvalidRequest("csrf",
			"The consent form is not the one this server showed for this sign-in; start the sign-in again from the app."))
		return
	}
	if r.PostForm.Get("decision") != "allow" {
		h.finish(w, r, handle, st, oauth.New("access_denied", "consent_refused",
			"The user did not allow the client to act for them."))
		return
	}
	h.finish(w, r, handle, st, nil)
}

// finish ends a sign-in: it deletes its state, clears the cookie and
// redirects to the client with a new code, or with refusal when it is
// not nil (RFC 6749 §4.1.2, §4.1.2.1). Both outcomes are audited.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, handle string, st *loginState, refusal *oauth.Error) {
	ctx := r.Context()
	if _, err := h.Store.TakePendingRequest(ctx, kindLogin, handleID(handle), h.Now()); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			h.showError(w, r, http.StatusBadRequest, oauth.InvalidRequest("login_used",
				"This sign-in was already completed; start a new one from the app."))
			return
		}
		h.serverError(w, r, err)
		return
	}
	h.clearLoginCookie(w)

	now := h.Now().UTC()
	rec := audit.Record{
		Time:          now,
		RequestID:     oauth.RequestID(ctx),
		Event:         audit.EventAuthorization,
		ClientID:      st.Request.ClientID,
		SubjectIssuer: h.Login.Issuer,
		DeviceJKT:     st.Request.DPoPJKT,
		Action:        sessionScope,
		Audience:      h.Issuer,
	}
	if st.Identity != nil {
		rec.Subject = st.Identity.Subject
	}
	if refusal != nil {
		rec.Decision, rec.Reason, rec.Detail = audit.DecisionRefused, refusal.Reason, refusal.Description
		if err := h.Store.AppendAudit(ctx, rec); err != nil {
			h.Logger.ErrorContext(ctx, "failed to write the audit record of a refused authorization",
				"request_id", oauth.RequestID(ctx), "client_id", st.Request.ClientID, "error", err)
		}
		http.Redirect(w, r, h.errorRedirect(&st.Request, refusal), http.StatusSeeOther)
		return
	}

	code := "sotto_ac_" + randomToken()
	id := st.Identity
	rec.Decision = audit.DecisionIssued
	rec.Detail = "An authorization code was issued after sign-in at the corporate identity provider."
	err := h.Store.CreateAuthorizationCode(ctx, storage.AuthorizationCode{
		Signature:     exchange.TokenSignature(code),
		ClientID:      st.Request.ClientID,
		RedirectURI:   st.Request.RedirectURI,
		CodeChallenge: st.Request.CodeChallenge,
		DPoPJKT:       st.Request.DPoPJKT,
		Subject:       id.Subject,
		SubjectIssuer: h.Login.Issuer,
		Groups:        id.Groups,
		ACR:           id.ACR,
		AMR:           id.AMR,
		AuthTime:      id.AuthTime,
		LoginID:       id.LoginID,
		IssuedAt:      now,
		ExpiresAt:     now.Add(codeLifetime),
	}, rec)
	if err != nil {
		h.serverError(w, r, err)
		return
	}
	h.Logger.InfoContext(ctx, "authorization code issued",
		"request_id", oauth.RequestID(ctx), "client_id", st.Request.ClientID, "login_id", id.LoginID)
	http.Redirect(w, r, h.redirectURL(&st.Request, url.Values{"code": {code}}), http.StatusSeeOther)
}

// consentActions returns the catalog actions a session of the user could
// be exchanged for: those without groups and those that share a group
// with the user.
func (h *Handler) consentActions(id *identity) []Action {
	var out []Action
	for _, a := range h.Actions() {
		if len(a.Groups) == 0 || slices.ContainsFunc(a.Groups, func(g string) bool { return slices.Contains(id.Groups, g) }) {
			out = append(out, a)
		}
	}
	return out
}

// loadLogin returns the sign-in of the login cookie, or shows the error
// page and returns false.
func (h *Handler) loadLogin(w http.ResponseWriter, r *http.Request) (string, *loginState, bool) {
	c, err := r.Cookie(h.cookieName())
	if err != nil || c.Value == "" {
		h.showError(w, r, http.StatusBadRequest, oauth.InvalidRequest("login_cookie_missing",
			"This browser has no sign-in in progress (its cookie is missing or expired); start the sign-in again from the app."))
		return "", nil, false
	}
	p, err := h.Store.PendingRequest(r.Context(), kindLogin, handleID(c.Value), h.Now())
	if errors.Is(err, storage.ErrNotFound) {
		h.showError(w, r, http.StatusBadRequest, oauth.InvalidRequest("login_unknown",
			"The sign-in expired or was already completed; start the sign-in again from the app."))
		return "", nil, false
	}
	if err != nil {
		h.serverError(w, r, err)
		return "", nil, false
	}
	var st loginState
	if err := json.Unmarshal(p.Data, &st); err != nil {
		h.serverError(w, r, fmt.Errorf("decode sign-in state: %w", err))
		return "", nil, false
	}
	return c.Value, &st, true
}

// cookieName returns the name of the login cookie. Over https it has the
// __Host- prefix, which makes browsers keep it Secure, host-only and on
// path / (RFC 6265bis §4.1.3.2).
func (h *Handler) cookieName() string {
	if h.secure {
		return "__Host-sotto_login"
	}
	return "sotto_login"
}

// setLoginCookie sets the login cookie. SameSite=Lax, since the IdP's
// redirect back is a cross-site top-level navigation that must carry it.
func (h *Handler) setLoginCookie(w http.ResponseWriter, handle string) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cookieName(), Value: handle, Path: "/", MaxAge: int(loginLifetime.Seconds()),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (h *Handler) clearLoginCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cookieName(), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
}
