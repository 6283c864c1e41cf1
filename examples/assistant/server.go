package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Token exchange identifiers (RFC 8693, Section 3).
const (
	tokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
	idTokenType        = "urn:ietf:params:oauth:token-type:id_token"
	accessTokenType    = "urn:ietf:params:oauth:token-type:access_token"
)

// maxResponseBytes bounds every response body the assistant reads.
const maxResponseBytes = 1 << 20

// metadata is the part of the RFC 8414 authorization server metadata that
// the assistant uses.
type metadata struct {
	Issuer                string   `json:"issuer"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	IntrospectionEndpoint string   `json:"introspection_endpoint"`
	RevocationEndpoint    string   `json:"revocation_endpoint"`
	DPoPAlgorithms        []string `json:"dpop_signing_alg_values_supported"`
}

// tokenResponse is a successful token exchange response (RFC 8693, Section 2.2.1).
type tokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope"`
	// RefreshToken comes only with a session (scope sotto:session).
	RefreshToken string `json:"refresh_token"`
}

// oauthError is an error response of RFC 6749, Section 5.2, with its HTTP status.
type oauthError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
	// ACRValues and MaxAge come with insufficient_user_authentication
	// (RFC 9470, Section 3): what step-up would satisfy the request.
	ACRValues string `json:"acr_values"`
	MaxAge    int64  `json:"max_age"`
}

func (e *oauthError) Error() string {
	msg := fmt.Sprintf("HTTP %d: %s", e.Status, e.Code)
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.ACRValues != "" {
		msg += fmt.Sprintf(" (acr_values %s, max_age %d s)", e.ACRValues, e.MaxAge)
	}
	return msg
}

// actionClaims are the claims of an RFC 9068 access token that the
// assistant checks and prints.
type actionClaims struct {
	jwt.Claims
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	Confirm  struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

// client talks to one Sotto server over HTTP.
type client struct {
	http        *http.Client
	issuer      string
	allowRemote bool
	meta        metadata
}

// errUnreachable marks a failure to connect, so main can tell the user how
// to start the server.
var errUnreachable = errors.New("server not reachable")

// checkLoopback returns an error unless rawURL is an http(s) URL whose host
// is localhost or a loopback address.
func checkLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("invalid URL %q: scheme must be http or https", rawURL)
	}

	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("URL %q is not a loopback address. Pass -allow-remote to permit it", rawURL)
}

// fetchMetadata reads the server metadata (RFC 8414, Section 3) and checks
// that its issuer is the one requested (Section 3.3) and that every
// endpoint the assistant calls is present.
func (c *client) fetchMetadata(ctx context.Context) error {
	metadataURL := strings.TrimSuffix(c.issuer, "/") + "/.well-known/oauth-authorization-server"
	if err := c.getJSON(ctx, metadataURL, &c.meta); err != nil {
		return err
	}

	if c.meta.Issuer != c.issuer {
		return fmt.Errorf("metadata issuer %q does not match %q", c.meta.Issuer, c.issuer)
	}
	endpoints := map[string]string{
		"token_endpoint":         c.meta.TokenEndpoint,
		"jwks_uri":               c.meta.JWKSURI,
		"introspection_endpoint": c.meta.IntrospectionEndpoint,
		"revocation_endpoint":    c.meta.RevocationEndpoint,
	}
	for name, endpoint := range endpoints {
		if endpoint == "" {
			return fmt.Errorf("metadata has no %s", name)
		}
		if err := c.checkTarget(endpoint); err != nil {
			return fmt.Errorf("metadata %s: %w", name, err)
		}
	}
	return nil
}

// exchange sends the RFC 8693 token exchange with a fresh DPoP proof. When
// the server demands a nonce (RFC 9449, Section 8), it retries once with it.
func (c *client) exchange(ctx context.Context, key *dpopKey, form url.Values) (*tokenResponse, int, error) {
	nonce := ""
	for attempt := 0; ; attempt++ {
		proof, err := key.proof(http.MethodPost, c.meta.TokenEndpoint, nonce, time.Now())
		if err != nil {
			return nil, 0, err
		}

		var token tokenResponse
		header := http.Header{"DPoP": {proof}}
		status, respHeader, err := c.postForm(ctx, c.meta.TokenEndpoint, form, header, "", &token)

		var oerr *oauthError
		if errors.As(err, &oerr) && oerr.Code == "use_dpop_nonce" && attempt == 0 {
			nonce = respHeader.Get("DPoP-Nonce")
			if nonce != "" {
				continue
			}
		}
		if err != nil {
			return nil, status, err
		}
		return &token, status, nil
	}
}

