package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Requirement lists the conditions a route sets for an action token.
type Requirement struct {
	// Scope is the catalog action the token's scope claim must contain,
	// such as "ticket:create". Empty means any scope.
	Scope string

	// ACRValues, when set, lists the acr values the route accepts
	// (RFC 9470, Section 3).
	ACRValues []string

	// MaxAge, when positive, is the maximum time since the user
	// authenticated, measured from the token's auth_time (RFC 9470,
	// Section 3).
	MaxAge time.Duration

	// Introspect makes the connector ask the issuer whether the token is
	// still active (RFC 7662), so a revoked token is rejected before it
	// expires. It needs Config.Introspection.
	Introspect bool
}

// Validator checks action tokens and their DPoP proofs. It is safe for
// concurrent use.
type Validator struct {
	issuer      string
	audience    string
	publicURL   string
	algorithms  []jose.SignatureAlgorithm
	algNames    string
	leeway      time.Duration
	proofWindow time.Duration
	replay      ReplayCache
	nonces      NonceSource
	introspect  *introspector
	keys        *keySet
	logger      *slog.Logger
	now         func() time.Time
}

// New returns a Validator for cfg. It reads the issuer's metadata
// (RFC 8414) and then its JWKS, and fails when either cannot be read.
func New(ctx context.Context, cfg Config) (*Validator, error) {
	v := &Validator{
		issuer:      cfg.Issuer,
		audience:    cfg.Audience,
		algorithms:  cfg.Algorithms,
		leeway:      cfg.Leeway,
		proofWindow: cfg.ProofWindow,
		replay:      cfg.ReplayCache,
		nonces:      cfg.Nonces,
		logger:      cfg.Logger,
		now:         cfg.Now,
	}
	if err := v.applyDefaults(cfg); err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultHTTPTimeout}
	}

	md, err := fetchMetadata(ctx, client, cfg.Issuer)
	if err != nil {
		return nil, err
	}
	v.keys = &keySet{client: client, address: md.JWKSURI, now: v.now, logger: v.logger}
	v.keys.mu.Lock()
	err = v.keys.fetch(ctx)
	v.keys.mu.Unlock()
	if err != nil {
		return nil, err
	}

	if cfg.Introspection != nil {
		v.introspect, err = newIntrospector(client, md, *cfg.Introspection, v.now)
		if err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (v *Validator) applyDefaults(cfg Config) error {
	var problems []string
	if cfg.Issuer == "" {
		problems = append(problems, "Issuer is empty; set the issuer identifier of the Sotto server")
	}
	if cfg.Audience == "" {
		problems = append(problems, "Audience is empty; set this connector's audience from the scope catalog")
	}
	public, err := url.Parse(cfg.PublicURL)
	if err != nil || public.Host == "" || (public.Scheme != "http" && public.Scheme != "https") ||
		public.RawQuery != "" || public.Fragment != "" {
		problems = append(problems, fmt.Sprintf(
			"PublicURL %q is not an absolute http or https URL without query; set the URL clients reach the connector at",
			cfg.PublicURL))
	}
	v.publicURL = strings.TrimSuffix(cfg.PublicURL, "/")

	if len(v.algorithms) == 0 {
		v.algorithms = DefaultAlgorithms
	}
	names := make([]string, 0, len(v.algorithms))
	for _, alg := range v.algorithms {
		// RFC 8725, Section 3.1 and RFC 9449, Section 4.2: only asymmetric
		// algorithms, never "none" or an HMAC that a public key could forge.
		if !asymmetric(alg) {
			problems = append(problems, fmt.Sprintf("Algorithms contains %q, which is not an asymmetric signature algorithm", alg))
		}
		names = append(names, string(alg))
	}
	v.algNames = strings.Join(names, " ")

	if len(problems) > 0 {
		return errors.New("connector: invalid configuration: " + strings.Join(problems, "; "))
	}

	switch {
	case v.leeway == 0:
		v.leeway = defaultLeeway
	case v.leeway < 0:
		v.leeway = 0
	}
	if v.proofWindow <= 0 {
		v.proofWindow = defaultProofWindow
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.logger == nil {
		v.logger = slog.Default()
	}
	if v.replay == nil {
		v.replay = NewMemoryReplayCache(defaultReplayEntries)
	}
	return nil
}

func asymmetric(alg jose.SignatureAlgorithm) bool {
	return slices.Contains([]jose.SignatureAlgorithm{
		jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
		jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	}, alg)
}

// Validate checks the action token and DPoP proof of r against required,
// and returns the token's claims.
//
// A rejected request returns an [*Error] to pass to [Validator.WriteError].
// Any other error is the connector's own failure, such as an unreachable
// introspection endpoint or a failed replay cache.
func (v *Validator) Validate(r *http.Request, required Requirement) (*Claims, error) {
	ctx := r.Context()

	token, proof, err := parseCredentials(r.Header.Values("Authorization"), r.Header.Values("DPoP"))
	if err != nil {
		return nil, err
	}

	claims, err := v.verifyToken(ctx, token)
	if err != nil {
		return nil, err
	}

	if err := v.verifyProof(ctx, r, proof, token, claims.JKT); err != nil {
		return nil, err
	}

	if err := v.checkRequirement(claims, required); err != nil {
		return nil, err
	}

	if required.Introspect {
		if v.introspect == nil {
			return nil, errors.New("connector: the route requires introspection but Config.Introspection is not set")
		}
		active, err := v.introspect.active(ctx, token, claims.ExpiresAt)
		if err != nil {
			return nil, err
		}
		// RFC 7662, Section 2.2: an inactive token, revoked or expired at
		// the issuer, is rejected like any invalid token.
		if !active {
			return nil, invalidToken("the issuer reports the access token as inactive")
		}
	}
	return claims, nil
}

// checkRequirement applies the route's scope and authentication demands.
func (v *Validator) checkRequirement(claims *Claims, required Requirement) error {
	// RFC 9068, Section 4 and RFC 6750, Section 3.1: a token without the
	// route's scope gets 403 insufficient_scope with the scope it needs.
	if required.Scope != "" && !claims.HasScope(required.Scope) {
		e := reject(CodeInsufficientScope, http.StatusForbidden,
			"the access token does not grant the scope "+required.Scope)
		e.Scope = required.Scope
		return e
	}

	// RFC 9470, Section 3: when the acr is not among the accepted values,
	// or auth_time is too old, the challenge names what would suffice.
	stepUp := func(description string) error {
		e := reject(CodeInsufficientUserAuthentication, http.StatusUnauthorized, description)
		e.ACRValues = required.ACRValues
		e.MaxAge = required.MaxAge
		return e
	}
	if len(required.ACRValues) > 0 && !slices.Contains(required.ACRValues, claims.ACR) {
		return stepUp("the authentication level (acr) of the token is not accepted for this action")
	}
	if required.MaxAge > 0 {
		if claims.AuthTime.IsZero() {
			return stepUp("the access token has no auth_time, which this action requires")
		}
		if v.now().Sub(claims.AuthTime) > required.MaxAge+v.leeway {
			return stepUp("the user authenticated too long ago for this action")
		}
	}
	return nil
}
