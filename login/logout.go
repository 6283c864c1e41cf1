package login

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// EndSessionURL returns the URL of the corporate IdP's
// end_session_endpoint (OpenID Connect RP-Initiated Logout 1.0 §2) for
// the browser to open after a session of a browser login ended, or ""
// when the IdP's metadata has no end_session_endpoint. The IdP sends the
// browser back to the logout page of this server with a state that is
// kept for the length of a sign-in.
func (h *Handler) EndSessionURL(ctx context.Context, clientID string) (string, error) {
	_, endpoint, err := h.provider(ctx)
	if err != nil {
		return "", err
	}
	if endpoint == "" {
		return "", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	state := randomToken()
	err = h.Store.PutPendingRequest(ctx, storage.PendingRequest{
		ID: handleID(state), Kind: kindLogout, ClientID: clientID, Data: []byte("{}"),
		ExpiresAt: h.Now().Add(loginLifetime),
	})
	if err != nil {
		return "", err
	}
	// RP-Initiated Logout 1.0 §2: client_id replaces id_token_hint,
	// since Sotto keeps no ID token of the IdP, and
	// post_logout_redirect_uri must be registered at the IdP.
	q := u.Query()
	q.Set("client_id", h.Login.ClientID)
	q.Set("post_logout_redirect_uri", h.Issuer+PathLogoutDone)
	q.Set("state", state)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// handleLogoutDone serves the post_logout_redirect_uri: the IdP sends
// the browser here after its logout, with the state of EndSessionURL
// (RP-Initiated Logout 1.0 §3). It clears any sign-in cookie.
func (h *Handler) handleLogoutDone(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	_, err := h.Store.TakePendingRequest(r.Context(), kindLogout, handleID(state), h.Now())
	if errors.Is(err, storage.ErrNotFound) || state == "" {
		h.showError(w, r, http.StatusBadRequest, oauth.InvalidRequest("logout_state",
			"This logout was not started by this server or has expired; sign out again from the app."))
		return
	}
	if err != nil {
		h.serverError(w, r, err)
		return
	}
	h.clearLoginCookie(w)
	h.render(w, http.StatusOK, h.pages.logout, pageData{Title: "Signed out", Assets: h.base + PathAssets})
}
