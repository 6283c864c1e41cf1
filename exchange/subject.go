package exchange

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sotto-auth/sotto/internal/oauth"
)

const (
	// MaxSubjectTokenSize is the maximum subject token size, in bytes. It
	// bounds the parsing work an outside token can cause and leaves room for
	// ID tokens with long group lists.
	MaxSubjectTokenSize = 16 << 10

	// maxSubjectLength follows OpenID Connect Core 1.0, Section 2: sub
	// "MUST NOT exceed 255 ASCII characters in length".
	maxSubjectLength = 255

	// minRemainingLifetime is the shortest remaining life a subject token may
	// have. The action token's lifetime is capped at the subject token's
	// remaining life in whole seconds, so less than a second leaves nothing
	// to issue.
	minRemainingLifetime = time.Second

	// maxKeysWithoutKID bounds the keys tried for a token without a kid, so a
	// token cannot make the server run many signature checks.
	maxKeysWithoutKID = 4

	// maxNumericDate is 9999-12-31T23:59:59Z. Later dates are not plausible
	// and would overflow the conversion to time.Time.
	maxNumericDate = 253402300799

	defaultRefetchInterval = 30 * time.Second
	defaultCacheTTL        = 10 * time.Minute
	defaultCacheSize       = 10000
	defaultHTTPTimeout     = 5 * time.Second
)

// asymmetricAlgorithms are the JWS algorithms a trusted issuer may use.
// RFC 8725, Section 3.2: none and the HMAC algorithms are excluded, because a
// verifier holding only public keys cannot use them safely.
var asymmetricAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// TrustedIssuer is one corporate IdP whose tokens may be exchanged.
type TrustedIssuer struct {
	// Issuer is the exact iss value of the IdP's tokens.
	Issuer string
	// Audience is the value the token's aud must contain.
	Audience string
	// GroupsClaim names the claim that lists the user's groups. The empty
	// string means "groups".
	GroupsClaim string
	// SubjectPrefix is the namespace of this issuer's users: the Sotto
	// subject is SubjectPrefix + "|" + sub. It must be unique among issuers
	// and must not contain "|".
	SubjectPrefix string
	// JWKSFile is the absolute path of a JWK set file, read at construction.
	JWKSFile string
	// JWKSURI is the IdP's jwks_uri. Its key set is fetched on first use,
	// cached for SubjectOptions.CacheTTL and refetched when a token names an
	// unknown kid. At least one of JWKSFile and JWKSURI is required.
	JWKSURI string
	// Algorithms are the JWS algorithms accepted from this issuer. Only
	// asymmetric algorithms are allowed.
	Algorithms []jose.SignatureAlgorithm
}

// SubjectOptions tunes a SubjectVerifier. The zero value is usable.
type SubjectOptions struct {
	// Leeway is the allowed clock skew for nbf and iat. None is allowed
	// for exp.
	Leeway time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// HTTPClient fetches jwks_uri. Nil means a client with a 5 s timeout.
	HTTPClient *http.Client
	// RefetchInterval is the minimum time between two fetches of one
	// jwks_uri. Zero means 30 s.
	RefetchInterval time.Duration
	// CacheTTL is the age after which a fetched key set is refreshed in the
	// background. Zero means 10 min.
	CacheTTL time.Duration
	// CacheSize is the maximum number of verified tokens cached. Zero means
	// 10000, and a negative value disables the cache.
	CacheSize int
	// Logger receives warnings about key set fetches. Nil discards them.
	Logger *slog.Logger
}

// Subject is the verified identity a subject token asserts.
type Subject struct {
	// Issuer is the trusted issuer's iss.
	Issuer string
	// Subject is the corporate sub.
	Subject string
	// ID is SubjectPrefix + "|" + Subject, the action token's sub.
	ID string
	// Groups is the issuer's groups claim. It is nil when the claim is
	// absent or is neither a string nor an array of strings.
	Groups []string
	// ACR is the acr claim, or "" when it is absent or not a string.
	ACR string
	// AMR is the amr claim. It is nil when the claim is absent or is not an
	// array of strings.
	AMR []string
	// AuthTime is the auth_time claim. It is zero when the claim is absent
	// or not a NumericDate.
	AuthTime time.Time
	// IssuedAt is the iat claim, or zero when it is absent.
	IssuedAt time.Time
	// ExpiresAt is the exp claim.
	ExpiresAt time.Time
	// TokenID identifies the subject token as the parent of an action
	// token: "jti:" + jti when the token has a jti, otherwise "sha256:"
	// followed by the first 22 characters of the base64url SHA-256 of the
	// token.
	TokenID string
	// SessionID is the session of a session access token presented as
	// the subject token, or "" for a corporate token.
	SessionID string
}

