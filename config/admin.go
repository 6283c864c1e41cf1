package config

import (
	"os"
	"slices"
	"strings"
	"time"
)

// Admin API scopes. An admin client requests them with the
// client_credentials grant, and each admin endpoint requires one.
const (
	ScopeCatalogRead  = "sotto:catalog:read"
	ScopeCatalogWrite = "sotto:catalog:write"
	ScopeAuditRead    = "sotto:audit:read"
	ScopeRevoke       = "sotto:revoke"
	ScopeDevices      = "sotto:devices"
	ScopeClients      = "sotto:clients"
)

// AdminScopes lists every admin scope.
var AdminScopes = []string{
	ScopeCatalogRead, ScopeCatalogWrite, ScopeAuditRead, ScopeRevoke, ScopeDevices, ScopeClients,
}

// Admin sets the admin API and its bootstrap client.
type Admin struct {
	// BootstrapClientID names an admin client with every admin scope that
	// is created on the first start, when no stored client has that id,
	// so a new installation can be administered before any client is
	// registered through the API.
	BootstrapClientID string `mapstructure:"bootstrap_client_id"`
	// BootstrapClientSecretHash is the bcrypt hash of its secret.
	BootstrapClientSecretHash string `mapstructure:"bootstrap_client_secret_hash"`
	// BootstrapClientSecretFile is a file whose content (without a
	// trailing newline) is its secret. Exactly one of the two is set.
	BootstrapClientSecretFile string `mapstructure:"bootstrap_client_secret_file"`
	// TokenTTL is the lifetime of an admin access token.
	TokenTTL Duration `mapstructure:"token_ttl"`
	// PollInterval is how often a server reads the catalog and client
	// revisions to pick up changes made through another server.
	PollInterval Duration `mapstructure:"poll_interval"`
}

func defaultAdmin() Admin {
	return Admin{TokenTTL: Duration(5 * time.Minute), PollInterval: Duration(500 * time.Millisecond)}
}

// MaxAdminTokenTTL is the longest admin.token_ttl.
const MaxAdminTokenTTL = Duration(time.Hour)

func (c *Config) validateAdmin(ps *problems) {
	// admin_listen itself is checked by validateAudit.
	if c.Admin.TokenTTL <= 0 || c.Admin.TokenTTL > MaxAdminTokenTTL {
		ps.add(c.fileFor("admin.token_ttl"), "admin.token_ttl", c.Admin.TokenTTL.String(),
			"a duration greater than 0 and at most 1h, such as 5m")
	}
	if c.Admin.PollInterval <= 0 || c.Admin.PollInterval > Duration(time.Minute) {
		ps.add(c.fileFor("admin.poll_interval"), "admin.poll_interval", c.Admin.PollInterval.String(),
			"a duration greater than 0 and at most 1m, such as 1s")
	}

	a := c.Admin
	hasHash, hasFile := a.BootstrapClientSecretHash != "", a.BootstrapClientSecretFile != ""
	switch {
	case a.BootstrapClientID == "" && (hasHash || hasFile):
		ps.add(c.fileFor("admin.bootstrap_client_id"), "admin.bootstrap_client_id", "",
			"the client_id of the bootstrap admin client, since its secret is set")
	case a.BootstrapClientID != "" && !isVSChars(a.BootstrapClientID):
		ps.add(c.fileFor("admin.bootstrap_client_id"), "admin.bootstrap_client_id", a.BootstrapClientID,
			"printable ASCII characters only (RFC 6749, Appendix A.1)")
	case a.BootstrapClientID != "" && hasHash == hasFile:
		ps.add(c.fileFor("admin.bootstrap_client_secret_hash"), "admin.bootstrap_client_secret_hash", "",
			"exactly one of bootstrap_client_secret_hash and bootstrap_client_secret_file")
	}
	if hasHash && !validBcryptHash(a.BootstrapClientSecretHash) {
		ps.add(c.fileFor("admin.bootstrap_client_secret_hash"), "admin.bootstrap_client_secret_hash", redacted,
			"a bcrypt hash starting with $2a$, $2b$ or $2y$")
	}
	if hasFile {
		if b, err := os.ReadFile(a.BootstrapClientSecretFile); err != nil {
			ps.add(c.fileFor("admin.bootstrap_client_secret_file"), "admin.bootstrap_client_secret_file",
				a.BootstrapClientSecretFile, "a readable file with the secret: "+readError(err))
		} else if len(strings.TrimRight(string(b), "\r\n")) < 16 {
			ps.add(c.fileFor("admin.bootstrap_client_secret_file"), "admin.bootstrap_client_secret_file",
				a.BootstrapClientSecretFile, "a secret of at least 16 characters in the file")
		}
	}
}

// BootstrapSecret returns the secret in admin.bootstrap_client_secret_file
// without a trailing newline, or "" when the file is not set.
func (a Admin) BootstrapSecret() (Secret, error) {
	if a.BootstrapClientSecretFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(a.BootstrapClientSecretFile)
	if err != nil {
		return "", err
	}
	return Secret(strings.TrimRight(string(b), "\r\n")), nil
}

// validateAdminScopes checks that a client's admin_scopes are known and
// that the client can use them: admin tokens come only from the
// client_credentials grant, which is for confidential clients (RFC 6749,
// Section 4.4).
func validateAdminScopes(ps *problems, path, key string, cl Client) {
	for j, s := range cl.AdminScopes {
		if !slices.Contains(AdminScopes, s) {
			ps.add(path, indexKey(key+".admin_scopes", j), s, "one of "+strings.Join(AdminScopes, ", "))
		}
	}
	if len(cl.AdminScopes) > 0 && !slices.Contains(cl.GrantTypes, GrantTypeClientCredentials) {
		ps.add(path, key+".grant_types", strings.Join(cl.GrantTypes, ","),
			"client_credentials among the grant_types of a client with admin_scopes")
	}
}

// ValidateActions checks actions as a catalog file's are checked, naming
// source in each problem. It returns nil when every action is valid.
func ValidateActions(source string, actions []Action) []Problem {
	for i := range actions {
		actions[i].applyDefaults()
	}
	return validateActions(source, actions)
}

// ValidateClients checks clients as a clients file's are checked.
func ValidateClients(source string, clients []Client) []Problem {
	for i := range clients {
		clients[i].applyDefaults()
	}
	return validateClients(source, clients)
}
