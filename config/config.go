package config

import (
	"log/slog"
	"net/url"
	"regexp"
	"time"
)

// Config is the whole server configuration: the main file, the
// environment, and the clients and catalog files it names.
type Config struct {
	// Issuer is the iss of every token Sotto issues, the base URL of every
	// endpoint, and the URL that DPoP htu claims are checked against.
	Issuer string `mapstructure:"issuer"`
	// Listen is the TCP address the HTTP server binds, as host:port.
	Listen string `mapstructure:"listen"`
	// AdminListen is the TCP address of the admin listener, which serves
	// the admin API, the console, /metrics, /healthz and /readyz. Empty
	// turns it off.
	AdminListen    string          `mapstructure:"admin_listen"`
	Storage        Storage         `mapstructure:"storage"`
	TrustedIssuers []TrustedIssuer `mapstructure:"trusted_issuers"`
	// DeviceAttesters are the device management services whose
	// attestations make a device managed.
	DeviceAttesters []DeviceAttester `mapstructure:"device_attesters"`
	// ClientsFile is the absolute path of the clients file.
	ClientsFile string `mapstructure:"clients_file"`
	// CatalogFile is the absolute path of the scope catalog file.
	CatalogFile string  `mapstructure:"catalog_file"`
	Tokens      Tokens  `mapstructure:"tokens"`
	DPoP        DPoP    `mapstructure:"dpop"`
	Keys        Keys    `mapstructure:"keys"`
	Log         Log     `mapstructure:"log"`
	HTTP        HTTP    `mapstructure:"http"`
	Audit       Audit   `mapstructure:"audit"`
	Metrics     Metrics `mapstructure:"metrics"`
	// StepUp sets step-up challenges and push approval.
	StepUp StepUp `mapstructure:"step_up"`
	// WebAuthn sets the relying party of passkey ceremonies.
	WebAuthn WebAuthn `mapstructure:"webauthn"`
	// Admin sets the admin API: its tokens, the bootstrap client and how
	// often replicas look for catalog and client changes.
	Admin Admin `mapstructure:"admin"`

	// Sessions sets the lifetimes of Sotto sessions.
	Sessions Sessions `mapstructure:"sessions"`
	// Login configures sign-in in a browser at the corporate IdP.
	Login Login `mapstructure:"login"`

	// Clients are the OAuth clients loaded from ClientsFile.
	Clients []Client `mapstructure:"-"`
	// Actions are the scope catalog entries loaded from CatalogFile.
	Actions []Action `mapstructure:"-"`
	// Warnings are non-fatal findings that the server logs at start.
	Warnings []string `mapstructure:"-"`
	// Dir is the absolute path of the folder of the config file. Relative
	// paths in the configuration are resolved against it.
	Dir string `mapstructure:"-"`
	// File is the absolute path of the config file.
	File string `mapstructure:"-"`

	// fromEnv maps each key set from the environment to its variable name.
	fromEnv map[string]string
	// keyFileSet records that keys.encryption_key_file was set explicitly.
	keyFileSet bool
}

// Storage selects the database.
type Storage struct {
	// Driver is "sqlite" (one process, one file) or "postgres" (several
	// replicas sharing one database).
	Driver string `mapstructure:"driver"`
	// DSN is the SQLite file path or the PostgreSQL connection string.
	DSN string `mapstructure:"dsn"`
	// Synchronous is the SQLite synchronous pragma: "FULL" or "NORMAL".
	Synchronous string `mapstructure:"synchronous"`
}

// TrustedIssuer is a corporate OpenID Connect provider whose ID tokens
// Sotto accepts as subject tokens.
type TrustedIssuer struct {
	// Issuer is compared as an exact string with the iss claim.
	Issuer string `mapstructure:"issuer"`
	// JWKSFile is the absolute path of a JWK Set file. Exactly one of
	// JWKSFile and JWKSURI is set.
	JWKSFile string `mapstructure:"jwks_file"`
	// JWKSURI is the URL of the issuer's JWK Set.
	JWKSURI string `mapstructure:"jwks_uri"`
	// Audience is the aud that the issuer's ID tokens must contain.
	Audience string `mapstructure:"audience"`
	// GroupsClaim is the claim that lists the user's groups.
	GroupsClaim string `mapstructure:"groups_claim"`
	// SubjectPrefix is put before the corporate sub, as
	// "<subject_prefix>|<sub>", to form the sub of action tokens.
	SubjectPrefix string `mapstructure:"subject_prefix"`
	// Algorithms are the JWS algorithms accepted on the issuer's tokens.
	Algorithms []string `mapstructure:"algorithms"`
	// StrongACRValues are acr values of this issuer that already prove
	// phishing-resistant authentication, so a subject token with one of
	// them and a recent auth_time satisfies an action's step-up.
	StrongACRValues []string `mapstructure:"strong_acr_values"`
}

// Tokens sets how action tokens are issued and subject tokens checked.
type Tokens struct {
	// MaxTTL is the server maximum of an action token's lifetime.
	MaxTTL Duration `mapstructure:"max_ttl"`
	// SigningAlg is the JWS algorithm of Sotto's own signing key.
	SigningAlg string `mapstructure:"signing_alg"`
	// SubjectLeeway is the clock leeway on the nbf and iat of subject
	// tokens. There is no leeway on exp.
	SubjectLeeway Duration `mapstructure:"subject_leeway"`
}

// MaxDPoPIATWindow is the largest dpop.iat_window. Replay records of
// proofs are kept for this long whatever the configured window, so
// replicas or restarts with different windows still share them.
const MaxDPoPIATWindow = Duration(5 * time.Minute)

