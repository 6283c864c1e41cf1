package authz

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/devicebind"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/login"
	"github.com/sotto-auth/sotto/stepup"
	"github.com/sotto-auth/sotto/storage"
)

// Endpoint paths, relative to the issuer's path.
const (
	PathToken      = "/oauth2/token"
	PathIntrospect = "/oauth2/introspect"
	PathRevoke     = "/oauth2/revoke"
	PathJWKS       = "/oauth2/jwks"
	PathHealth     = "/healthz"
	PathDevices    = "/devices"
	PathLogout     = "/oauth2/logout"
	pathMetadata   = "/.well-known/oauth-authorization-server"
)

// Store is the storage the server needs.
type Store interface {
	exchange.Store
	stepup.Store
	exchange.SessionStore
	stepup.PasskeyStore
	KeyStore
	DeviceStore
	exchange.CodeStore
	login.Store
	AccessTokenByID(ctx context.Context, tokenID string) (*storage.AccessToken, error)
	RevokeAccessTokens(ctx context.Context, requestID string, at time.Time, rec audit.Record) (int64, error)
	RevokeSession(ctx context.Context, id string, at time.Time, rec audit.Record) (int64, error)
	Ping(ctx context.Context) error
}

// Server is the authorization server.
type Server struct {
	cfg      *config.Config
	store    Store
	keys     *Keyring
	provider *fosite.Fosite
	exchange *exchange.Handler
	refresh  *exchange.RefreshHandler
	clients  *clientStore
	// clientsRevision is the stored clients revision s.clients holds, or
	// 0 for the configured clients.
	clientsRevision atomic.Int64
	// refreshMu serializes Refresh, so an older read never replaces a
	// newer one.
	refreshMu sync.Mutex
	logger    *slog.Logger
	now       func() time.Time
	metadata  atomic.Pointer[[]byte]
	router    *mux.Router
	refusals  *rateLimitedLog
	nonces    *devicebind.Nonces
	attest    *exchange.AttestationVerifier
	subjects  *exchange.SubjectVerifier
	stepup    *stepup.Service
	webhook   *stepup.Webhook
	metrics   *metrics
	// login serves the browser endpoints; nil without a login section.
	login *login.Handler
}

// Options configure a Server beyond its configuration.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// HTTPClient fetches the JWKS of trusted issuers with a jwks_uri.
	HTTPClient *http.Client
	// WebhookClient posts push notifications. Nil means a client with a
	// 5s timeout.
	WebhookClient *http.Client
}

