package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadExample(t *testing.T) {
	c := mustLoad(t, "../examples/sotto.yaml")
	dir, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}

	if got, want := c.Issuer, "http://127.0.0.1:8080"; got != want {
		t.Errorf("Issuer = %q, want %q", got, want)
	}
	if got, want := len(c.Clients), 2; got != want {
		t.Errorf("len(Clients) = %d, want %d", got, want)
	}
	if got, want := len(c.Actions), 4; got != want {
		t.Errorf("len(Actions) = %d, want %d", got, want)
	}
	paths := []struct{ name, got, want string }{
		{"Dir", c.Dir, dir},
		{"File", c.File, filepath.Join(dir, "sotto.yaml")},
		{"Storage.DSN", c.Storage.DSN, filepath.Join(dir, "sotto.db")},
		{"ClientsFile", c.ClientsFile, filepath.Join(dir, "clients.yaml")},
		{"CatalogFile", c.CatalogFile, filepath.Join(dir, "catalog.yaml")},
		{"TrustedIssuers[0].JWKSFile", c.TrustedIssuers[0].JWKSFile, filepath.Join(dir, "idp.jwks.json")},
		{"Keys.EncryptionKeyFile", c.Keys.EncryptionKeyFile, filepath.Join(dir, "sotto.kek")},
	}
	for _, p := range paths {
		if p.got != p.want {
			t.Errorf("%s = %q, want %q", p.name, p.got, p.want)
		}
	}
	if got, want := c.TrustedIssuers[0].SubjectPrefix, "sso.corp.example"; got != want {
		t.Errorf("SubjectPrefix = %q, want %q", got, want)
	}
	if got, want := c.Actions[2].StepUp, StepUpPasskey; got != want {
		t.Errorf("Actions[2].StepUp = %q, want %q", got, want)
	}
	if got, want := c.Actions[1].StepUp, StepUpNone; got != want {
		t.Errorf("Actions[1].StepUp = %q, want default %q", got, want)
	}
	if !slices.ContainsFunc(c.Warnings, func(w string) bool { return strings.Contains(w, "plaintext") }) {
		t.Errorf("Warnings = %q, want one about the plaintext client_secret", c.Warnings)
	}
}

// afterAudience returns testMain with lines added to its trusted issuer.
func afterAudience(lines string) string {
	return strings.Replace(testMain, "    audience: sotto\n", "    audience: sotto\n"+lines, 1)
}

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, writeSetup(t, nil))

	checks := []struct {
		name      string
		got, want any
	}{
		{"Listen", c.Listen, "127.0.0.1:8080"},
		{"Storage.Driver", c.Storage.Driver, DriverSQLite},
		{"Storage.DSN", c.Storage.DSN, filepath.Join(c.Dir, "sotto.db")},
		{"Storage.Synchronous", c.Storage.Synchronous, "FULL"},
		{"Tokens.MaxTTL", c.Tokens.MaxTTL, Duration(15 * time.Minute)},
		{"Tokens.SigningAlg", c.Tokens.SigningAlg, "ES256"},
		{"Tokens.SubjectLeeway", c.Tokens.SubjectLeeway, Duration(30 * time.Second)},
		{"DPoP.IATWindow", c.DPoP.IATWindow, Duration(60 * time.Second)},
		{"Log.Format", c.Log.Format, "json"},
		{"Log.Level", c.Log.Level, "info"},
		{"HTTP.ReadTimeout", c.HTTP.ReadTimeout, Duration(10 * time.Second)},
		{"HTTP.WriteTimeout", c.HTTP.WriteTimeout, Duration(10 * time.Second)},
		{"HTTP.IdleTimeout", c.HTTP.IdleTimeout, Duration(120 * time.Second)},
		{"HTTP.ReadHeaderTimeout", c.HTTP.ReadHeaderTimeout, Duration(5 * time.Second)},
		{"HTTP.MaxBodyBytes", c.HTTP.MaxBodyBytes, int64(65536)},
		{"HTTP.ShutdownTimeout", c.HTTP.ShutdownTimeout, Duration(10 * time.Second)},
		{"GroupsClaim", c.TrustedIssuers[0].GroupsClaim, "groups"},
		{"Algorithms", strings.Join(c.TrustedIssuers[0].Algorithms, ","), "RS256,ES256,PS256,ES384,EdDSA"},
		{"Clients[0].GrantTypes", strings.Join(c.Clients[0].GrantTypes, ","), ""},
		{"Keys.EncryptionKeyFile", c.Keys.EncryptionKeyFile, filepath.Join(c.Dir, "sotto.kek")},
	}
	for _, check := range checks {
		if check.got != check.want {
			t.Errorf("%s = %v, want %v", check.name, check.got, check.want)
		}
	}
}