// SubjectError is a failed check of a subject token. RFC 8693, Section 2.2.2
// requires the token endpoint to respond to an invalid subject token with
// invalid_request. The "jwks" check is the exception: it means that the
// issuer's keys could not be fetched, which is a server-side failure.
//
// Check is one of "syntax", "size", "typ", "alg", "iss", "kid", "signature",
// "aud", "exp", "nbf", "iat", "sub" and "jwks", and does not change between
// releases. Description says what failed and what to do. It never contains
// the token or key material.
type SubjectError struct {
	// Check names the failed check.
	Check string
	// Description explains the failure to a person.
	Description string
}

// Error returns the failed check and its description.
func (e *SubjectError) Error() string {
	return "subject_token " + e.Check + " check failed: " + e.Description
}

func rejectf(check, format string, args ...any) *SubjectError {
	return &SubjectError{Check: check, Description: fmt.Sprintf(format, args...)}
}

// SubjectVerifier verifies subject tokens from trusted corporate issuers. It
// is safe for concurrent use.
type SubjectVerifier struct {
	issuers map[string]*trustedIssuer
	algs    []jose.SignatureAlgorithm // union over issuers, for parsing
	leeway  time.Duration
	now     func() time.Time
	cache   *tokenCache // nil when disabled

	// signatureChecks counts signature verifications, for tests.
	signatureChecks atomic.Int64
}

type trustedIssuer struct {
	TrustedIssuer
	keys *keySet
}