// New builds a server from a validated configuration, an opened and
// migrated store, and the loaded signing keys.
func New(ctx context.Context, cfg *config.Config, store Store, keys *Keyring, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{cfg: cfg, store: store, keys: keys, logger: o.Logger, now: o.Now}
	s.refusals = newRateLimitedLog(o.Logger, time.Second)

	clients, err := configuredClients(cfg)
	if err != nil {
		return nil, err
	}
	s.clients = newClientStore(clients)
	maxTTL := time.Duration(cfg.Tokens.MaxTTL)
	catalog := exchange.NewCatalog(cfg.Actions, maxTTL)
	s.metrics = newMetrics(catalog.Version)

	subjects, err := exchange.NewSubjectVerifier(trustedIssuers(cfg), exchange.SubjectOptions{
		Leeway:     time.Duration(cfg.Tokens.SubjectLeeway),
		Now:        o.Now,
		HTTPClient: o.HTTPClient,
		Logger:     o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("trusted issuers: %w", err)
	}

	s.subjects = subjects
	if s.nonces, err = devicebind.NewNonces(ctx, store, time.Duration(cfg.DPoP.NonceLifetime), o.Now); err != nil {
		return nil, err
	}
	if s.attest, err = exchange.NewAttestationVerifier(deviceAttesters(cfg), exchange.SubjectOptions{
		Leeway: time.Duration(cfg.Tokens.SubjectLeeway), Now: o.Now, HTTPClient: o.HTTPClient, Logger: o.Logger,
	}); err != nil {
		return nil, fmt.Errorf("device attesters: %w", err)
	}

	s.stepup, s.webhook = newStepUp(cfg, store, subjects, o)
	if err := enablePasskeys(ctx, cfg, store, s.stepup, o.Logger); err != nil {
		return nil, err
	}
	s.exchange = exchange.NewHandler(exchange.Options{
		Issuer:   cfg.Issuer,
		TokenURL: cfg.Issuer + PathToken,
		MaxTTL:   maxTTL,
		Catalog:  catalog,
		Subjects: subjects,
		DPoP:     &devicebind.Verifier{Window: time.Duration(cfg.DPoP.IATWindow), Now: o.Now},
		Nonces:   s.nonces,
		Devices:  store,
		Signer:   keys,
		Store:    store,
		Logger:   o.Logger,
		Now:      o.Now,

		StepUp:          s.stepup,
		StrongACRValues: strongACRValues(cfg),
		Sessions:        sessionPolicy(cfg),
		SessionStore:    store,
	})
	s.refresh = exchange.NewRefreshHandler(s.exchange)
	codes := exchange.NewCodeHandler(s.exchange, store)

	s.provider = fosite.NewOAuth2Provider(s.clients, &fosite.Config{
		TokenURL:                   cfg.Issuer + PathToken,
		AccessTokenIssuer:          cfg.Issuer,
		ClientSecretsHasher:        newSecretHasher(),
		TokenEndpointHandlers:      fosite.TokenEndpointHandlers{s.exchange, s.refresh, codes},
		SendDebugMessagesToClients: false,
	})
	if cfg.Login.Enabled() {
		if s.login, err = s.newLogin(o); err != nil {
			return nil, fmt.Errorf("login: %w", err)
		}
	}

	metadata, err := s.buildMetadata()
	if err != nil {
		return nil, err
	}
	s.metadata.Store(&metadata)
	s.router = s.routes()
	return s, nil
}

func trustedIssuers(cfg *config.Config) []exchange.TrustedIssuer {
	out := make([]exchange.TrustedIssuer, 0, len(cfg.TrustedIssuers))
	for _, ti := range cfg.TrustedIssuers {
		out = append(out, exchange.TrustedIssuer{
			Issuer:        ti.Issuer,
			Audience:      ti.Audience,
			GroupsClaim:   ti.GroupsClaim,
			SubjectPrefix: ti.SubjectPrefix,
			JWKSFile:      ti.JWKSFile,
			JWKSURI:       ti.JWKSURI,
			Algorithms:    signatureAlgorithms(ti.Algorithms),
		})
	}
	return out
}

// Catalog returns the scope catalog new exchanges are decided under.
func (s *Server) Catalog() *exchange.Catalog { return s.exchange.CurrentCatalog() }

// Handler returns the HTTP handler of every endpoint.
func (s *Server) Handler() http.Handler { return s.router }

func (s *Server) routes() *mux.Router {
	base := issuerPath(s.cfg.Issuer)
	r := mux.NewRouter()
	r.Use(s.requestContext)

	r.Handle(base+PathToken, http.HandlerFunc(s.handleToken))
	r.Handle(base+PathIntrospect, http.HandlerFunc(s.handleIntrospect))
	r.Handle(base+PathRevoke, http.HandlerFunc(s.handleRevoke))
	r.Handle(base+PathDevices, http.HandlerFunc(s.handleEnrol)).Methods(http.MethodPost)
	r.Handle(base+PathJWKS, http.HandlerFunc(s.handleJWKS)).Methods(http.MethodGet, http.MethodHead)
	s.stepUpRoutes(r, base)
	r.Handle(base+PathHealth, http.HandlerFunc(s.handleHealth)).Methods(http.MethodGet, http.MethodHead)
	r.Handle(base+PathReady, http.HandlerFunc(s.handleReady)).Methods(http.MethodGet, http.MethodHead)
	r.Handle(base+PathLogout, http.HandlerFunc(s.handleLogout))
	if s.login != nil {
		for path, h := range s.login.Routes() {
			r.Handle(base+path, h)
		}
		r.PathPrefix(base+login.PathAssets).Handler(s.login.Assets()).Methods(http.MethodGet, http.MethodHead)
	}
	// RFC 8414 §3: the well-known segment goes between the host and the
	// issuer's path.
	r.Handle(pathMetadata+base, http.HandlerFunc(s.handleMetadata)).Methods(http.MethodGet, http.MethodHead)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{
			"error": "not_found", "error_description": "No endpoint at this path; the metadata at " +
				pathMetadata + base + " lists the endpoints.",
		})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{
			"error": "invalid_request", "error_description": "This endpoint does not accept " + r.Method + ".",
		})
	})
	return r
}

// issuerPath returns the path of the issuer URL without a trailing slash.
func issuerPath(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.Path, "/")
}