// DPoP configures the checks of DPoP proofs (RFC 9449).
type DPoP struct {
	// IATWindow is how far a proof's iat may be from the server clock, at
	// most MaxDPoPIATWindow.
	IATWindow Duration `mapstructure:"iat_window"`
	// NonceLifetime is the length of the time slot of a server-provided
	// nonce (RFC 9449, Section 8). The nonce of the previous slot is still
	// accepted, so a nonce is valid for one to two slots.
	NonceLifetime Duration `mapstructure:"nonce_lifetime"`
}

// Keys locates the key-encryption key that seals the private signing keys.
type Keys struct {
	// EncryptionKey is the base64 of 32 bytes. When set, EncryptionKeyFile
	// is not read.
	EncryptionKey Secret `mapstructure:"encryption_key"`
	// EncryptionKeyFile is the absolute path of the file that holds the
	// key. The server creates it on first start when it does not exist.
	EncryptionKeyFile string `mapstructure:"encryption_key_file"`
}

// Log sets the slog handler.
type Log struct {
	// Format is "json" or "text".
	Format string `mapstructure:"format"`
	// Level is "debug", "info", "warn" or "error".
	Level string `mapstructure:"level"`
}

// HTTP holds the limits of the HTTP server.
type HTTP struct {
	ReadTimeout       Duration `mapstructure:"read_timeout"`
	WriteTimeout      Duration `mapstructure:"write_timeout"`
	IdleTimeout       Duration `mapstructure:"idle_timeout"`
	ReadHeaderTimeout Duration `mapstructure:"read_header_timeout"`
	// MaxBodyBytes is the largest request body the server reads, in bytes.
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
	// ShutdownTimeout is how long a graceful shutdown waits for requests
	// in flight.
	ShutdownTimeout Duration `mapstructure:"shutdown_timeout"`
}

// Driver names accepted in storage.driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// GrantTypeTokenExchange is the RFC 8693 grant type, the default grant of
// every client.
const GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// Default returns a Config with every default that does not depend on
// another value. Load applies the rest: the SQLite DSN, the key file path,
// the per-issuer defaults and the per-client grant types.
func Default() *Config {
	return &Config{
		Listen:  "127.0.0.1:8080",
		Storage: Storage{Driver: DriverSQLite, Synchronous: "FULL"},
		Tokens: Tokens{
			MaxTTL:        Duration(15 * time.Minute),
			SigningAlg:    "ES256",
			SubjectLeeway: Duration(30 * time.Second),
		},
		DPoP:     DPoP{IATWindow: Duration(60 * time.Second), NonceLifetime: Duration(5 * time.Minute)},
		StepUp:   defaultStepUp(),
		WebAuthn: WebAuthn{RPDisplayName: "Sotto"},
		Admin:    defaultAdmin(),
		Log:      Log{Format: "json", Level: "info"},
		Audit:    Audit{CheckpointInterval: Duration(time.Hour)},
		HTTP: HTTP{
			ReadTimeout:       Duration(10 * time.Second),
			WriteTimeout:      Duration(10 * time.Second),
			IdleTimeout:       Duration(120 * time.Second),
			ReadHeaderTimeout: Duration(5 * time.Second),
			MaxBodyBytes:      64 << 10,
			ShutdownTimeout:   Duration(10 * time.Second),
		},

		Sessions: defaultSessions,
	}
}

// defaultAlgorithms are the JWS algorithms accepted from a trusted issuer
// that lists none.
var defaultAlgorithms = []string{"RS256", "ES256", "PS256", "ES384", "EdDSA"}

// LogValue implements slog.LogValuer with the settings an operator checks
// at start. It leaves out the encryption key, client secrets and the
// password of a PostgreSQL DSN.
func (c Config) LogValue() slog.Value {
	issuers := make([]string, len(c.TrustedIssuers))
	for i, ti := range c.TrustedIssuers {
		issuers[i] = ti.Issuer
	}
	return slog.GroupValue(
		slog.String("file", c.File),
		slog.String("issuer", c.Issuer),
		slog.String("listen", c.Listen),
		slog.Attr{Key: "storage", Value: c.Storage.LogValue()},
		slog.Any("trusted_issuers", issuers),
		slog.Int("clients", len(c.Clients)),
		slog.Int("actions", len(c.Actions)),
		slog.String("tokens_max_ttl", c.Tokens.MaxTTL.String()),
		slog.String("signing_alg", c.Tokens.SigningAlg),
		slog.Bool("encryption_key_from_env", c.Keys.EncryptionKey != ""),
		slog.String("encryption_key_file", c.Keys.EncryptionKeyFile),
	)
}

// String returns the same text as the slog value, so that printing a Config
// with %v or %s shows no secret.
func (c Config) String() string { return c.LogValue().String() }

// GoString returns the same as String, so that %#v shows no secret either.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with the password of the DSN hidden.
func (s Storage) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("driver", s.Driver),
		slog.String("dsn", redactDSN(s.DSN)),
		slog.String("synchronous", s.Synchronous),
	)
}

// String formats the storage settings with the password of the DSN hidden.
func (s Storage) String() string { return s.LogValue().String() }

// GoString returns the same as String, so that %#v hides the password too.
func (s Storage) GoString() string { return s.String() }

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactDSN hides the password of a PostgreSQL URL or key=value DSN.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.User != nil {
		dsn = u.Redacted()
	}
	if u, err := url.Parse(dsn); err == nil && u.RawQuery != "" {
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
			dsn = u.String()
		}
	}
	return dsnPassword.ReplaceAllString(dsn, "${1}xxxxx")
}
