package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Validate checks c as Load returns it, with defaults applied and paths
// resolved, and returns every problem at once in a *ValidationError. It
// checks the clients and actions too, but does not change c.
func (c *Config) Validate() error {
	if ps := c.validate(); len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	return nil
}

func (c *Config) validate() []Problem {
	var ps problems
	c.validateServer(&ps)
	c.validateStorage(&ps)
	c.validateTrustedIssuers(&ps)
	c.validateDeviceAttesters(&ps)
	c.validateLimits(&ps)
	c.validateSessions(&ps)
	c.validateLogin(&ps)
	c.validateKeys(&ps)
	c.validateStepUp(&ps)
	c.validateStrongACR(&ps)
	c.validateAudit(&ps)
	c.validateAdmin(&ps)

	if c.ClientsFile == "" {
		ps.add(c.fileFor("clients_file"), "clients_file", "", "the path of the clients file")
	}
	if c.CatalogFile == "" {
		ps.add(c.fileFor("catalog_file"), "catalog_file", "", "the path of the scope catalog file")
	}
	ps.list = append(ps.list, validateClients(c.ClientsFile, c.Clients)...)
	ps.list = append(ps.list, validateActions(c.CatalogFile, c.Actions)...)
	return ps.list
}

func (c *Config) validateServer(ps *problems) {
	// RFC 8414, Section 2: the issuer is an https URL with no query or
	// fragment. Plain http is accepted on a loopback host for development.
	switch {
	case c.Issuer == "":
		ps.add(c.fileFor("issuer"), "issuer", "",
			"the public https URL of this server, such as https://sotto.corp.example")
	default:
		if expected := checkIssuer(c.Issuer); expected != "" {
			ps.add(c.fileFor("issuer"), "issuer", c.Issuer, expected)
		}
	}

	if _, port, err := net.SplitHostPort(c.Listen); err != nil || !validPort(port) {
		ps.add(c.fileFor("listen"), "listen", c.Listen, "a host:port address, such as 127.0.0.1:8080 or :8080")
	}

	if !slices.Contains([]string{"json", "text"}, c.Log.Format) {
		ps.add(c.fileFor("log.format"), "log.format", c.Log.Format, "json or text")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		ps.add(c.fileFor("log.level"), "log.level", c.Log.Level, "one of debug, info, warn, error")
	}
}

func validPort(port string) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// checkIssuer returns what is wrong with Sotto's own issuer URL, or "".
func checkIssuer(issuer string) string {
	if expected := checkHTTPSURL(issuer); expected != "" {
		return expected
	}
	u, _ := url.Parse(issuer)
	switch {
	case u.RawQuery != "" || u.ForceQuery:
		return "an issuer URL without a query (RFC 8414, Section 2)"
	case u.Fragment != "" || strings.Contains(issuer, "#"):
		return "an issuer URL without a fragment (RFC 8414, Section 2)"
	case u.User != nil:
		return "an issuer URL without user information"
	case strings.HasSuffix(issuer, "/"):
		return "an issuer URL without a trailing slash"
	}
	return ""
}

// checkHTTPSURL returns what is wrong with an absolute URL that must use
// https, or http on a loopback host, or "".
func checkHTTPSURL(raw string) string {
	const expected = "an absolute https URL, or http on a loopback host (127.0.0.0/8, ::1, localhost)"
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return expected
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if isLoopback(u.Hostname()) {
			return ""
		}
	}
	return expected
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validateStorage(ps *problems) {
	switch c.Storage.Driver {
	case DriverSQLite:
		// SQLite creates a missing database file, but not its folder.
		if _, file := c.resolveSQLiteDSN(c.Storage.DSN); file != "" && !isDir(filepath.Dir(file)) {
			ps.add(c.fileFor("storage.dsn"), "storage.dsn", c.Storage.DSN, "a database file in an existing folder")
		}
		if !slices.Contains([]string{"FULL", "NORMAL"}, c.Storage.Synchronous) {
			ps.add(c.fileFor("storage.synchronous"), "storage.synchronous", c.Storage.Synchronous,
				"FULL or NORMAL")
		}
	case DriverPostgres:
		// libpq accepts a URL (postgres:// or postgresql://) or key=value
		// pairs; anything else, such as a SQLite file name left in the
		// file, would fail later with a driver message.
		dsn := c.Storage.DSN
		if dsn == "" || !(strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") || strings.Contains(dsn, "=")) {
			ps.add(c.fileFor("storage.dsn"), "storage.dsn", redactDSN(dsn),
				"a PostgreSQL connection string, such as postgres://sotto@db.internal/sotto, usually from SOTTO_STORAGE_DSN")
		}
	default:
		ps.add(c.fileFor("storage.driver"), "storage.driver", c.Storage.Driver, "sqlite or postgres")
	}
}

