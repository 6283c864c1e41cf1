package login

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/internal/oauth"
)

// sessionScope is the one scope an authorization request may name: the
// code grant issues a Sotto session only.
const sessionScope = "sotto:session"

// authRequest is a validated authorization request (RFC 6749 §4.1.1).
type authRequest struct {
	ClientID      string `json:"client_id"`
	RedirectURI   string `json:"redirect_uri"`
	State         string `json:"state,omitempty"`
	CodeChallenge string `json:"code_challenge"`
	// DPoPJKT binds the code to a DPoP key (RFC 9449 §10).
	DPoPJKT string `json:"dpop_jkt,omitempty"`
}

// requestError is a refused authorization request. With redirect set it
// goes back to the client's redirect URI (RFC 6749 §4.1.2.1); without it
// the redirect URI cannot be trusted and the user sees an error page.
type requestError struct {
	*oauth.Error
	redirect *authRequest
}

// pageError returns an error that is shown on the error page.
func pageError(reason, description string) *requestError {
	return &requestError{Error: oauth.InvalidRequest(reason, description)}
}

// parseRequest checks the parameters of an authorization request. The
// client and redirect URI are checked first, since an error before they
// are known cannot be redirected (RFC 6749 §4.1.2.1).
func (h *Handler) parseRequest(params url.Values) (*authRequest, *Client, *requestError) {
	// RFC 6749 §3.1: a parameter is sent at most once.
	for _, name := range []string{"client_id", "redirect_uri"} {
		if len(params[name]) > 1 {
			return nil, nil, pageError("parameter_repeated", fmt.Sprintf(
				"The parameter %s is included %d times; send it once (RFC 6749 Section 3.1).", name, len(params[name])))
		}
	}
	clientID := params.Get("client_id")
	if clientID == "" {
		return nil, nil, pageError("client_id_missing", "The client_id parameter is missing (RFC 6749 Section 4.1.1).")
	}
	client, ok := h.Client(clientID)
	if !ok {
		return nil, nil, pageError("client_unknown", fmt.Sprintf("The client %s is not registered.", oauth.Quote(clientID)))
	}
	redirectURI := params.Get("redirect_uri")
	if redirectURI == "" {
		return nil, nil, pageError("redirect_uri_missing",
			"The redirect_uri parameter is missing; send one of the client's registered redirect URIs.")
	}
	if !matchRedirect(client, redirectURI) {
		return nil, nil, pageError("redirect_uri_unregistered", fmt.Sprintf(
			"The redirect_uri %s is not registered for the client %s (RFC 6749 Section 3.1.2.2).",
			oauth.Quote(redirectURI), oauth.Quote(clientID)))
	}

	req := &authRequest{ClientID: clientID, RedirectURI: redirectURI, State: params.Get("state")}
	fail := func(code, reason, description string) (*authRequest, *Client, *requestError) {
		return nil, &client, &requestError{Error: oauth.New(code, reason, description), redirect: req}
	}
	for name, values := range params {
		if len(values) > 1 {
			return fail("invalid_request", "parameter_repeated", fmt.Sprintf(
				"The parameter %s is included %d times; send each parameter once (RFC 6749 Section 3.1).",
				oauth.Quote(name), len(values)))
		}
	}
	if rt := params.Get("response_type"); rt != "code" {
		return fail("unsupported_response_type", "response_type_unsupported", fmt.Sprintf(
			"The response_type %s is not supported: use code (RFC 6749 Section 4.1.1).", oauth.Quote(rt)))
	}
	if !slices.Contains(client.GrantTypes, config.GrantTypeAuthorizationCode) {
		return fail("unauthorized_client", "grant_not_allowed",
			"The client is not registered for the authorization_code grant; add it to the client's grant_types.")
	}
	if scope := params.Get("scope"); scope != sessionScope {
		return fail("invalid_scope", "scope_not_session", fmt.Sprintf(
			"The scope %s is not offered here: request scope=%s, then exchange the session for actions.",
			oauth.Quote(scope), sessionScope))
	}
	// RFC 7636 §4.4.1 and RFC 9700 §2.1.1: PKCE with S256 is required of
	// every client, so a missing challenge, the plain method and a
	// missing method (which means plain, RFC 7636 §4.3) are refused.
	challenge := params.Get("code_challenge")
	method := params.Get("code_challenge_method")
	switch {
	case challenge == "":
		return fail("invalid_request", "code_challenge_missing",
			"The code_challenge parameter is missing: PKCE with S256 is required (RFC 7636 Section 4.3).")
	case method == "":
		return fail("invalid_request", "code_challenge_method_missing",
			"The code_challenge_method parameter is missing, which means plain: send code_challenge_method=S256 (RFC 7636 Section 4.3).")
	case method != "S256":
		return fail("invalid_request", "code_challenge_method_unsupported", fmt.Sprintf(
			"The code_challenge_method %s is not supported: use S256 (RFC 7636 Section 4.2).", oauth.Quote(method)))
	case !isSHA256Base64URL(challenge):
		return fail("invalid_request", "code_challenge_syntax",
			"The code_challenge is not the base64url of a SHA-256 hash, 43 characters without padding (RFC 7636 Section 4.2).")
	}
	req.CodeChallenge = challenge
	// RFC 9449 §10: dpop_jkt is the JWK SHA-256 thumbprint (RFC 7638) of
	// the key the code is bound to.
	if jkt := params.Get("dpop_jkt"); jkt != "" {
		if !isSHA256Base64URL(jkt) {
			return fail("invalid_request", "dpop_jkt_syntax",
				"The dpop_jkt is not a base64url JWK SHA-256 thumbprint, 43 characters without padding (RFC 9449 Section 10).")
		}
		req.DPoPJKT = jkt
	}
	// OpenID Connect Core §3.1.2.1: prompt=none requests no user
	// interaction, which a login at the corporate IdP needs.
	if params.Get("prompt") == "none" {
		return fail("login_required", "prompt_none",
			"Sotto keeps no sign-in of its own, so prompt=none cannot succeed; send the request without prompt=none.")
	}
	if params.Has("request") {
		return fail("request_not_supported", "request_object",
			"Request objects are not supported; send the parameters in the query or push them to the pushed_authorization_request_endpoint.")
	}
	return req, &client, nil
}

