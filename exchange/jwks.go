package exchange

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// maxJWKSBodySize is the largest jwks_uri response body accepted. A few
	// dozen RSA keys fit in well under 100 KiB.
	maxJWKSBodySize = 1 << 20

	// jwksFetchTimeout bounds one jwks_uri fetch even when the configured
	// HTTP client has no timeout of its own.
	jwksFetchTimeout = 10 * time.Second

	// minRSAModulusBits follows RFC 7518, Section 3.3: a key of 2048 bits or
	// larger MUST be used with the RS* algorithms, and Section 3.5 applies the
	// same rule to PS*.
	minRSAModulusBits = 2048
)

// keySet contains the public signing keys of one trusted issuer: the keys of
// its JWKS file, fixed at construction, and the keys last fetched from its
// jwks_uri. Every method is safe for concurrent use.
type keySet struct {
	issuer   string
	fileKeys []jose.JSONWebKey
	remote   *remoteKeys // nil without a jwks_uri
}

// remoteKeys caches the key set served at one jwks_uri. At most one fetch
// runs at a time, and a new fetch starts only when refetchInterval has passed
// since the previous attempt, so a flood of tokens with unknown kids cannot
// turn into a flood of requests to the IdP.
type remoteKeys struct {
	issuer          string
	uri             string
	client          *http.Client
	now             func() time.Time
	refetchInterval time.Duration
	cacheTTL        time.Duration
	logger          *slog.Logger

	mu          sync.Mutex
	keys        []jose.JSONWebKey // last good set, kept when a refetch fails
	fetchedAt   time.Time         // last successful fetch
	attemptedAt time.Time         // last fetch attempt, successful or not
	inflight    chan struct{}     // non-nil while a fetch runs, closed when it ends
}

// candidates returns the keys that may have signed a token with the given
// kid and alg. A token without a kid is tried against every fitting key.
//
// RFC 8725, Section 3.10: the kid is only a lookup key into the issuer's own
// set. Keys embedded in the token (jwk, jku, x5c, x5u) are never used.
func (s *keySet) candidates(ctx context.Context, kid string, alg jose.SignatureAlgorithm) ([]jose.JSONWebKey, error) {
	found := matchKeys(s.fileKeys, kid, alg)
	if s.remote == nil {
		return found, nil
	}

	keys, err := s.remote.current(ctx)
	if err != nil && len(found) == 0 {
		return nil, err
	}
	found = append(found, matchKeys(keys, kid, alg)...)
	if len(found) > 0 || kid == "" {
		return found, nil
	}

	// An unknown kid usually means that the IdP rotated its keys after the
	// last fetch. Refetch, subject to the rate limit, and look again.
	s.remote.refresh(ctx)
	return matchKeys(s.remote.snapshot(), kid, alg), nil
}

// current returns the cached remote keys, fetching them on first use. Once
// the set is older than cacheTTL it starts a refresh in the background and
// returns the cached keys meanwhile.
func (r *remoteKeys) current(ctx context.Context) ([]jose.JSONWebKey, error) {
	now := r.now()
	r.mu.Lock()
	keys, fetchedAt := r.keys, r.fetchedAt
	stale := !fetchedAt.IsZero() && now.Sub(fetchedAt) >= r.cacheTTL &&
		r.inflight == nil && now.Sub(r.attemptedAt) >= r.refetchInterval
	r.mu.Unlock()

	if fetchedAt.IsZero() {
		r.refresh(ctx)
		keys = r.snapshot()
		if keys == nil {
			return nil, &SubjectError{
				Check: "jwks",
				Description: fmt.Sprintf(
					"no signing keys are available for issuer %q because its jwks_uri could not be fetched; "+
						"check the server log and retry later", r.issuer),
			}
		}
		return keys, nil
	}

	if stale {
		go r.refresh(context.WithoutCancel(ctx))
	}
	return keys, nil
}

func (r *remoteKeys) snapshot() []jose.JSONWebKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys
}

// refresh fetches the key set unless a fetch ran within refetchInterval. If
// a fetch is already running, refresh waits for it to end instead of
// starting another. A failed fetch keeps the last good set.
func (r *remoteKeys) refresh(ctx context.Context) {
	r.mu.Lock()
	if r.inflight != nil {
		done := r.inflight
		r.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		return
	}
	now := r.now()
	if !r.attemptedAt.IsZero() && now.Sub(r.attemptedAt) < r.refetchInterval {
		r.mu.Unlock()
		return
	}
	done := make(chan struct{})
	r.inflight = done
	r.attemptedAt = now
	r.mu.Unlock()

	// The fetch serves every waiting caller, so one caller's cancellation
	// must not fail it for the others.
	fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	keys, err := r.fetch(fetchCtx)
	cancel()

	r.mu.Lock()
	if err == nil {
		r.keys = keys
		r.fetchedAt = now
	}
	cached := len(r.keys)
	r.inflight = nil
	close(done)
	r.mu.Unlock()

	if err != nil {
		r.logger.WarnContext(ctx, "jwks_uri fetch failed, keeping the last good key set",
			slog.String("issuer", r.issuer),
			slog.String("jwks_uri", r.uri),
			slog.Int("cached_keys", cached),
			slog.Any("error", err))
		return
	}
	r.logger.InfoContext(ctx, "jwks_uri fetched",
		slog.String("issuer", r.issuer),
		slog.String("jwks_uri", r.uri),
		slog.Int("keys", len(keys)))
}

