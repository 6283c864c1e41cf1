package config

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// validConfig loads the test setup, which passes validation.
func validConfig(t *testing.T) *Config {
	t.Helper()
	return mustLoad(t, writeSetup(t, nil))
}

func confidentialClient() Client {
	return Client{ClientID: "connector", ClientSecret: "s", GrantTypes: []string{GrantTypeTokenExchange}}
}

func TestValidateRejects(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantKey string
	}{
		// Server.
		{"missing issuer", func(c *Config) { c.Issuer = "" }, "issuer"},
		{"issuer with trailing slash", func(c *Config) { c.Issuer = "https://a.example/" }, "issuer"},
		{"issuer with user information", func(c *Config) { c.Issuer = "https://u@a.example" }, "issuer"},
		{"issuer with empty query", func(c *Config) { c.Issuer = "https://a.example?" }, "issuer"},
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }, "listen"},
		{"listen with port out of range", func(c *Config) { c.Listen = ":70000" }, "listen"},
		{"unknown log format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
		{"unknown log level", func(c *Config) { c.Log.Level = "trace" }, "log.level"},

		// Storage.
		{"unknown storage driver", func(c *Config) { c.Storage.Driver = "mysql" }, "storage.driver"},
		{"postgres without dsn", func(c *Config) { c.Storage = Storage{Driver: DriverPostgres} }, "storage.dsn"},
		{"unknown sqlite synchronous", func(c *Config) { c.Storage.Synchronous = "OFF" }, "storage.synchronous"},
		{"sqlite file in missing folder", func(c *Config) { c.Storage.DSN = filepath.Join(c.Dir, "no/such/x.db") }, "storage.dsn"},

		// Trusted issuers.
		{"trusted issuer without issuer", func(c *Config) { c.TrustedIssuers[0].Issuer = "" }, "trusted_issuers[0].issuer"},
		{"trusted issuer on plain http", func(c *Config) { c.TrustedIssuers[0].Issuer = "http://sso.example" }, "trusted_issuers[0].issuer"},
		{"trusted issuer listed twice", func(c *Config) {
			ti := c.TrustedIssuers[0]
			ti.SubjectPrefix = "other"
			c.TrustedIssuers = append(c.TrustedIssuers, ti)
		}, "trusted_issuers[1].issuer"},
		{"neither jwks file nor uri", func(c *Config) { c.TrustedIssuers[0].JWKSFile = "" }, "trusted_issuers[0].jwks_file"},
		{"both jwks file and uri", func(c *Config) { c.TrustedIssuers[0].JWKSURI = "https://sso.example/jwks" }, "trusted_issuers[0].jwks_uri"},
		{"jwks uri on plain http", func(c *Config) {
			c.TrustedIssuers[0].JWKSFile = ""
			c.TrustedIssuers[0].JWKSURI = "http://sso.example/jwks"
		}, "trusted_issuers[0].jwks_uri"},
		{"jwks file missing", func(c *Config) { c.TrustedIssuers[0].JWKSFile = filepath.Join(c.Dir, "absent.json") }, "trusted_issuers[0].jwks_file"},
		{"jwks file is a folder", func(c *Config) { c.TrustedIssuers[0].JWKSFile = c.Dir }, "trusted_issuers[0].jwks_file"},
		{"missing audience", func(c *Config) { c.TrustedIssuers[0].Audience = "" }, "trusted_issuers[0].audience"},
		{"empty groups claim", func(c *Config) { c.TrustedIssuers[0].GroupsClaim = " " }, "trusted_issuers[0].groups_claim"},
		{"subject prefix with bar", func(c *Config) { c.TrustedIssuers[0].SubjectPrefix = "a|b" }, "trusted_issuers[0].subject_prefix"},
		{"empty subject prefix", func(c *Config) { c.TrustedIssuers[0].SubjectPrefix = "" }, "trusted_issuers[0].subject_prefix"},
		{"subject prefix used twice", func(c *Config) {
			ti := c.TrustedIssuers[0]
			ti.Issuer = "https://other.example"
			c.TrustedIssuers = append(c.TrustedIssuers, ti)
		}, "trusted_issuers[1].subject_prefix"},
		{"algorithm none", func(c *Config) { c.TrustedIssuers[0].Algorithms = []string{"none"} }, "trusted_issuers[0].algorithms[0]"},
		{"algorithm HS256", func(c *Config) { c.TrustedIssuers[0].Algorithms = []string{"ES256", "HS256"} }, "trusted_issuers[0].algorithms[1]"},
		{"unknown algorithm", func(c *Config) { c.TrustedIssuers[0].Algorithms = []string{"es256"} }, "trusted_issuers[0].algorithms[0]"},

		// Limits.
		{"zero max ttl", func(c *Config) { c.Tokens.MaxTTL = 0 }, "tokens.max_ttl"},
		{"negative subject leeway", func(c *Config) { c.Tokens.SubjectLeeway = -1 }, "tokens.subject_leeway"},
		{"symmetric signing alg", func(c *Config) { c.Tokens.SigningAlg = "HS256" }, "tokens.signing_alg"},
		{"zero dpop iat window", func(c *Config) { c.DPoP.IATWindow = 0 }, "dpop.iat_window"},
		{"zero read timeout", func(c *Config) { c.HTTP.ReadTimeout = 0 }, "http.read_timeout"},
		{"zero write timeout", func(c *Config) { c.HTTP.WriteTimeout = 0 }, "http.write_timeout"},
		{"zero idle timeout", func(c *Config) { c.HTTP.IdleTimeout = 0 }, "http.idle_timeout"},
		{"zero read header timeout", func(c *Config) { c.HTTP.ReadHeaderTimeout = 0 }, "http.read_header_timeout"},
		{"zero shutdown timeout", func(c *Config) { c.HTTP.ShutdownTimeout = 0 }, "http.shutdown_timeout"},
		{"zero max body bytes", func(c *Config) { c.HTTP.MaxBodyBytes = 0 }, "http.max_body_bytes"},

		// Keys.
		{"encryption key not base64", func(c *Config) { c.Keys.EncryptionKey = "not base64!" }, "keys.encryption_key"},
		{"encryption key of 16 bytes", func(c *Config) { c.Keys.EncryptionKey = "AAECAwQFBgcICQoLDA0ODw==" }, "keys.encryption_key"},
		{"missing key file path", func(c *Config) { c.Keys.EncryptionKeyFile = "" }, "keys.encryption_key_file"},

		// Files.
		{"missing clients file", func(c *Config) { c.ClientsFile = "" }, "clients_file"},
		{"missing catalog file", func(c *Config) { c.CatalogFile = "" }, "catalog_file"},

		// Clients.
		{"client without client_id", func(c *Config) { c.Clients[0].ClientID = "" }, "clients[0].client_id"},
		{"client_id with non-ASCII", func(c *Config) { c.Clients[0].ClientID = "café" }, "clients[0].client_id"},
		{"client_id used twice", func(c *Config) { c.Clients = append(c.Clients, c.Clients[0]) }, "clients[1].client_id"},
		{"public client with secret", func(c *Config) { c.Clients[0].ClientSecret = "s" }, "clients[0].client_secret"},
		{"public client with hash", func(c *Config) { c.Clients[0].ClientSecretHash = string(hash) }, "clients[0].client_secret_hash"},
		{"confidential client without credentials", func(c *Config) {
			c.Clients[0].Public = false
		}, "clients[0].client_secret_hash"},
		{"confidential client with secret and hash", func(c *Config) {
			cl := confidentialClient()
			cl.ClientSecretHash = string(hash)
			c.Clients = append(c.Clients, cl)
		}, "clients[1].client_secret"},
		{"hash that is not bcrypt", func(c *Config) {
			cl := confidentialClient()
			cl.ClientSecret, cl.ClientSecretHash = "", "$1$abc$def"
			c.Clients = append(c.Clients, cl)
		}, "clients[1].client_secret_hash"},
		{"bcrypt prefix with broken cost", func(c *Config) {
			cl := confidentialClient()
			cl.ClientSecret, cl.ClientSecretHash = "", "$2b$xx$"+strings.Repeat("a", 53)
			c.Clients = append(c.Clients, cl)
		}, "clients[1].client_secret_hash"},
		{"unknown grant type", func(c *Config) { c.Clients[0].GrantTypes = []string{"password"} }, "clients[0].grant_types[0]"},
		{"client credentials on public client", func(c *Config) {
			c.Clients[0].GrantTypes = []string{GrantTypeTokenExchange, GrantTypeClientCredentials}
		}, "clients[0].grant_types[1]"},
		{"client audience with space", func(c *Config) { c.Clients[0].Audiences = []string{"a b"} }, "clients[0].audiences[0]"},

		// Actions.
		{"action without scope", func(c *Config) { c.Actions[0].Scope = "" }, "actions[0].scope"},
		{"scope with space", func(c *Config) { c.Actions[0].Scope = "ticket create" }, "actions[0].scope"},
		{"scope with double quote", func(c *Config) { c.Actions[0].Scope = `ticket"create` }, "actions[0].scope"},
		{"scope with backslash", func(c *Config) { c.Actions[0].Scope = `ticket\create` }, "actions[0].scope"},
		{"scope used twice", func(c *Config) { c.Actions = append(c.Actions, c.Actions[0]) }, "actions[1].scope"},
		{"action without description", func(c *Config) { c.Actions[0].Description = "" }, "actions[0].description"},
		{"action without audiences", func(c *Config) { c.Actions[0].Audiences = nil }, "actions[0].audiences"},
		{"audience on plain http", func(c *Config) { c.Actions[0].Audiences = []string{"http://itsm.example"} }, "actions[0].audiences[0]"},
		{"audience URL without host", func(c *Config) { c.Actions[0].Audiences = []string{"https:///path"} }, "actions[0].audiences[0]"},
		{"audience URL with fragment", func(c *Config) { c.Actions[0].Audiences = []string{"https://itsm.example#x"} }, "actions[0].audiences[0]"},
		{"audience with other scheme URL", func(c *Config) { c.Actions[0].Audiences = []string{"ftp://itsm.example"} }, "actions[0].audiences[0]"},
		{"empty audience", func(c *Config) { c.Actions[0].Audiences = []string{""} }, "actions[0].audiences[0]"},
		{"audience with space", func(c *Config) { c.Actions[0].Audiences = []string{"itsm prod"} }, "actions[0].audiences[0]"},
		{"zero action max ttl", func(c *Config) { c.Actions[0].MaxTTL = 0 }, "actions[0].max_ttl"},
		{"negative action max ttl", func(c *Config) { c.Actions[0].MaxTTL = -1 }, "actions[0].max_ttl"},
		{"unknown step up", func(c *Config) { c.Actions[0].StepUp = "sms" }, "actions[0].step_up"},
		{"empty group", func(c *Config) { c.Actions[0].Groups = []string{"employees", ""} }, "actions[0].groups[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(c)
			ps := problemsOf(t, c.Validate())
			if _, ok := findProblem(ps, tt.wantKey); !ok {
				t.Errorf("no problem at %s in:\n%s", tt.wantKey, listProblems(ps))
			}
			if len(ps) != 1 {
				t.Errorf("got %d problems, want 1:\n%s", len(ps), listProblems(ps))
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"issuer with path", func(c *Config) { c.Issuer = "https://corp.example/auth/sotto" }},
		{"listen on all interfaces", func(c *Config) { c.Listen = ":8443" }},
		{"postgres with dsn", func(c *Config) {
			c.Storage = Storage{Driver: DriverPostgres, DSN: "postgres://sotto@db.internal/sotto"}
		}},
		{"jwks uri on https", func(c *Config) {
			c.TrustedIssuers[0].JWKSFile = ""
			c.TrustedIssuers[0].JWKSURI = "https://sso.corp.example/keys"
		}},
		{"jwks uri on loopback http", func(c *Config) {
			c.TrustedIssuers[0].JWKSFile = ""
			c.TrustedIssuers[0].JWKSURI = "http://localhost:9000/keys"
		}},
		{"every asymmetric algorithm", func(c *Config) {
			c.TrustedIssuers[0].Algorithms = append([]string(nil), asymmetricAlgorithms...)
		}},
		{"zero subject leeway", func(c *Config) { c.Tokens.SubjectLeeway = 0 }},
		{"encryption key in url base64 without padding", func(c *Config) {
			c.Keys.EncryptionKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
		}},
		{"confidential client with bcrypt hash", func(c *Config) {
			cl := confidentialClient()
			cl.ClientSecret, cl.ClientSecretHash = "", string(hash)
			cl.GrantTypes = []string{GrantTypeClientCredentials}
			c.Clients = append(c.Clients, cl)
		}},
		{"every grant type on confidential client", func(c *Config) {
			cl := confidentialClient()
			cl.GrantTypes = append([]string(nil), knownGrantTypes...)
			cl.RedirectURIs = []string{"https://app.corp.example/callback"}
			c.Clients = append(c.Clients, cl)
			c.Login = Login{Issuer: c.TrustedIssuers[0].Issuer, ClientID: "sotto", ClientSecret: "s",
				Scopes: []string{"openid"}, GroupsClaim: "groups"}
		}},
		{"urn audience", func(c *Config) { c.Actions[0].Audiences = []string{"urn:corp:itsm"} }},
		{"plain name audience", func(c *Config) { c.Actions[0].Audiences = []string{"itsm"} }},
		{"loopback http audience", func(c *Config) { c.Actions[0].Audiences = []string{"http://127.0.0.1:9000"} }},
		{"scope with every allowed punctuation", func(c *Config) { c.Actions[0].Scope = "a!#$%&'()*+,-./:;<=>?@[]^_`{|}~" }},
		{"every step up", func(c *Config) {
			for _, s := range stepUps {
				a := c.Actions[0]
				a.Scope, a.StepUp = "scope:"+s, s
				c.Actions = append(c.Actions, a)
			}
		}},
		{"no clients or actions", func(c *Config) { c.Clients, c.Actions = nil, nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate error:\n%v", err)
			}
		})
	}
}

func TestValidateDoesNotChangeConfig(t *testing.T) {
	c := validConfig(t)
	c.Actions[0].MaxTTL = c.Tokens.MaxTTL * 2
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate error: %v", err)
	}
	if got, want := c.Actions[0].MaxTTL, c.Tokens.MaxTTL*2; got != want {
		t.Errorf("Actions[0].MaxTTL = %v after Validate, want it unchanged at %v", got, want)
	}
}

func TestDecodeEncryptionKey(t *testing.T) {
	tests := []struct {
		name    string
		key     Secret
		wantLen int
		wantErr bool
	}{
		{"empty key", "", 0, false},
		{"standard base64", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 32, false},
		{"url base64 with dash", "-_8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 32, false},
		{"short key", "AAECAwQFBgcICQoLDA0ODw==", 0, true},
		{"not base64", "***", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := Keys{EncryptionKey: tt.key}.DecodeEncryptionKey()
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if len(key) != tt.wantLen {
				t.Errorf("len(key) = %d, want %d", len(key), tt.wantLen)
			}
		})
	}
}
