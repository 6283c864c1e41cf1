package login

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/storage"
)

// Endpoint paths, relative to the issuer's path.
const (
	PathAuthorize  = "/oauth2/authorize"
	PathPAR        = "/oauth2/par"
	PathCallback   = "/login/callback"
	PathConsent    = "/login/consent"
	PathAssets     = "/login/assets/"
	PathLogoutDone = "/logout/done"
)

// Lifetimes of the state of one sign-in.
const (
	// codeLifetime is the lifetime of an authorization code. RFC 6749
	// §4.1.2 recommends at most ten minutes; a native client redeems its
	// code within seconds.
	codeLifetime = time.Minute
	// parLifetime is the expires_in of a request_uri (RFC 9126 §2.2).
	parLifetime = 90 * time.Second
	// loginLifetime bounds a sign-in at the IdP and the consent page.
	loginLifetime = 10 * time.Minute
)

// Client is a registered client, with the fields the authorization endpoint reads.
type Client struct {
	ID           string
	Name         string
	Public       bool
	FirstParty   bool
	RedirectURIs []string
	GrantTypes   []string
}

// Action is a catalog action as the consent page shows it.
type Action struct {
	Scope       string
	Description string
	Groups      []string
}

// Store is the storage of sign-ins and codes.
type Store interface {
	PutPendingRequest(ctx context.Context, p storage.PendingRequest) error
	PendingRequest(ctx context.Context, kind, id string, now time.Time) (*storage.PendingRequest, error)
	TakePendingRequest(ctx context.Context, kind, id string, now time.Time) (*storage.PendingRequest, error)
	CreateAuthorizationCode(ctx context.Context, c storage.AuthorizationCode, rec audit.Record) error
	AppendAudit(ctx context.Context, rec audit.Record) error
}

// Options configure a Handler. Every field but Logger, Now and
// HTTPClient is required.
type Options struct {
	// Issuer is Sotto's issuer.
	Issuer string
	// Login is the login section of the configuration.
	Login config.Login
	// SubjectPrefix forms the Sotto sub: <SubjectPrefix>|<corporate sub>.
	SubjectPrefix string
	// Client returns the registered client with the given client_id.
	Client func(id string) (Client, bool)
	// AuthenticateClient authenticates the client of a pushed
	// authorization request as the token endpoint does (RFC 9126 §2.1)
	// and returns its client_id.
	AuthenticateClient func(ctx context.Context, r *http.Request, form url.Values) (string, error)
	// Actions returns the live catalog's actions, listed on the consent
	// page.
	Actions func() []Action
	Store   Store
	// HTTPClient calls the corporate IdP.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// Handler serves the browser endpoints.
type Handler struct {
	Options
	base     string // the issuer's path
	secure   bool   // the issuer uses https, so cookies are Secure
	pages    *pages
	upstream upstream
}

// upstream is the corporate IdP, discovered on first use so the server
// starts while the IdP is down.
type upstream struct {
	mu       sync.Mutex
	provider *oidc.Provider
	// endSession is the end_session_endpoint of the IdP's metadata, or "".
	endSession string
}

// New returns a Handler.
func New(o Options) (*Handler, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	u, err := url.Parse(o.Issuer)
	if err != nil {
		return nil, err
	}
	p, err := newPages()
	if err != nil {
		return nil, err
	}
	return &Handler{
		Options: o,
		base:    strings.TrimSuffix(u.Path, "/"),
		secure:  u.Scheme == "https",
		pages:   p,
	}, nil
}

// Routes returns the handler of each path below the issuer's path.
func (h *Handler) Routes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		PathAuthorize:  h.handleAuthorize,
		PathPAR:        h.handlePAR,
		PathCallback:   h.handleCallback,
		PathConsent:    h.handleConsent,
		PathLogoutDone: h.handleLogoutDone,
	}
}

// Assets returns the handler of the static files of the pages.
func (h *Handler) Assets() http.Handler {
	return http.StripPrefix(h.base+PathAssets, h.pages.assets)
}

// provider returns the corporate IdP, reading its metadata (OpenID
// Connect Discovery 1.0 §4) on the first call that succeeds.
func (h *Handler) provider(ctx context.Context) (*oidc.Provider, string, error) {
	h.upstream.mu.Lock()
	defer h.upstream.mu.Unlock()
	if h.upstream.provider != nil {
		return h.upstream.provider, h.upstream.endSession, nil
	}
	ctx = oidc.ClientContext(ctx, h.HTTPClient)
	p, err := oidc.NewProvider(ctx, h.Login.Issuer)
	if err != nil {
		return nil, "", err
	}
	var md struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&md); err != nil {
		return nil, "", err
	}
	h.upstream.provider, h.upstream.endSession = p, md.EndSession
	h.Logger.InfoContext(ctx, "corporate IdP discovered", "issuer", h.Login.Issuer,
		"end_session_endpoint", md.EndSession != "")
	return p, md.EndSession, nil
}

// oauth2Config returns the relying party's client configuration at the
// IdP.
func (h *Handler) oauth2Config(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     h.Login.ClientID,
		ClientSecret: string(h.Login.ClientSecret),
		Endpoint:     p.Endpoint(),
		RedirectURL:  h.Issuer + PathCallback,
		Scopes:       h.Login.Scopes,
	}
}
