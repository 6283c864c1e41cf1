package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/internal/oauth"
)

// GrantTypeClientCredentials is the grant of RFC 6749 §4.4, which admin
// clients use to obtain admin access tokens.
const GrantTypeClientCredentials = "client_credentials"

// AdminAudience returns the aud of admin access tokens: the issuer
// followed by /admin. Action tokens never carry it, so an action token
// cannot call the admin API and an admin token is refused by connectors.
func (s *Server) AdminAudience() string { return s.cfg.Issuer + "/admin" }

// AdminToken is an issued admin access token.
type AdminToken struct {
	AccessToken string
	Scopes      []string
	ExpiresIn   time.Duration
	ClientID    string
}

// adminClaims are the claims of an admin access token (RFC 9068 §2.2).
type adminClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	ID       string `json:"jti"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// handleClientCredentials serves the client_credentials grant (RFC 6749
// §4.4) of the token endpoint. It issues admin access tokens only.
func (s *Server) handleClientCredentials(w http.ResponseWriter, r *http.Request, form url.Values) {
	ctx := r.Context()
	fc, err := s.provider.AuthenticateClient(ctx, r, form)
	if err != nil {
		s.refuse(w, r, nil, err)
		return
	}
	client := fc.(*Client)
	tok, err := s.issueAdminToken(ctx, client, form.Get("scope"))
	if err != nil {
		e := oauth.From(err)
		s.logger.InfoContext(ctx, "admin token refused", "request_id", oauth.RequestID(ctx),
			"client_id", client.ID, "error", e.Code, "reason", e.Reason)
		s.writeError(w, r, e)
		return
	}
	// RFC 6749 §5.1: the answer is not cached; §4.4.3: no refresh token.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok.AccessToken,
		"token_type":   "Bearer",
		"expires_in":   int64(tok.ExpiresIn / time.Second),
		"scope":        strings.Join(tok.Scopes, " "),
	})
}

// IssueAdminToken authenticates clientID with secret, as the token
// endpoint does for client_secret_post, and issues an admin token for
// scope (all of the client's admin scopes when empty). The console signs
// administrators in with it.
func (s *Server) IssueAdminToken(ctx context.Context, clientID, secret, scope string) (*AdminToken, error) {
	form := url.Values{"client_id": {clientID}, "client_secret": {secret}}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.Issuer+PathToken, nil)
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	fc, err := s.provider.AuthenticateClient(ctx, r, form)
	if err != nil {
		return nil, oauth.From(err)
	}
	return s.issueAdminToken(ctx, fc.(*Client), scope)
}

func (s *Server) issueAdminToken(ctx context.Context, client *Client, scope string) (*AdminToken, error) {
	// RFC 6749 §4.4: the client credentials grant is for confidential
	// clients only.
	if client.Public {
		return nil, oauth.New("unauthorized_client", "grant_public_client",
			"A public client cannot use the client_credentials grant (RFC 6749 Section 4.4); use a confidential admin client.")
	}
	// RFC 6749 §5.2: unauthorized_client when the client may not use the
	// grant type, or was disabled.
	if !slices.Contains(client.GrantTypes, GrantTypeClientCredentials) {
		return nil, oauth.New("unauthorized_client", "grant_not_allowed",
			"The client is not registered for the client_credentials grant; add it to the client's grant_types.")
	}
	if client.Disabled() {
		return nil, oauth.New("unauthorized_client", "client_disabled",
			"The client was disabled by an administrator; ask another administrator to enable it again.")
	}

	// RFC 6749 §3.3: scope tokens are separated by single spaces; an
	// omitted scope means the client's default, here all its admin scopes.
	requested := strings.FieldsFunc(scope, func(r rune) bool { return r == ' ' })
	if len(client.AdminScopes) == 0 {
		return nil, oauth.New("invalid_scope", "no_admin_scopes",
			"The client has no admin_scopes, so there is nothing to issue; an administrator with sotto:clients can grant some.")
	}
	if len(requested) == 0 {
		requested = client.AdminScopes
	}
	for _, sc := range requested {
		if !slices.Contains(client.AdminScopes, sc) {
			return nil, oauth.New("invalid_scope", "admin_scope_not_allowed", fmt.Sprintf(
				"The scope %s is not among the client's admin scopes (%s).", quote(sc), strings.Join(client.AdminScopes, " ")))
		}
	}
	requested = slices.Compact(slices.Sorted(slices.Values(requested)))

	now := s.now()
	ttl := time.Duration(s.cfg.Admin.TokenTTL)
	claims := adminClaims{
		Issuer:   s.cfg.Issuer,
		Subject:  client.ID,
		Audience: s.AdminAudience(),
		Expiry:   now.Add(ttl).Unix(),
		IssuedAt: now.Unix(),
		ID:       uuid.Must(uuid.NewV7()).String(),
		ClientID: client.ID,
		Scope:    strings.Join(requested, " "),
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	token, err := s.keys.SignAccessToken(payload)
	if err != nil {
		return nil, oauth.ServerError(fmt.Errorf("sign admin token: %w", err))
	}
	if err := s.appendAudit(ctx, audit.Record{
		Time:           now.UTC(),
		RequestID:      oauth.RequestID(ctx),
		Event:          audit.EventAdminToken,
		ClientID:       client.ID,
		Subject:        client.ID,
		Audience:       claims.Audience,
		Decision:       audit.DecisionIssued,
		Detail:         "Admin token for " + claims.Scope + ".",
		TokenID:        claims.ID,
		TokenExpiresAt: time.Unix(claims.Expiry, 0).UTC(),
	}); err != nil {
		return nil, oauth.ServerError(err)
	}
	return &AdminToken{AccessToken: token, Scopes: requested, ExpiresIn: ttl, ClientID: client.ID}, nil
}

type auditAppender interface {
	AppendAudit(ctx context.Context, rec audit.Record) error
}

// appendAudit stores rec when the store can append audit records.
func (s *Server) appendAudit(ctx context.Context, rec audit.Record) error {
	a, ok := s.store.(auditAppender)
	if !ok {
		return errors.New("the store cannot append audit records")
	}
	return a.AppendAudit(ctx, rec)
}

// AdminPrincipal is the verified caller of the admin API.
type AdminPrincipal struct {
	ClientID  string
	Scopes    []string
	TokenID   string
	ExpiresAt time.Time
}

// HasScope reports whether the caller holds scope.
func (p *AdminPrincipal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// ErrAdminToken is wrapped by every error of VerifyAdminToken about the
// token itself (RFC 6750 §3.1 invalid_token).
var ErrAdminToken = errors.New("invalid admin token")

// VerifyAdminToken checks an admin access token as RFC 9068 §4 asks of a
// resource server: typ at+jwt, the signature against this server's keys
// with the configured algorithm only, iss, aud, exp and iat. It then
// reads the client again, so a client disabled or stripped of a scope
// after the token was issued loses that access at once.
func (s *Server) VerifyAdminToken(token string) (*AdminPrincipal, error) {
	alg := jose.SignatureAlgorithm(s.cfg.Tokens.SigningAlg)
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{alg})
	if err != nil {
		return nil, fmt.Errorf("%w: not a JWT signed with %s", ErrAdminToken, alg)
	}
	if len(parsed.Headers) != 1 {
		return nil, fmt.Errorf("%w: not one signature", ErrAdminToken)
	}
	header := parsed.Headers[0]
	// RFC 9068 §4: the typ header must be at+jwt.
	if typ, _ := header.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") &&
		!strings.EqualFold(typ, "application/at+jwt") {
		return nil, fmt.Errorf("%w: typ is not at+jwt", ErrAdminToken)
	}
	set := s.keys.PublicKeys()
	keys := set.Key(header.KeyID)
	if len(keys) != 1 {
		return nil, fmt.Errorf("%w: signed with a key this server does not have", ErrAdminToken)
	}
	var claims adminClaims
	if err := parsed.Claims(keys[0].Key, &claims); err != nil {
		return nil, fmt.Errorf("%w: the signature does not verify", ErrAdminToken)
	}
	now := s.now()
	switch {
	case claims.Issuer != s.cfg.Issuer:
		return nil, fmt.Errorf("%w: issued by another issuer", ErrAdminToken)
	case claims.Audience != s.AdminAudience():
		return nil, fmt.Errorf("%w: not an admin token (aud is not %s)", ErrAdminToken, s.AdminAudience())
	case claims.Expiry <= now.Unix():
		return nil, fmt.Errorf("%w: expired", ErrAdminToken)
	case claims.IssuedAt > now.Add(time.Minute).Unix():
		return nil, fmt.Errorf("%w: issued in the future", ErrAdminToken)
	case claims.ClientID == "":
		return nil, fmt.Errorf("%w: no client_id", ErrAdminToken)
	}
	client, ok := s.clients.lookup(claims.ClientID)
	if !ok || client.Disabled() || client.Public {
		return nil, fmt.Errorf("%w: the client is unknown or disabled", ErrAdminToken)
	}
	var scopes []string
	for _, sc := range strings.Fields(claims.Scope) {
		if slices.Contains(client.AdminScopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return &AdminPrincipal{
		ClientID: claims.ClientID, Scopes: scopes, TokenID: claims.ID, ExpiresAt: time.Unix(claims.Expiry, 0).UTC(),
	}, nil
}