// verifyActionToken checks the action token's signature against the
// server's JWKS and its RFC 9068 header and claims, and that it is bound
// to thumbprint (RFC 9449, Section 6.1). It returns the checked claims and
// every claim of the token.
func (c *client) verifyActionToken(ctx context.Context, raw, audience, thumbprint string) (
	*actionClaims, map[string]any, error) {
	var keys jose.JSONWebKeySet
	if err := c.getJSON(ctx, c.meta.JWKSURI, &keys); err != nil {
		return nil, nil, fmt.Errorf("fetch JWKS: %w", err)
	}

	algorithms := []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256}
	token, err := jwt.ParseSigned(raw, algorithms)
	if err != nil {
		return nil, nil, fmt.Errorf("parse action token: %w", err)
	}

	// RFC 9068, Section 4: the "typ" header is "at+jwt" or "application/at+jwt".
	header := token.Headers[0]
	typ, _ := header.ExtraHeaders[jose.HeaderType].(string)
	if typ != "at+jwt" && typ != "application/at+jwt" {
		return nil, nil, fmt.Errorf("action token typ is %q, expected at+jwt", typ)
	}
	matching := keys.Key(header.KeyID)
	if len(matching) == 0 {
		return nil, nil, fmt.Errorf("no key with kid %q in the JWKS", header.KeyID)
	}

	var claims actionClaims
	var all map[string]any
	if err := token.Claims(matching[0].Public(), &claims, &all); err != nil {
		return nil, nil, fmt.Errorf("verify action token signature: %w", err)
	}
	expected := jwt.Expected{Issuer: c.meta.Issuer, AnyAudience: jwt.Audience{audience}}
	if err := claims.ValidateWithLeeway(expected.WithTime(time.Now()), 0); err != nil {
		return nil, nil, fmt.Errorf("validate action token claims: %w", err)
	}
	if claims.Expiry == nil {
		return nil, nil, errors.New("action token has no exp")
	}
	if claims.Confirm.JKT != thumbprint {
		return nil, nil, fmt.Errorf("action token cnf.jkt %q does not match the DPoP key %q",
			claims.Confirm.JKT, thumbprint)
	}
	return &claims, all, nil
}

// introspect sends an introspection request for token (RFC 7662, Section 2)
// as the connector, and returns the response as a JSON object.
func (c *client) introspect(ctx context.Context, token, connectorID, secret string) (map[string]any, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	auth := url.QueryEscape(connectorID) + ":" + url.QueryEscape(secret)

	var result map[string]any
	_, _, err := c.postForm(ctx, c.meta.IntrospectionEndpoint, form, nil, auth, &result)
	if err != nil {
		return nil, err
	}
	if _, ok := result["active"].(bool); !ok {
		return nil, errors.New("introspection response has no boolean \"active\"")
	}
	return result, nil
}

// revoke revokes token as the public client clientID (RFC 7009, Section 2.1).
func (c *client) revoke(ctx context.Context, token, clientID string) (int, error) {
	form := url.Values{
		"token":           {token},
		"token_type_hint": {"access_token"},
		"client_id":       {clientID},
	}
	status, _, err := c.postForm(ctx, c.meta.RevocationEndpoint, form, nil, "", nil)
	return status, err
}

func (c *client) checkTarget(rawURL string) error {
	if c.allowRemote {
		return nil
	}
	return checkLoopback(rawURL)
}

func (c *client) getJSON(ctx context.Context, target string, dest any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	_, _, err = c.do(req, dest)
	return err
}

// postForm sends form to target. basic, when set, is the "id:secret" pair
// of HTTP Basic authentication (RFC 6749, Section 2.3.1).
func (c *client) postForm(ctx context.Context, target string, form url.Values, header http.Header,
	basic string, dest any) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	for name, values := range header {
		req.Header[name] = values
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if id, secret, ok := strings.Cut(basic, ":"); ok {
		req.SetBasicAuth(id, secret)
	}
	return c.do(req, dest)
}

// do sends req and decodes a 200 response into dest (when not nil). Any
// other status becomes an *oauthError.
func (c *client) do(req *http.Request, dest any) (int, http.Header, error) {
	if err := c.checkTarget(req.URL.String()); err != nil {
		return 0, nil, err
	}

	resp, err := c.http.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return 0, nil, fmt.Errorf("%w at %s", errUnreachable, c.issuer)
		}
		return 0, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, resp.Header, fmt.Errorf("read response of %s: %w", req.URL, err)
	}

	if resp.StatusCode != http.StatusOK {
		oerr := &oauthError{Status: resp.StatusCode}
		if json.Unmarshal(body, oerr) != nil || oerr.Code == "" {
			oerr.Code = http.StatusText(resp.StatusCode)
		}
		return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: %w", req.Method, req.URL, oerr)
	}
	if dest != nil {
		if err := json.Unmarshal(body, dest); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("decode response of %s: %w", req.URL, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}