func TestLoadEnvironmentOverrides(t *testing.T) {
	key := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // bytes 0 to 31
	stateDB := filepath.Join(t.TempDir(), "state.db")
	tests := []struct {
		name  string
		env   map[string]string
		check func(c *Config) (got, want any)
	}{
		{
			name:  "storage dsn from environment wins over file",
			env:   map[string]string{"SOTTO_STORAGE_DSN": stateDB},
			check: func(c *Config) (any, any) { return c.Storage.DSN, stateDB },
		},
		{
			name:  "relative storage dsn from environment is resolved",
			env:   map[string]string{"SOTTO_STORAGE_DSN": "data/s.db"},
			check: func(c *Config) (any, any) { return c.Storage.DSN, filepath.Join(c.Dir, "data/s.db") },
		},
		{
			name:  "max ttl from environment",
			env:   map[string]string{"SOTTO_TOKENS_MAX_TTL": "10m"},
			check: func(c *Config) (any, any) { return c.Tokens.MaxTTL, Duration(10 * time.Minute) },
		},
		{
			name:  "issuer from environment replaces file value",
			env:   map[string]string{"SOTTO_ISSUER": "https://auth.corp.example/sotto/"},
			check: func(c *Config) (any, any) { return c.Issuer, "https://auth.corp.example/sotto" },
		},
		{
			name:  "integer from environment",
			env:   map[string]string{"SOTTO_HTTP_MAX_BODY_BYTES": "1024"},
			check: func(c *Config) (any, any) { return c.HTTP.MaxBodyBytes, int64(1024) },
		},
		{
			name:  "encryption key from environment",
			env:   map[string]string{"SOTTO_KEYS_ENCRYPTION_KEY": key},
			check: func(c *Config) (any, any) { return string(c.Keys.EncryptionKey), key },
		},
		{
			name:  "log level from environment is lower-cased",
			env:   map[string]string{"SOTTO_LOG_LEVEL": "DEBUG"},
			check: func(c *Config) (any, any) { return c.Log.Level, "debug" },
		},
		{
			name: "postgres from environment puts key file beside config",
			env: map[string]string{
				"SOTTO_STORAGE_DRIVER": "postgres",
				"SOTTO_STORAGE_DSN":    "postgres://sotto:pw@db.internal/sotto",
			},
			check: func(c *Config) (any, any) { return c.Keys.EncryptionKeyFile, filepath.Join(c.Dir, "sotto.kek") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, value := range tt.env {
				t.Setenv(name, value)
			}
			c := mustLoad(t, writeSetup(t, map[string]string{
				"sotto.yaml": testMain + "storage:\n  dsn: file.db\ntokens:\n  max_ttl: 20m\n",
				"data/keep":  "a file, so that the data folder exists",
			}))
			if got, want := tt.check(c); got != want {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestLoadEnvironmentProblemNamesVariable(t *testing.T) {
	t.Setenv("SOTTO_TOKENS_MAX_TTL", "ten minutes")
	t.Setenv("SOTTO_LOG_FORMAT", "xml")
	ps := loadProblems(t, writeSetup(t, nil))

	for key, want := range map[string]string{
		"tokens.max_ttl": "environment variable SOTTO_TOKENS_MAX_TTL",
		"log.format":     "environment variable SOTTO_LOG_FORMAT",
	} {
		p, ok := findProblem(ps, key)
		if !ok {
			t.Errorf("no problem at %s in:\n%s", key, listProblems(ps))
			continue
		}
		if p.File != want {
			t.Errorf("%s: File = %q, want %q", key, p.File, want)
		}
	}
}

func TestLoadUnknownKeys(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content string
		wantKey string
	}{
		{"top-level key in config file", "sotto.yaml", testMain + "listen_addr: :8080\n", "listen_addr"},
		{"nested key in config file", "sotto.yaml", testMain + "storage:\n  path: x.db\n", "storage.path"},
		{"key in a trusted issuer", "sotto.yaml", afterAudience("    jwks_url: https://x.example\n"), "trusted_issuers[0].jwks_url"},
		{"clients list in config file", "sotto.yaml", testMain + "clients: []\n", "clients"},
		{"key in a client", "clients.yaml", testClients + "    secret: s3cr3t\n", "clients[0].secret"},
		{"top-level key in clients file", "clients.yaml", testClients + "client: {}\n", "client"},
		{"key in an action", "catalog.yaml", testCatalog + "    stepup: push\n", "actions[0].stepup"},
		{"top-level key in catalog file", "catalog.yaml", "action: []\n" + testCatalog, "action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeSetup(t, map[string]string{tt.file: tt.content})
			ps := loadProblems(t, path)
			p, ok := findProblem(ps, tt.wantKey)
			if !ok {
				t.Fatalf("no problem at %s in:\n%s", tt.wantKey, listProblems(ps))
			}
			if got, want := filepath.Base(p.File), tt.file; got != want {
				t.Errorf("File = %q, want %q", got, want)
			}
			if !strings.Contains(p.Expected, "known key") {
				t.Errorf("Expected = %q, want it to ask for a known key", p.Expected)
			}
			if len(ps) != 1 {
				t.Errorf("got %d problems, want 1:\n%s", len(ps), listProblems(ps))
			}
		})
	}
}

func TestLoadWrongTypes(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content string
		wantKey string
	}{
		{"list for a string", "sotto.yaml", testMain + "listen: [1]\n", "listen"},
		{"mapping for a string", "sotto.yaml", testMain + "listen: {a: 1}\n", "listen"},
		{"scalar for a mapping", "sotto.yaml", testMain + "storage: 5\n", "storage"},
		{"bare number for a duration", "sotto.yaml", testMain + "tokens:\n  max_ttl: 300\n", "tokens.max_ttl"},
		{"word for an integer", "sotto.yaml", testMain + "http:\n  max_body_bytes: lots\n", "http.max_body_bytes"},
		{"scalar for a trusted issuer", "sotto.yaml", afterAudience("  - 7\n"), "trusted_issuers[1]"},
		{"list for a boolean", "clients.yaml", testClients + "    name: [a]\n", "clients[0].name"},
		{"bare number for an action ttl", "catalog.yaml", strings.Replace(testCatalog, "5m", "300", 1), "actions[0].max_ttl"},
		{"word for an action ttl", "catalog.yaml", strings.Replace(testCatalog, "5m", "five", 1), "actions[0].max_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := loadProblems(t, writeSetup(t, map[string]string{tt.file: tt.content}))
			if _, ok := findProblem(ps, tt.wantKey); !ok {
				t.Fatalf("no problem at %s in:\n%s", tt.wantKey, listProblems(ps))
			}
			if len(ps) != 1 {
				t.Errorf("got %d problems, want 1:\n%s", len(ps), listProblems(ps))
			}
		})
	}
}

func TestLoadYAMLSyntaxError(t *testing.T) {
	broken := "a: b\n c: d\n"
	for _, file := range []string{"sotto.yaml", "clients.yaml", "catalog.yaml"} {
		t.Run(file, func(t *testing.T) {
			ps := loadProblems(t, writeSetup(t, map[string]string{file: broken}))
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1:\n%s", len(ps), listProblems(ps))
			}
			if got := filepath.Base(ps[0].File); got != file {
				t.Errorf("File = %q, want %q", got, file)
			}
			if !strings.Contains(ps[0].Expected, "line 2") {
				t.Errorf("Expected = %q, want the line number 2", ps[0].Expected)
			}
		})
	}
}

func TestLoadMissingConfigFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got error %v, want one wrapping fs.ErrNotExist", err)
	}
}

func TestLoadMissingClientsFileKeepsOtherProblems(t *testing.T) {
	path := writeSetup(t, map[string]string{
		"clients.yaml": "",
		"catalog.yaml": "actions:\n  - scope: a b\n    description: x\n    audiences: [x]\n    max_ttl: 1m\n",
	})
	ps := loadProblems(t, path)

	if len(ps) != 2 {
		t.Fatalf("got %d problems, want 2:\n%s", len(ps), listProblems(ps))
	}
	if got := filepath.Base(ps[0].File); got != "clients.yaml" || ps[0].Key != "" {
		t.Errorf("first problem = %v, want one for the whole clients.yaml", ps[0])
	}
	if _, ok := findProblem(ps, "actions[0].scope"); !ok {
		t.Errorf("no problem at actions[0].scope in:\n%s", listProblems(ps))
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	path := writeSetup(t, map[string]string{
		"sotto.yaml": `issuer: http://sotto.corp.example/?x=1
listen: nowhere
trusted_issuers:
  - issuer: https://sso.corp.example
    audience: ""
    algorithms: [HS256]
clients_file: clients.yaml
catalog_file: catalog.yaml
tokens:
  signing_alg: RS1
bogus: 1
`,
		"clients.yaml": "clients:\n  - client_id: c\n  - client_id: c\n    public: true\n",
		"catalog.yaml": "actions:\n  - scope: x\n    max_ttl: 0s\n",
	})
	ps := loadProblems(t, path)

	wantKeys := []string{
		"bogus",
		"issuer",
		"listen",
		"trusted_issuers[0].jwks_file",
		"trusted_issuers[0].audience",
		"trusted_issuers[0].algorithms[0]",
		"tokens.signing_alg",
		"clients[0].client_secret_hash",
		"clients[1].client_id",
		"actions[0].description",
		"actions[0].audiences",
		"actions[0].max_ttl",
	}
	if len(ps) != len(wantKeys) {
		t.Errorf("got %d problems, want %d:\n%s", len(ps), len(wantKeys), listProblems(ps))
	}
	for _, key := range wantKeys {
		if _, ok := findProblem(ps, key); !ok {
			t.Errorf("no problem at %s", key)
		}
	}
}

func TestLoadIssuer(t *testing.T) {
	tests := []struct {
		name    string
		issuer  string
		want    string
		wantErr bool
	}{
		{"trailing slash is removed", "https://sotto.corp.example/", "https://sotto.corp.example", false},
		{"path is kept", "https://corp.example/auth/sotto/", "https://corp.example/auth/sotto", false},
		{"http on 127.0.0.1 is allowed", "http://127.0.0.1:8080", "http://127.0.0.1:8080", false},
		{"http on other loopback address is allowed", "http://127.8.9.10", "http://127.8.9.10", false},
		{"http on ipv6 loopback is allowed", "http://[::1]:8080", "http://[::1]:8080", false},
		{"http on localhost is allowed", "http://localhost:8080", "http://localhost:8080", false},
		{"http on non-loopback host is rejected", "http://sotto.corp.example", "", true},
		{"http on private address is rejected", "http://10.0.0.1", "", true},
		{"query is rejected", "https://sotto.corp.example?tenant=a", "", true},
		{"fragment is rejected", "https://sotto.corp.example#a", "", true},
		{"relative URL is rejected", "sotto.corp.example", "", true},
		{"other scheme is rejected", "ftp://sotto.corp.example", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SOTTO_ISSUER", tt.issuer)
			c, err := Load(writeSetup(t, nil))
			if tt.wantErr {
				ps := problemsOf(t, err)
				if _, ok := findProblem(ps, "issuer"); !ok || len(ps) != 1 {
					t.Errorf("got problems:\n%s\nwant one at issuer", listProblems(ps))
				}
				return
			}
			if err != nil {
				t.Fatalf("Load error: %v", err)
			}
			if c.Issuer != tt.want {
				t.Errorf("Issuer = %q, want %q", c.Issuer, tt.want)
			}
		})
	}
}