// NewSubjectVerifier checks the issuers and loads their JWKS files. It
// returns every configuration problem at once.
func NewSubjectVerifier(issuers []TrustedIssuer, opts SubjectOptions) (*SubjectVerifier, error) {
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	if len(issuers) == 0 {
		return nil, errors.New("no trusted issuers configured: add at least one")
	}

	v := &SubjectVerifier{
		issuers: make(map[string]*trustedIssuer, len(issuers)),
		leeway:  opts.Leeway,
		now:     opts.Now,
	}
	if opts.CacheSize > 0 {
		v.cache = newTokenCache(opts.CacheSize)
	}

	var problems []error
	prefixes := make(map[string]bool)
	for i, cfg := range issuers {
		if err := validateIssuer(cfg); err != nil {
			problems = append(problems, fmt.Errorf("trusted issuer %d (%q): %w", i, cfg.Issuer, err))
			continue
		}
		if _, dup := v.issuers[cfg.Issuer]; dup {
			problems = append(problems, fmt.Errorf("trusted issuer %d: issuer %q is configured twice", i, cfg.Issuer))
			continue
		}
		if prefixes[cfg.SubjectPrefix] {
			problems = append(problems, fmt.Errorf(
				"trusted issuer %d (%q): subject prefix %q is used by another issuer, so their users would collide",
				i, cfg.Issuer, cfg.SubjectPrefix))
			continue
		}

		ti, err := newTrustedIssuer(cfg, opts)
		if err != nil {
			problems = append(problems, fmt.Errorf("trusted issuer %d (%q): %w", i, cfg.Issuer, err))
			continue
		}
		v.issuers[cfg.Issuer] = ti
		prefixes[cfg.SubjectPrefix] = true
		for _, alg := range ti.Algorithms {
			if !slices.Contains(v.algs, alg) {
				v.algs = append(v.algs, alg)
			}
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return v, nil
}

func withDefaults(opts SubjectOptions) (SubjectOptions, error) {
	var problems []error
	if opts.Leeway < 0 {
		problems = append(problems, fmt.Errorf("leeway %s is negative: use 0 or more", opts.Leeway))
	}
	if opts.RefetchInterval < 0 {
		problems = append(problems, fmt.Errorf("refetch interval %s is negative: use 0 for the default of 30s", opts.RefetchInterval))
	}
	if opts.CacheTTL < 0 {
		problems = append(problems, fmt.Errorf("JWKS cache TTL %s is negative: use 0 for the default of 10m", opts.CacheTTL))
	}
	if len(problems) > 0 {
		return opts, errors.Join(problems...)
	}

	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if opts.RefetchInterval == 0 {
		opts.RefetchInterval = defaultRefetchInterval
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = defaultCacheTTL
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = defaultCacheSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return opts, nil
}

func validateIssuer(cfg TrustedIssuer) error {
	var problems []error
	if cfg.Issuer == "" {
		problems = append(problems, errors.New("issuer is empty: set the exact iss value of the IdP's tokens"))
	}
	if cfg.Audience == "" {
		problems = append(problems, errors.New("audience is empty: set the aud value the IdP puts in tokens for this server"))
	}
	if cfg.SubjectPrefix == "" {
		problems = append(problems, errors.New("subject prefix is empty: set a short unique name for this issuer"))
	}
	if strings.Contains(cfg.SubjectPrefix, "|") {
		problems = append(problems, fmt.Errorf("subject prefix %q contains \"|\", which separates the prefix from sub", cfg.SubjectPrefix))
	}
	if cfg.JWKSFile == "" && cfg.JWKSURI == "" {
		problems = append(problems, errors.New("no keys configured: set jwks_file or jwks_uri"))
	}
	if cfg.JWKSFile != "" && !filepath.IsAbs(cfg.JWKSFile) {
		problems = append(problems, fmt.Errorf("jwks_file %q is not an absolute path", cfg.JWKSFile))
	}
	if cfg.JWKSURI != "" {
		if err := validateJWKSURI(cfg.JWKSURI); err != nil {
			problems = append(problems, err)
		}
	}
	if len(cfg.Algorithms) == 0 {
		problems = append(problems, errors.New("no algorithms configured: list the JWS algorithms the IdP signs with, such as RS256"))
	}
	for _, alg := range cfg.Algorithms {
		// RFC 8725, Section 3.1: the verifier, not the token, chooses the
		// algorithms, and Section 3.2 rules out none and HMAC here.
		if !slices.Contains(asymmetricAlgorithms, alg) {
			problems = append(problems, fmt.Errorf("algorithm %q is not allowed: use one of %v", alg, asymmetricAlgorithms))
		}
	}
	return errors.Join(problems...)
}

func newTrustedIssuer(cfg TrustedIssuer, opts SubjectOptions) (*trustedIssuer, error) {
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}

	keys := &keySet{issuer: cfg.Issuer}
	if cfg.JWKSFile != "" {
		fileKeys, err := loadJWKSFile(cfg.JWKSFile, cfg.Issuer, opts.Logger)
		if err != nil {
			return nil, err
		}
		keys.fileKeys = fileKeys
	}
	if cfg.JWKSURI != "" {
		keys.remote = &remoteKeys{
			issuer:          cfg.Issuer,
			uri:             cfg.JWKSURI,
			client:          opts.HTTPClient,
			now:             opts.Now,
			refetchInterval: opts.RefetchInterval,
			cacheTTL:        opts.CacheTTL,
			logger:          opts.Logger,
		}
	}
	return &trustedIssuer{TrustedIssuer: cfg, keys: keys}, nil
}

// Verify checks a subject token and returns the identity it asserts. A
// failed check returns a *SubjectError. A verified token is cached by its
// SHA-256 until it expires, and exp is checked again on every cache hit.
func (v *SubjectVerifier) Verify(ctx context.Context, token string) (*Subject, error) {
	// Bound the work an outside token can cause before anything parses it.
	if len(token) > MaxSubjectTokenSize {
		return nil, rejectf("size", "the token is %d bytes, more than the %d-byte limit", len(token), MaxSubjectTokenSize)
	}
	if token == "" {
		return nil, rejectf("syntax", "the token is empty: send the ID token as a compact JWS")
	}

	sum := sha256.Sum256([]byte(token))
	now := v.now()
	if v.cache != nil {
		if cached, ok := v.cache.get(sum); ok {
			if err := checkExpiry(cached.ExpiresAt, now); err != nil {
				v.cache.remove(sum)
				return nil, err
			}
			return cloneSubject(cached), nil
		}
	}

	subject, err := v.verify(ctx, token, sum, now)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(sum, cloneSubject(subject), now)
	}
	return subject, nil
}

// verify runs every check on a token that is not cached. The JOSE header and
// the signature are checked in the order of RFC 7519, Section 7.2, and the
// claims only after the signature verifies.
func (v *SubjectVerifier) verify(ctx context.Context, token string, sum [sha256.Size]byte, now time.Time) (*Subject, error) {
	// RFC 7515, Section 7.1: compact serialization has exactly three parts
	// and one signature. RFC 8725, Section 3.1: an alg outside the
	// allowlist, including none and HS256, fails here, before any key is
	// chosen.
	parsed, err := jwt.ParseSigned(token, v.algs)
	if err != nil {
		var unexpected *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &unexpected) {
			return nil, rejectf("alg", "alg %s is not accepted: trusted issuers sign with %v", quote(string(unexpected.Got)), v.algs)
		}
		return nil, rejectf("syntax", "the token is not a compact JWS: %v", err)
	}
	if len(parsed.Headers) != 1 {
		return nil, rejectf("syntax", "the token has %d signatures, expected exactly one", len(parsed.Headers))
	}
	header := parsed.Headers[0]

	if err := checkType(header); err != nil {
		return nil, err
	}

	// The unverified iss only selects the issuer's configuration. Every claim,
	// iss included, is checked again after the signature verifies.
	var unverified map[string]json.RawMessage
	if err := parsed.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, rejectf("syntax", "the payload is not a JSON object")
	}
	claimedIssuer, _ := claimString(unverified, "iss")
	issuer, ok := v.issuers[claimedIssuer]
	if !ok {
		return nil, rejectf("iss", "issuer %s is not trusted: use an ID token from a configured corporate IdP", quote(claimedIssuer))
	}

	// RFC 8725, Section 3.1: the alg must be one this issuer uses.
	alg := jose.SignatureAlgorithm(header.Algorithm)
	if !slices.Contains(issuer.Algorithms, alg) {
		return nil, rejectf("alg", "alg %s is not accepted from issuer %q, which signs with %v",
			quote(header.Algorithm), issuer.Issuer, issuer.Algorithms)
	}

	payload, err := v.verifySignature(ctx, parsed, issuer, header.KeyID, alg)
	if err != nil {
		return nil, err
	}

	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, rejectf("syntax", "the payload is not a JSON object")
	}
	return v.checkClaims(claims, issuer, sum, now)
}