// fetch downloads and validates the key set. Only 200 OK is accepted.
func (r *remoteKeys) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.uri, nil)
	if err != nil {
		return nil, fmt.Errorf("build jwks_uri request: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")

	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks_uri: %w", err)
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks_uri: status %d, expected 200", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBodySize+1))
	if err != nil {
		return nil, fmt.Errorf("read jwks_uri response: %w", err)
	}
	if len(body) > maxJWKSBodySize {
		return nil, fmt.Errorf("jwks_uri response is larger than the %d-byte limit", maxJWKSBodySize)
	}
	return parseJWKS(body, r.issuer, r.logger)
}

// loadJWKSFile reads and validates the JWKS file of an issuer.
func loadJWKSFile(path, issuer string, logger *slog.Logger) ([]jose.JSONWebKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read jwks_file: %w", err)
	}
	keys, err := parseJWKS(data, issuer, logger)
	if err != nil {
		return nil, fmt.Errorf("jwks_file %s: %w", path, err)
	}
	return keys, nil
}

// parseJWKS decodes a JSON Web Key Set (RFC 7517, Section 5) and returns its
// public signing keys.
//
// The whole set is rejected if any key is private or symmetric, because such
// a set shows a publishing mistake at the IdP, and its keys must not be
// trusted. Keys that go-jose cannot decode (an unsupported kty or curve), keys
// for encryption only, and RSA keys under 2048 bits are skipped with a
// warning, so one unusual key does not disable an issuer. A set with no usable
// key left is an error.
func parseJWKS(data []byte, issuer string, logger *slog.Logger) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("decode JWK set: %w", err)
	}

	var keys []jose.JSONWebKey
	for i, raw := range set.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(raw); err != nil {
			logger.Warn("skipping a JWK that cannot be decoded",
				slog.String("issuer", issuer), slog.Int("index", i), slog.Any("error", err))
			continue
		}

		// RFC 7517, Section 7: private and symmetric key values must not be
		// disclosed, so a set published for verification has public keys only.
		if _, symmetric := key.Key.([]byte); symmetric {
			return nil, fmt.Errorf("key %d (kid %q) is a symmetric key: remove it from the set", i, key.KeyID)
		}
		if !key.IsPublic() {
			return nil, fmt.Errorf("key %d (kid %q) contains private key material: publish only the public key", i, key.KeyID)
		}

		if reason := unusableReason(key); reason != "" {
			logger.Warn("skipping a JWK that cannot verify signatures",
				slog.String("issuer", issuer), slog.Int("index", i),
				slog.String("kid", key.KeyID), slog.String("reason", reason))
			continue
		}
		keys = append(keys, key)
	}

	if len(keys) == 0 {
		return nil, errors.New("the JWK set contains no usable public signing key")
	}
	return keys, nil
}

// unusableReason returns why a public key cannot verify signatures, or "".
func unusableReason(key jose.JSONWebKey) string {
	// RFC 7517, Section 4.2: "use" other than "sig" marks a key for another
	// purpose.
	if key.Use != "" && key.Use != "sig" {
		return fmt.Sprintf("use is %q, not \"sig\"", key.Use)
	}
	if !key.Valid() {
		return "invalid key parameters"
	}
	switch k := key.Key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSAModulusBits {
			return fmt.Sprintf("RSA modulus of %d bits is below %d", k.N.BitLen(), minRSAModulusBits)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Sprintf("key type %T cannot verify a JWS signature", key.Key)
	}
	return ""
}

// matchKeys returns the keys whose kid equals kid (any kid when kid is "")
// and whose type and alg fit alg.
func matchKeys(keys []jose.JSONWebKey, kid string, alg jose.SignatureAlgorithm) []jose.JSONWebKey {
	var found []jose.JSONWebKey
	for _, key := range keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if keyFitsAlgorithm(key, alg) {
			found = append(found, key)
		}
	}
	return found
}

// keyFitsAlgorithm reports whether key can verify an alg signature. RFC 7517,
// Section 4.4: alg names the algorithm intended for the key, so a key with
// alg ES256 verifies only ES256. RFC 7518, Section 3.4 binds each ES* alg to
// one curve.
func keyFitsAlgorithm(key jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if key.Algorithm != "" && key.Algorithm != string(alg) {
		return false
	}
	switch k := key.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return k.Curve == elliptic.P256()
		case jose.ES384:
			return k.Curve == elliptic.P384()
		case jose.ES512:
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// validateJWKSURI requires https, except for loopback hosts used in
// development and tests, because anyone on the network path could replace
// keys fetched over plain http.
func validateJWKSURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("jwks_uri is not a valid URL: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("jwks_uri %q has no host", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("jwks_uri %q must use https (plain http is allowed only for loopback hosts)", raw)
	default:
		return fmt.Errorf("jwks_uri %q must use https", raw)
	}
}
