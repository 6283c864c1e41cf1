package login

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// Kinds of pending requests.
const (
	kindPAR    = "par"
	kindLogin  = "login"
	kindLogout = "logout"
)

// requestURIPrefix starts every request_uri (RFC 9126 §2.2).
const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// loginState is the server-side state of one sign-in, from the
// authorization request to the code.
type loginState struct {
	Request authRequest `json:"request"`
	// State, Nonce and Verifier are sent to the IdP: the state of RFC
	// 6749 §10.12, the nonce of OpenID Connect Core §3.1.2.1 and the
	// PKCE verifier of RFC 7636 §4.1.
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	// Identity is set once the IdP's ID token is verified.
	Identity *identity `json:"identity,omitempty"`
	// CSRF is the token of the consent form.
	CSRF string `json:"csrf,omitempty"`
}

// handleAuthorize serves the authorization endpoint (RFC 6749 §3.1),
// by GET or by POST of a form.
func (h *Handler) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		h.showError(w, r, http.StatusMethodNotAllowed, oauth.InvalidRequest("method",
			"The authorization endpoint accepts GET and POST only."))
		return
	}
	if err := r.ParseForm(); err != nil {
		h.showError(w, r, http.StatusBadRequest, oauth.InvalidRequest("form",
			"The request parameters could not be read."))
		return
	}
	params := r.Form

	// RFC 9126 §4: with a request_uri, the parameters are the pushed
	// ones, and only client_id is sent beside it.
	if requestURI := params.Get("request_uri"); requestURI != "" {
		pushed, rerr := h.takePushed(r, requestURI, params.Get("client_id"))
		if rerr != nil {
			h.showError(w, r, http.StatusBadRequest, rerr.Error)
			return
		}
		params = pushed
	}

	req, _, rerr := h.parseRequest(params)
	if rerr != nil {
		h.refuse(w, r, rerr)
		return
	}
	h.startLogin(w, r, req)
}

// refuse responds to a rejected authorization request with a redirect with the
// error when the redirect URI is trusted, the error page otherwise.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, rerr *requestError) {
	h.Logger.InfoContext(r.Context(), "authorization request refused",
		"request_id", oauth.RequestID(r.Context()), "error", rerr.Code, "reason", rerr.Reason,
		"redirected", rerr.redirect != nil)
	if rerr.redirect == nil {
		h.showError(w, r, http.StatusBadRequest, rerr.Error)
		return
	}
	http.Redirect(w, r, h.errorRedirect(rerr.redirect, rerr.Error), http.StatusSeeOther)
}