// checkType applies explicit typing (RFC 8725, Section 3.11). RFC 7519,
// Section 5.1 recommends typ "JWT", compared without regard to case, and RFC
// 7515, Section 4.1.9 makes "application/jwt" the same media type. Any other
// typ marks a different kind of JWT: RFC 9068, Section 4 types access
// tokens "at+jwt" and RFC 9449, Section 4.2 types DPoP proofs "dpop+jwt". Neither is an
// identity assertion, and RFC 8725, Section 3.12 keeps one kind from being
// accepted as another.
func checkType(header jose.Header) error {
	raw, present := header.ExtraHeaders[jose.HeaderType]
	if !present {
		return nil
	}
	typ, ok := raw.(string)
	if !ok {
		return rejectf("typ", "the typ header is not a string")
	}
	if strings.EqualFold(typ, "JWT") || strings.EqualFold(typ, "application/jwt") {
		return nil
	}
	if strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt") {
		return rejectf("typ", "typ at+jwt marks an access token, which is not an identity assertion: exchange the ID token instead")
	}
	return rejectf("typ", "typ %s is not accepted: a subject token must have typ JWT or none", quote(typ))
}

// verifySignature finds the issuer's keys for kid and alg and returns the
// payload once one of them verifies the signature.
func (v *SubjectVerifier) verifySignature(ctx context.Context, parsed *jwt.JSONWebToken, issuer *trustedIssuer,
	kid string, alg jose.SignatureAlgorithm,
) ([]byte, error) {
	keys, err := issuer.keys.candidates(ctx, kid, alg)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		if kid == "" {
			return nil, rejectf("kid", "issuer %q has no %s key and the token names no kid", issuer.Issuer, alg)
		}
		return nil, rejectf("kid", "issuer %q has no %s key with kid %s, even after refreshing its keys",
			issuer.Issuer, alg, quote(kid))
	}
	if kid == "" && len(keys) > maxKeysWithoutKID {
		// NOTE: an IdP with more fitting keys than this must send kid, or
		// tokens signed by its later keys are rejected.
		keys = keys[:maxKeysWithoutKID]
	}

	// RFC 7515, Section 5.2: the JWS is valid only if the signature verifies
	// with the issuer's key. go-jose also rejects unsupported crit headers.
	for _, key := range keys {
		v.signatureChecks.Add(1)
		var payload json.RawMessage
		if err := parsed.Claims(key.Key, &payload); err == nil {
			return payload, nil
		}
	}
	if kid == "" {
		return nil, rejectf("signature", "the signature does not verify with any %s key of issuer %q", alg, issuer.Issuer)
	}
	return nil, rejectf("signature", "the signature does not verify with key %s of issuer %q", quote(kid), issuer.Issuer)
}