// asymmetricAlgorithms are the JWS algorithms a trusted issuer may use.
// RFC 8725, Section 3.1 requires verifiers to accept only an allow-list of
// algorithms. Symmetric HS* algorithms would make the issuer's key a shared
// secret, and "none" carries no signature.
var asymmetricAlgorithms = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// signingAlgorithms are the algorithms Sotto signs its own tokens with.
var signingAlgorithms = []string{"ES256", "ES384", "EdDSA", "RS256", "PS256"}

func (c *Config) validateTrustedIssuers(ps *problems) {
	issuers := map[string]int{}
	prefixes := map[string]int{}
	for i, ti := range c.TrustedIssuers {
		key := indexKey("trusted_issuers", i)

		switch {
		case ti.Issuer == "":
			ps.add(c.File, key+".issuer", "", "the issuer's iss value, such as https://sso.corp.example")
		case checkHTTPSURL(ti.Issuer) != "":
			// OpenID Connect Core 1.0, Section 2: iss is an https URL.
			ps.add(c.File, key+".issuer", ti.Issuer, checkHTTPSURL(ti.Issuer))
		}
		if first, dup := issuers[ti.Issuer]; dup && ti.Issuer != "" {
			ps.add(c.File, key+".issuer", ti.Issuer, "an issuer not already listed in "+indexKey("trusted_issuers", first))
		} else {
			issuers[ti.Issuer] = i
		}

		c.validateJWKS(ps, key, ti)

		if ti.Audience == "" {
			ps.add(c.File, key+".audience", "", "the aud that the issuer puts in its ID tokens for Sotto")
		}
		if strings.TrimSpace(ti.GroupsClaim) == "" {
			ps.add(c.File, key+".groups_claim", ti.GroupsClaim, "the name of the claim that lists the user's groups")
		}

		switch {
		case ti.SubjectPrefix == "" || strings.ContainsAny(ti.SubjectPrefix, "| \t\r\n"):
			ps.add(c.File, key+".subject_prefix", ti.SubjectPrefix, `a non-empty prefix without "|" or spaces`)
		default:
			if first, dup := prefixes[ti.SubjectPrefix]; dup {
				ps.add(c.File, key+".subject_prefix", ti.SubjectPrefix,
					"a subject_prefix not already used by "+indexKey("trusted_issuers", first))
			} else {
				prefixes[ti.SubjectPrefix] = i
			}
		}

		for j, alg := range ti.Algorithms {
			akey := indexKey(key+".algorithms", j)
			switch {
			case strings.EqualFold(alg, "none"):
				ps.add(c.File, akey, alg, "a signature algorithm: none accepts unsigned tokens")
			case strings.HasPrefix(strings.ToUpper(alg), "HS"):
				ps.add(c.File, akey, alg, "an asymmetric algorithm: HMAC algorithms need a shared secret")
			case !slices.Contains(asymmetricAlgorithms, alg):
				ps.add(c.File, akey, alg, "one of "+strings.Join(asymmetricAlgorithms, ", "))
			}
		}
	}
}

func (c *Config) validateJWKS(ps *problems, key string, ti TrustedIssuer) {
	switch {
	case ti.JWKSFile == "" && ti.JWKSURI == "":
		ps.add(c.File, key+".jwks_file", "", "one of jwks_file or jwks_uri")
	case ti.JWKSFile != "" && ti.JWKSURI != "":
		ps.add(c.File, key+".jwks_uri", ti.JWKSURI, "only one of jwks_file or jwks_uri, not both")
	case ti.JWKSURI != "":
		if expected := checkHTTPSURL(ti.JWKSURI); expected != "" {
			ps.add(c.File, key+".jwks_uri", ti.JWKSURI, expected)
		}
	default:
		info, err := os.Stat(ti.JWKSFile)
		switch {
		case err != nil:
			ps.add(c.File, key+".jwks_file", ti.JWKSFile, "a readable JWK Set file: "+readError(err))
		case info.IsDir():
			ps.add(c.File, key+".jwks_file", ti.JWKSFile, "a JWK Set file, not a folder")
		}
	}
}