func TestLoadSQLitePaths(t *testing.T) {
	tests := []struct {
		name        string
		dsn         string
		files       map[string]string
		wantDSN     func(dir string) string
		wantKeyFile func(dir string) string
	}{
		{
			name:        "relative file beside config",
			dsn:         "data/sotto.db",
			files:       map[string]string{"data/keep": "a file, so that the data folder exists"},
			wantDSN:     func(dir string) string { return filepath.Join(dir, "data/sotto.db") },
			wantKeyFile: func(dir string) string { return filepath.Join(dir, "data/sotto.kek") },
		},
		{
			name: "file prefix and query are kept",
			dsn:  "file:sotto.db?_pragma=busy_timeout(5000)",
			wantDSN: func(dir string) string {
				return "file:" + filepath.Join(dir, "sotto.db") + "?_pragma=busy_timeout(5000)"
			},
			wantKeyFile: func(dir string) string { return filepath.Join(dir, "sotto.kek") },
		},
		{
			name:        "in-memory database is unchanged",
			dsn:         ":memory:",
			wantDSN:     func(string) string { return ":memory:" },
			wantKeyFile: func(dir string) string { return filepath.Join(dir, "sotto.kek") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SOTTO_STORAGE_DSN", tt.dsn)
			c := mustLoad(t, writeSetup(t, tt.files))
			if got, want := c.Storage.DSN, tt.wantDSN(c.Dir); got != want {
				t.Errorf("DSN = %q, want %q", got, want)
			}
			if got, want := c.Keys.EncryptionKeyFile, tt.wantKeyFile(c.Dir); got != want {
				t.Errorf("EncryptionKeyFile = %q, want %q", got, want)
			}
		})
	}
}