// checkClaims validates the verified claims and builds the Subject.
func (v *SubjectVerifier) checkClaims(claims map[string]json.RawMessage, issuer *trustedIssuer,
	sum [sha256.Size]byte, now time.Time,
) (*Subject, error) {
	// RFC 7519, Section 4.1.1 and OpenID Connect Core 1.0, Section 3.1.3.7,
	// step 2: iss must exactly match the issuer identifier.
	if iss, _ := claimString(claims, "iss"); iss != issuer.Issuer {
		return nil, rejectf("iss", "the verified iss does not match issuer %q", issuer.Issuer)
	}

	// RFC 7519, Section 4.1.3 and OpenID Connect Core 1.0, Section 3.1.3.7,
	// step 3: aud, a string or an array of strings, must contain this
	// server's audience.
	audience, err := claimAudience(claims)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(audience, issuer.Audience) {
		return nil, rejectf("aud", "aud does not contain %q: request an ID token for this server from issuer %q",
			issuer.Audience, issuer.Issuer)
	}
	// OpenID Connect Core 1.0, Section 3.1.3.7, steps 4 and 5: a token for
	// several audiences names the party it was issued to in azp, and that
	// party must be this server; otherwise a token issued to another
	// application that merely lists this server could be exchanged.
	if len(audience) > 1 {
		if azp, _ := claimString(claims, "azp"); azp != issuer.Audience {
			return nil, rejectf("aud", "aud names %d audiences and azp is not %q: request an ID token issued to this server",
				len(audience), issuer.Audience)
		}
	}

	// RFC 7519, Section 4.1.4 and OpenID Connect Core 1.0, Section 2: exp is
	// required in an ID token.
	expiresAt, present, err := claimNumericDate(claims, "exp")
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, rejectf("exp", "exp is missing: a subject token must expire")
	}
	if err := checkExpiry(expiresAt, now); err != nil {
		return nil, err
	}

	// RFC 7519, Section 4.1.5: the token must not be accepted before nbf,
	// with leeway for clock skew.
	notBefore, present, err := claimNumericDate(claims, "nbf")
	if err != nil {
		return nil, err
	}
	if present && notBefore.After(now.Add(v.leeway)) {
		return nil, rejectf("nbf", "the token is not valid before %s, which is %s ahead of this server's clock",
			notBefore.Format(time.RFC3339), notBefore.Sub(now).Round(time.Second))
	}

	// RFC 7519, Section 4.1.6 and OpenID Connect Core 1.0, Section 3.1.3.7,
	// step 10: iat is optional, but a token issued in the future (beyond the
	// leeway) shows a broken clock at the IdP or a forged token.
	issuedAt, hasIssuedAt, err := claimNumericDate(claims, "iat")
	if err != nil {
		return nil, err
	}
	if hasIssuedAt && issuedAt.After(now.Add(v.leeway)) {
		return nil, rejectf("iat", "iat %s is %s ahead of this server's clock",
			issuedAt.Format(time.RFC3339), issuedAt.Sub(now).Round(time.Second))
	}

	// RFC 7519, Section 4.1.2 and OpenID Connect Core 1.0, Section 2: sub is
	// required and at most 255 ASCII characters. Longer values in bytes are
	// rejected too.
	sub, ok := claimString(claims, "sub")
	if !ok || sub == "" {
		return nil, rejectf("sub", "sub is missing or not a non-empty string")
	}
	if len(sub) > maxSubjectLength {
		return nil, rejectf("sub", "sub is %d bytes, more than the %d allowed", len(sub), maxSubjectLength)
	}
	// The sub becomes part of the action token's sub and of audit records
	// and logs, so control characters are refused.
	if strings.IndexFunc(sub, unicode.IsControl) >= 0 {
		return nil, rejectf("sub", "sub contains a control character")
	}

	subject := &Subject{
		Issuer:    issuer.Issuer,
		Subject:   sub,
		ID:        issuer.SubjectPrefix + "|" + sub,
		Groups:    claimGroups(claims, issuer.GroupsClaim),
		AMR:       claimStrings(claims, "amr"),
		ExpiresAt: expiresAt,
		TokenID:   tokenID(issuer.SubjectPrefix, claims, sum),
	}
	if hasIssuedAt {
		subject.IssuedAt = issuedAt
	}
	subject.ACR, _ = claimString(claims, "acr")
	if authTime, _, err := claimNumericDate(claims, "auth_time"); err == nil {
		subject.AuthTime = authTime
	}
	return subject, nil
}