// matchRedirect reports whether uri is one of the client's registered
// redirect URIs. RFC 6749 §3.1.2.2 and RFC 9700 §4.1.3: the comparison is
// an exact string match. RFC 8252 §7.3: for a public native client the
// port of a loopback IP literal (127.0.0.1 or [::1]) may differ from the
// registered one, since the app opens a port at run time.
func matchRedirect(client Client, uri string) bool {
	if slices.Contains(client.RedirectURIs, uri) {
		return true
	}
	if !client.Public {
		return false
	}
	// RFC 6749 §3.1.2: a redirection endpoint URI must not include a
	// fragment, and "#" alone is one too. Only the port may differ from
	// the registration, so the path is compared as sent, not decoded.
	if strings.Contains(uri, "#") {
		return false
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || !config.IsLoopbackIP(u.Hostname()) {
		return false
	}
	for _, registered := range client.RedirectURIs {
		r, err := url.Parse(registered)
		if err != nil || r.Scheme != "http" || r.Hostname() != u.Hostname() {
			continue
		}
		if r.EscapedPath() == u.EscapedPath() && r.RawQuery == u.RawQuery && r.User == nil && u.User == nil {
			return true
		}
	}
	return false
}

// isSHA256Base64URL reports whether s is the unpadded base64url of 32
// bytes.
func isSHA256Base64URL(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == 32
}

// redirectURL returns the redirect URI with the response parameters
// added to its query (RFC 6749 §4.1.2), keeping the query it had. The
// iss parameter of RFC 9207 §2 names this server, so a client that
// talks to several servers can tell where the response came from.
func (h *Handler) redirectURL(req *authRequest, params url.Values) string {
	u, _ := url.Parse(req.RedirectURI) // parsed when the request was checked
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if req.State != "" {
		q.Set("state", req.State)
	}
	q.Set("iss", h.Issuer)
	u.RawQuery = q.Encode()
	return u.String()
}

// errorRedirect returns the redirect of an error response (RFC 6749
// §4.1.2.1).
func (h *Handler) errorRedirect(req *authRequest, e *oauth.Error) string {
	return h.redirectURL(req, url.Values{
		"error":             {e.Code},
		"error_description": {oauthDescription(e.Description)},
	})
}

// oauthDescription keeps the characters RFC 6749 §4.1.2.1 allows in
// error_description: %x20-21 / %x23-5B / %x5D-7E.
func oauthDescription(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
}