func TestLoadExplicitKeyFileIsResolved(t *testing.T) {
	c := mustLoad(t, writeSetup(t, map[string]string{
		"sotto.yaml": testMain + "keys:\n  encryption_key_file: secrets.kek\n",
	}))
	if got, want := c.Keys.EncryptionKeyFile, filepath.Join(c.Dir, "secrets.kek"); got != want {
		t.Errorf("EncryptionKeyFile = %q, want %q", got, want)
	}
}

func TestLoadKeyFileInMissingFolder(t *testing.T) {
	ps := loadProblems(t, writeSetup(t, map[string]string{
		"sotto.yaml": testMain + "keys:\n  encryption_key_file: nowhere/sotto.kek\n",
	}))
	if _, ok := findProblem(ps, "keys.encryption_key_file"); !ok || len(ps) != 1 {
		t.Errorf("got problems:\n%s\nwant one at keys.encryption_key_file", listProblems(ps))
	}
}

func TestLoadClampsActionMaxTTL(t *testing.T) {
	t.Setenv("SOTTO_TOKENS_MAX_TTL", "3m")
	c := mustLoad(t, writeSetup(t, nil))

	if got, want := c.Actions[0].MaxTTL, Duration(3*time.Minute); got != want {
		t.Errorf("Actions[0].MaxTTL = %v, want %v", got, want)
	}
	if !slices.ContainsFunc(c.Warnings, func(w string) bool { return strings.Contains(w, "clamped") }) {
		t.Errorf("Warnings = %q, want one about the clamped max_ttl", c.Warnings)
	}
}

func TestLoadKeepsActionMaxTTLBelowServerMax(t *testing.T) {
	c := mustLoad(t, writeSetup(t, nil))
	if got, want := c.Actions[0].MaxTTL, Duration(5*time.Minute); got != want {
		t.Errorf("Actions[0].MaxTTL = %v, want %v", got, want)
	}
	if slices.ContainsFunc(c.Warnings, func(w string) bool { return strings.Contains(w, "clamped") }) {
		t.Errorf("Warnings = %q, want none about clamping", c.Warnings)
	}
}

func TestLoadClients(t *testing.T) {
	path := filepath.Join(filepath.Dir(writeSetup(t, nil)), "clients.yaml")
	clients, err := LoadClients(path)
	if err != nil {
		t.Fatalf("LoadClients error: %v", err)
	}
	if len(clients) != 1 || clients[0].ClientID != "voice-assistant" || !clients[0].RequireDPoP {
		t.Errorf("got %+v, want the one voice-assistant client with require_dpop", clients)
	}

	bad := filepath.Join(filepath.Dir(writeSetup(t, map[string]string{
		"clients.yaml": "clients:\n  - client_id: a\n    typo: 1\n",
	})), "clients.yaml")
	ps := problemsOf(t, func() error { _, err := LoadClients(bad); return err }())
	if _, ok := findProblem(ps, "clients[0].typo"); !ok {
		t.Errorf("no problem at clients[0].typo in:\n%s", listProblems(ps))
	}
}

func TestLoadCatalog(t *testing.T) {
	path := filepath.Join(filepath.Dir(writeSetup(t, nil)), "catalog.yaml")
	actions, err := LoadCatalog(path)
	if err != nil {
		t.Fatalf("LoadCatalog error: %v", err)
	}
	if len(actions) != 1 || actions[0].MaxTTL != Duration(5*time.Minute) {
		t.Errorf("got %+v, want one action with max_ttl 5m", actions)
	}

	ps := problemsOf(t, func() error { _, err := LoadCatalog(path + ".absent"); return err }())
	if len(ps) != 1 || ps[0].Key != "" {
		t.Errorf("got problems:\n%s\nwant one for the whole file", listProblems(ps))
	}
}

func TestUnknownEnvNames(t *testing.T) {
	environ := []string{
		"SOTTO_LISTEN=127.0.0.1:1",
		"SOTTO_LISTN=x",
		"SOTTO_CONFIG=/etc/sotto.yaml",
		"SOTTO_TEST_POSTGRES_DSN=postgres://x",
		"SOTTO_STORAGE_DSN=a.db",
		"PATH=/bin",
		"SOTTO_TOKENS_MAXTTL=5m",
	}
	got := strings.Join(unknownEnvNames(environ), ",")
	if want := "SOTTO_LISTN,SOTTO_TOKENS_MAXTTL"; got != want {
		t.Errorf("unknownEnvNames = %q, want %q", got, want)
	}
}