// checkExpiry applies RFC 7519, Section 4.1.4: the token must not be
// accepted on or after exp. No leeway is allowed, and a token with less than
// a second left is rejected as well.
func checkExpiry(expiresAt, now time.Time) error {
	if !now.Before(expiresAt) {
		return rejectf("exp", "the token expired at %s: obtain a fresh ID token from the IdP",
			expiresAt.Format(time.RFC3339))
	}
	if expiresAt.Sub(now) < minRemainingLifetime {
		return rejectf("exp", "the token expires too soon to be exchanged (at %s): obtain a fresh ID token from the IdP",
			expiresAt.Format(time.RFC3339Nano))
	}
	return nil
}

// tokenID names the token as the parent of an action token. A jti is
// unique only per issuer (RFC 7519, Section 4.1.7), so it is qualified with
// the issuer's subject prefix, which is unique across trusted issuers.
func tokenID(prefix string, claims map[string]json.RawMessage, sum [sha256.Size]byte) string {
	if jti, ok := claimString(claims, "jti"); ok && jti != "" {
		return "jti:" + prefix + "|" + jti
	}
	return "sha256:" + base64.RawURLEncoding.EncodeToString(sum[:])[:22]
}

// claimValue decodes one claim. Claims are looked up in a map because
// encoding/json matches struct fields without regard to case, so a struct
// would accept "ISS" as iss. The map keeps the last of duplicate names, as
// RFC 7519, Section 4 allows.
func claimValue(claims map[string]json.RawMessage, name string) (any, bool) {
	raw, ok := claims[name]
	if !ok {
		return nil, false
	}
	var value any
	if err := json.Unmarshal(raw, &value); err != nil {
		return nil, true
	}
	return value, true
}

func claimString(claims map[string]json.RawMessage, name string) (string, bool) {
	value, _ := claimValue(claims, name)
	s, ok := value.(string)
	return s, ok
}

// claimStrings returns an array-of-strings claim, or nil when the claim is
// absent or has any other shape.
func claimStrings(claims map[string]json.RawMessage, name string) []string {
	value, _ := claimValue(claims, name)
	list, ok := value.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil
		}
		out = append(out, s)
	}
	return out
}

