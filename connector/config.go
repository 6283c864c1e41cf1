package connector

import (
	"log/slog"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultAlgorithms are the signature algorithms accepted for access
// tokens and DPoP proofs when Config.Algorithms is empty. All are
// asymmetric, as RFC 8725, Section 3.1 and RFC 9449, Section 4.2 require.
var DefaultAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256,
}

const (
	defaultLeeway      = 10 * time.Second
	defaultProofWindow = 60 * time.Second
	defaultHTTPTimeout = 10 * time.Second
	defaultCacheTTL    = 5 * time.Second

	// keySetMinInterval limits refetches of the JWKS triggered by an
	// unknown kid, so tokens with invented kids cannot flood the issuer.
	keySetMinInterval = time.Minute

	// keySetMaxAge is how long a fetched JWKS is used before the next
	// lookup fetches it again, so a key the issuer removed stops being
	// trusted within this time.
	keySetMaxAge = 5 * time.Minute
)

// Config configures a [Validator]. Issuer, Audience and PublicURL are
// required.
type Config struct {
	// Issuer is the issuer identifier of the Sotto server, such as
	// "https://sotto.corp.example". Its metadata is read from the
	// RFC 8414 well-known URI of this issuer.
	Issuer string

	// Audience is this connector's identifier in the scope catalog, such
	// as "https://itsm.corp.example". A token is accepted only when its
	// aud claim contains it (RFC 9068, Section 4). It need not be a URL
	// the connector is reachable at.
	Audience string

	// PublicURL is the base URL clients use to reach this connector, such
	// as "https://itsm-api.corp.example". The expected htu of a DPoP proof
	// is PublicURL followed by the request path (RFC 9449, Section 4.3),
	// so behind a proxy it is the proxy's URL, never the listen address.
	PublicURL string

	// Algorithms is the allowlist of signature algorithms for tokens and
	// proofs. Nil or empty means DefaultAlgorithms. New rejects a
	// symmetric algorithm or "none".
	Algorithms []jose.SignatureAlgorithm

	// Leeway is the clock skew allowed for exp, nbf, iat and auth_time.
	// Zero means 10 seconds, and a negative value means none.
	Leeway time.Duration

	// ProofWindow is the maximum distance between a proof's iat and the
	// current time, in either direction. Zero means 60 seconds.
	ProofWindow time.Duration

	// HTTPClient fetches metadata and keys and calls the introspection
	// endpoint. Nil means a client with a 10-second timeout.
	HTTPClient *http.Client

	// ReplayCache records the jti of every accepted proof. Nil means an
	// in-memory cache, which is enough for one replica; several replicas
	// behind one URL need a shared cache (RFC 9449, Section 11.1).
	ReplayCache ReplayCache

	// Nonces, when set, makes every proof carry a nonce that it issued
	// (RFC 9449, Section 9).
	Nonces NonceSource

	// Introspection enables Requirement.Introspect. When it is nil, a
	// route that sets Introspect fails every request with 503, because
	// the connector cannot make the check the route demands.
	Introspection *IntrospectionConfig

	// Logger receives the connector's own failures, never a token or
	// proof. Nil means slog.Default.
	Logger *slog.Logger

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// IntrospectionConfig is the client registration the connector uses at
// the issuer's introspection endpoint (RFC 7662, Section 2.1).
type IntrospectionConfig struct {
	// ClientID and ClientSecret authenticate the connector with
	// client_secret_basic (RFC 6749, Section 2.3.1).
	ClientID     string
	ClientSecret string

	// Endpoint overrides the introspection_endpoint of the metadata.
	Endpoint string

	// CacheTTL is how long a response is reused for the same token. Zero
	// means 5 seconds, and a negative value disables the cache. Errors
	// are never cached.
	CacheTTL time.Duration
}