func (c *Config) validateLimits(ps *problems) {
	positive := []struct {
		key   string
		value Duration
	}{
		{"tokens.max_ttl", c.Tokens.MaxTTL},
		{"dpop.iat_window", c.DPoP.IATWindow},
		{"dpop.nonce_lifetime", c.DPoP.NonceLifetime},
		{"http.read_timeout", c.HTTP.ReadTimeout},
		{"http.write_timeout", c.HTTP.WriteTimeout},
		{"http.idle_timeout", c.HTTP.IdleTimeout},
		{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout},
		{"http.shutdown_timeout", c.HTTP.ShutdownTimeout},
	}
	for _, p := range positive {
		if p.value <= 0 {
			ps.add(c.fileFor(p.key), p.key, p.value.String(), "a duration greater than 0, such as 30s")
		}
	}

	// The replay record of a proof is kept for the longest window any
	// replica may use, so the window has a ceiling.
	if c.DPoP.IATWindow > MaxDPoPIATWindow {
		ps.add(c.fileFor("dpop.iat_window"), "dpop.iat_window", c.DPoP.IATWindow.String(),
			"a duration of at most "+MaxDPoPIATWindow.String())
	}
	if c.Tokens.SubjectLeeway < 0 {
		ps.add(c.fileFor("tokens.subject_leeway"), "tokens.subject_leeway", c.Tokens.SubjectLeeway.String(),
			"a duration of 0 or more")
	}
	if !slices.Contains(signingAlgorithms, c.Tokens.SigningAlg) {
		ps.add(c.fileFor("tokens.signing_alg"), "tokens.signing_alg", c.Tokens.SigningAlg,
			"one of "+strings.Join(signingAlgorithms, ", "))
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		ps.add(c.fileFor("http.max_body_bytes"), "http.max_body_bytes", strconv.FormatInt(c.HTTP.MaxBodyBytes, 10),
			"a number of bytes greater than 0")
	}
}

func (c *Config) validateKeys(ps *problems) {
	if c.Keys.EncryptionKey != "" {
		if _, err := c.Keys.DecodeEncryptionKey(); err != nil {
			ps.add(c.fileFor("keys.encryption_key"), "keys.encryption_key", redacted,
				"the base64 (standard or URL alphabet) of 32 random bytes, such as the output of openssl rand -base64 32")
		}
		return
	}
	if c.Keys.EncryptionKeyFile == "" {
		ps.add(c.fileFor("keys.encryption_key_file"), "keys.encryption_key_file", "",
			"the path of the key-encryption key file")
		return
	}
	// The server creates a missing key file, but not the folder it goes in.
	// A default key file is beside the database or the config file, whose
	// folders are checked already.
	if c.keyFileSet && !isDir(filepath.Dir(c.Keys.EncryptionKeyFile)) {
		ps.add(c.fileFor("keys.encryption_key_file"), "keys.encryption_key_file", c.Keys.EncryptionKeyFile,
			"a path in an existing folder")
	}
}

func isDir(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}

// ErrKeyLength is returned by Keys.DecodeEncryptionKey for a key that does
// not decode to exactly 32 bytes.
var ErrKeyLength = errors.New("encryption key is not 32 bytes")

// DecodeEncryptionKey returns the 32 bytes of EncryptionKey, or nil and no
// error when EncryptionKey is empty. Both base64 alphabets are accepted,
// with or without padding.
func (k Keys) DecodeEncryptionKey() ([]byte, error) {
	if k.EncryptionKey == "" {
		return nil, nil
	}
	text := strings.TrimSpace(string(k.EncryptionKey))
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding,
	} {
		key, err := enc.DecodeString(text)
		if err != nil {
			continue
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("%w: it decodes to %d bytes", ErrKeyLength, len(key))
		}
		return key, nil
	}
	return nil, errors.New("encryption key is not valid base64")
}