// claimGroups reads the groups claim. An array of strings is the groups and a
// single non-empty string is one group. Any other value, including an array
// with a non-string member, is ignored as no groups, so a malformed claim
// never grants a group.
func claimGroups(claims map[string]json.RawMessage, name string) []string {
	if s, ok := claimString(claims, name); ok {
		if s == "" {
			return nil
		}
		return []string{s}
	}
	return claimStrings(claims, name)
}

// claimAudience reads aud, which RFC 7519, Section 4.1.3 allows to be one
// string or an array of strings.
func claimAudience(claims map[string]json.RawMessage) ([]string, error) {
	value, present := claimValue(claims, "aud")
	if !present {
		return nil, rejectf("aud", "aud is missing: request an ID token issued for this server")
	}
	if s, ok := value.(string); ok {
		return []string{s}, nil
	}
	audience := claimStrings(claims, "aud")
	if audience == nil {
		return nil, rejectf("aud", "aud is neither a string nor an array of strings")
	}
	return audience, nil
}

// claimNumericDate reads a NumericDate claim (RFC 7519, Section 2): a JSON
// number of seconds since the epoch, possibly with a fraction. A claim of any
// other type is rejected with the claim's name as the check.
func claimNumericDate(claims map[string]json.RawMessage, name string) (time.Time, bool, error) {
	value, present := claimValue(claims, name)
	if !present {
		return time.Time{}, false, nil
	}
	seconds, ok := value.(float64)
	if !ok {
		return time.Time{}, true, rejectf(name, "%s is not a JSON number of seconds since the epoch", name)
	}
	if seconds < 0 || seconds > maxNumericDate {
		return time.Time{}, true, rejectf(name, "%s is outside the range 0 to %d", name, int64(maxNumericDate))
	}
	whole, fraction := math.Modf(seconds)
	return time.Unix(int64(whole), int64(fraction*1e9)).UTC(), true, nil
}

// quote formats a value taken from the request for an error description:
// shortened so a large value cannot inflate error responses, audit records
// and logs, and limited to the characters that RFC 6749, Section 5.2
// allows in error_description.
func quote(s string) string {
	return oauth.Quote(s)
}

func cloneSubject(s *Subject) *Subject {
	c := *s
	c.Groups = slices.Clone(s.Groups)
	c.AMR = slices.Clone(s.AMR)
	return &c
}

// tokenCache holds verified subjects keyed by the SHA-256 of their token.
// When it is full, the entry that expires first is evicted, so expired
// entries go before live ones. It is safe for concurrent use.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]*cacheEntry
	queue   expiryQueue
}

type cacheEntry struct {
	key     [sha256.Size]byte
	subject *Subject
	index   int // position in the queue
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[sha256.Size]byte]*cacheEntry)}
}

func (c *tokenCache) get(key [sha256.Size]byte) (*Subject, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	entry, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	return entry.subject, true
}

func (c *tokenCache) put(key [sha256.Size]byte, subject *Subject, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; ok {
		return
	}
	for len(c.queue) > 0 && !now.Before(c.queue[0].subject.ExpiresAt) {
		c.removeEntry(c.queue[0])
	}
	if len(c.queue) >= c.max {
		c.removeEntry(c.queue[0])
	}
	entry := &cacheEntry{key: key, subject: subject}
	c.entries[key] = entry
	heap.Push(&c.queue, entry)
}

func (c *tokenCache) remove(key [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if entry, ok := c.entries[key]; ok {
		c.removeEntry(entry)
	}
}

func (c *tokenCache) removeEntry(entry *cacheEntry) {
	heap.Remove(&c.queue, entry.index)
	delete(c.entries, entry.key)
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// expiryQueue is a min-heap of cache entries ordered by expiry.
type expiryQueue []*cacheEntry

func (q expiryQueue) Len() int { return len(q) }

func (q expiryQueue) Less(i, j int) bool {
	return q[i].subject.ExpiresAt.Before(q[j].subject.ExpiresAt)
}

func (q expiryQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}

func (q *expiryQueue) Push(x any) {
	entry := x.(*cacheEntry)
	entry.index = len(*q)
	*q = append(*q, entry)
}

func (q *expiryQueue) Pop() any {
	old := *q
	entry := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return entry
}