// startLogin keeps the request server-side and sends the browser to the
// corporate IdP (OpenID Connect Core §3.1.2.1) with a state, a nonce and
// a PKCE challenge of its own.
func (h *Handler) startLogin(w http.ResponseWriter, r *http.Request, req *authRequest) {
	ctx := r.Context()
	p, _, err := h.provider(ctx)
	if err != nil {
		h.Logger.ErrorContext(ctx, "corporate IdP discovery failed",
			"request_id", oauth.RequestID(ctx), "issuer", h.Login.Issuer, "error", err)
		e := oauth.New("temporarily_unavailable", "idp_unavailable",
			"The corporate identity provider cannot be reached right now; try again later.")
		http.Redirect(w, r, h.errorRedirect(req, e), http.StatusSeeOther)
		return
	}

	st := loginState{Request: *req, State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier()}
	handle := randomToken()
	if err := h.saveLogin(r, handle, &st); err != nil {
		h.serverError(w, r, err)
		return
	}
	h.setLoginCookie(w, handle)
	to := h.oauth2Config(p).AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce))
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// handlePAR serves the pushed authorization request endpoint (RFC 9126
// §2). The client authenticates as at the token endpoint, the
// parameters are checked as at the authorization endpoint, and errors
// are JSON (RFC 9126 §2.3).
func (h *Handler) handlePAR(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauth.Write(w, r, h.Logger, &oauth.Error{Code: "invalid_request", Reason: "method_not_post",
			Status: http.StatusMethodNotAllowed, Description: "The endpoint accepts POST only (RFC 9126 Section 2.1)."})
		return
	}
	if err := r.ParseForm(); err != nil || len(r.URL.RawQuery) > 0 {
		oauth.Write(w, r, h.Logger, oauth.InvalidRequest("body",
			"Send the parameters as an application/x-www-form-urlencoded body (RFC 9126 Section 2.1)."))
		return
	}
	form := r.PostForm
	clientID, err := h.AuthenticateClient(ctx, r, form)
	if err != nil {
		e := oauth.From(err)
		if e.Code == "invalid_client" {
			e.Status = http.StatusUnauthorized
		}
		oauth.Write(w, r, h.Logger, e)
		return
	}
	// RFC 9126 §2.1: request_uri must not be pushed.
	if form.Has("request_uri") {
		oauth.Write(w, r, h.Logger, oauth.InvalidRequest("request_uri_pushed",
			"The request_uri parameter cannot be pushed (RFC 9126 Section 2.1)."))
		return
	}
	if form.Get("client_id") != clientID {
		oauth.Write(w, r, h.Logger, oauth.InvalidRequest("client_id_mismatch",
			"The client_id parameter must name the authenticated client (RFC 9126 Section 2.1)."))
		return
	}
	if _, _, rerr := h.parseRequest(form); rerr != nil {
		oauth.Write(w, r, h.Logger, rerr.Error)
		return
	}

	data, err := json.Marshal(form)
	if err != nil {
		h.jsonServerError(w, r, err)
		return
	}
	handle := randomToken()
	err = h.Store.PutPendingRequest(ctx, storage.PendingRequest{
		ID: handleID(handle), Kind: kindPAR, ClientID: clientID, Data: data, ExpiresAt: h.Now().Add(parLifetime),
	})
	if err != nil {
		h.jsonServerError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"request_uri": requestURIPrefix + handle,
		"expires_in":  int(parLifetime.Seconds()),
	})
}

// takePushed returns the parameters pushed under requestURI and deletes
// them, so a request_uri is used once (RFC 9126 §4).
func (h *Handler) takePushed(r *http.Request, requestURI, clientID string) (url.Values, *requestError) {
	handle, ok := strings.CutPrefix(requestURI, requestURIPrefix)
	if !ok || handle == "" {
		return nil, pageError("request_uri_invalid", "The request_uri was not issued by this server (RFC 9126 Section 4).")
	}
	p, err := h.Store.TakePendingRequest(r.Context(), kindPAR, handleID(handle), h.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, pageError("request_uri_unknown",
			"The request_uri is unknown, expired or already used; push the authorization request again (RFC 9126 Section 4).")
	}
	if err != nil {
		return nil, &requestError{Error: oauth.ServerError(err)}
	}
	// RFC 9126 §4: the client_id must be the one that pushed the request.
	if clientID != p.ClientID {
		return nil, pageError("request_uri_client",
			"The client_id differs from the client that pushed the request_uri (RFC 9126 Section 4).")
	}
	var params url.Values
	if err := json.Unmarshal(p.Data, &params); err != nil {
		return nil, &requestError{Error: oauth.ServerError(fmt.Errorf("decode pushed request: %w", err))}
	}
	return params, nil
}

// saveLogin stores st under the handle the login cookie carries.
func (h *Handler) saveLogin(r *http.Request, handle string, st *loginState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return h.Store.PutPendingRequest(r.Context(), storage.PendingRequest{
		ID: handleID(handle), Kind: kindLogin, ClientID: st.Request.ClientID, Data: data,
		ExpiresAt: h.Now().Add(loginLifetime),
	})
}

// randomToken returns 32 random bytes in base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// handleID returns the key under which the state of a handle is stored:
// its hex SHA-256, so the database holds no usable handle.
func handleID(handle string) string {
	sum := sha256.Sum256([]byte(handle))
	return hex.EncodeToString(sum[:])
}
