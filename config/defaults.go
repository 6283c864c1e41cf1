package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

// defaultKeyFile is the name of the key-encryption key file when
// keys.encryption_key_file is not set.
const defaultKeyFile = "sotto.kek"

// applyDefaults normalises the spelling of enumerations and fills the
// defaults of the main config that depend on other values.
func (c *Config) applyDefaults() {
	c.Issuer = strings.TrimRight(strings.TrimSpace(c.Issuer), "/")
	c.Storage.Driver = strings.ToLower(strings.TrimSpace(c.Storage.Driver))
	c.Storage.Synchronous = strings.ToUpper(strings.TrimSpace(c.Storage.Synchronous))
	c.Log.Format = strings.ToLower(strings.TrimSpace(c.Log.Format))
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))

	if c.Storage.Driver == DriverSQLite && c.Storage.DSN == "" {
		c.Storage.DSN = "sotto.db"
	}

	c.applyAttesterDefaults()
	c.Login.applyDefaults()
	for i := range c.TrustedIssuers {
		ti := &c.TrustedIssuers[i]
		if ti.GroupsClaim == "" {
			ti.GroupsClaim = "groups"
		}
		if ti.SubjectPrefix == "" {
			ti.SubjectPrefix = defaultSubjectPrefix(ti.Issuer)
		}
		if len(ti.Algorithms) == 0 {
			ti.Algorithms = append([]string(nil), defaultAlgorithms...)
		}
	}
}

// defaultSubjectPrefix returns the issuer without its scheme and trailing
// slashes, so "https://sso.corp.example/" gives "sso.corp.example".
func defaultSubjectPrefix(issuer string) string {
	if _, rest, ok := strings.Cut(issuer, "://"); ok {
		issuer = rest
	}
	return strings.TrimRight(issuer, "/")
}

// resolvePaths makes every file path absolute against the config folder
// and sets the default key file, which depends on where the database is.
func (c *Config) resolvePaths() {
	c.ClientsFile = c.resolve(c.ClientsFile)
	c.Metrics.BearerTokenFile = c.resolve(c.Metrics.BearerTokenFile)
	c.CatalogFile = c.resolve(c.CatalogFile)
	c.Admin.BootstrapClientSecretFile = c.resolve(c.Admin.BootstrapClientSecretFile)
	for i := range c.TrustedIssuers {
		c.TrustedIssuers[i].JWKSFile = c.resolve(c.TrustedIssuers[i].JWKSFile)
	}
	for i := range c.DeviceAttesters {
		c.DeviceAttesters[i].JWKSFile = c.resolve(c.DeviceAttesters[i].JWKSFile)
	}

	keyDir := c.Dir
	if c.Storage.Driver == DriverSQLite {
		var dbFile string
		c.Storage.DSN, dbFile = c.resolveSQLiteDSN(c.Storage.DSN)
		if dbFile != "" {
			keyDir = filepath.Dir(dbFile)
		}
	}

	c.keyFileSet = c.Keys.EncryptionKeyFile != ""
	if !c.keyFileSet {
		c.Keys.EncryptionKeyFile = filepath.Join(keyDir, defaultKeyFile)
	} else {
		c.Keys.EncryptionKeyFile = c.resolve(c.Keys.EncryptionKeyFile)
	}
}

// resolve returns path made absolute against the config folder. An empty
// path stays empty.
func (c *Config) resolve(path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(c.Dir, path)
}

// resolveSQLiteDSN makes the file part of a SQLite DSN absolute, keeping a
// "file:" prefix and a "?" query. It returns the new DSN and the database
// file, which is empty for an in-memory database.
func (c *Config) resolveSQLiteDSN(dsn string) (string, string) {
	prefix := ""
	rest := dsn
	if strings.HasPrefix(rest, "file:") {
		prefix, rest = "file:", strings.TrimPrefix(rest, "file:")
	}
	file, query, hasQuery := strings.Cut(rest, "?")
	if file == "" || file == ":memory:" || strings.Contains(query, "mode=memory") {
		return dsn, ""
	}

	file = c.resolve(file)
	out := prefix + file
	if hasQuery {
		out += "?" + query
	}
	return out, file
}

// clampActions caps each action's max_ttl at tokens.max_ttl, with a warning.
func (c *Config) clampActions() {
	for i := range c.Actions {
		a := &c.Actions[i]
		if a.MaxTTL > c.Tokens.MaxTTL {
			c.Warnings = append(c.Warnings, fmt.Sprintf(
				"%s: actions[%d].max_ttl of %q is %s, above tokens.max_ttl, so it is clamped to %s",
				c.CatalogFile, i, a.Scope, a.MaxTTL, c.Tokens.MaxTTL))
			a.MaxTTL = c.Tokens.MaxTTL
		}
	}
}

// addWarnings records the findings that do not stop the server.
func (c *Config) addWarnings() {
	for i, cl := range c.Clients {
		if cl.ClientSecret != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf(
				"%s: clients[%d].client_secret of %q is plaintext; use client_secret_hash with a bcrypt hash outside development",
				c.ClientsFile, i, cl.ClientID))
		}
	}
	if c.Keys.EncryptionKey != "" && c.keyFileSet {
		c.Warnings = append(c.Warnings,
			"keys.encryption_key_file is ignored because keys.encryption_key is set")
	}
	if len(c.TrustedIssuers) == 0 {
		c.Warnings = append(c.Warnings,
			"no trusted_issuers: every token exchange is rejected for lack of a subject token issuer")
	}
	if len(c.Clients) == 0 {
		c.Warnings = append(c.Warnings, c.ClientsFile+": no clients: every token request is rejected")
	}
	if len(c.Actions) == 0 {
		c.Warnings = append(c.Warnings, c.CatalogFile+": no actions: no action token can be issued")
	}
	for _, name := range unknownEnvNames(os.Environ()) {
		c.Warnings = append(c.Warnings, fmt.Sprintf(
			"environment variable %s names no configuration key and is ignored; see docs/configuration.md for the names", name))
	}
}

// unknownEnvNames returns the SOTTO_ variables in environ that set no key,
// so a misspelt variable is reported rather than silently ignored.
// SOTTO_CONFIG (the default config path) and SOTTO_TEST_* (read by the
// tests) are not configuration keys but are known.
func unknownEnvNames(environ []string) []string {
	known := map[string]bool{EnvPrefix + "_CONFIG": true}
	for _, leaf := range scalarKeys(reflect.ValueOf(Default()).Elem(), "") {
		known[envName(leaf.key)] = true
	}
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") || strings.HasPrefix(name, EnvPrefix+"_TEST_") || known[name] {
			continue
		}
		unknown = append(unknown, name)
	}
	sort.Strings(unknown)
	return unknown
}
