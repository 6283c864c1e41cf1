package config

import (
	"log/slog"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Client is an OAuth client registered in the clients file. A confidential
// client (Public false) has exactly one of ClientSecret and
// ClientSecretHash, and a public client has neither.
type Client struct {
	// ClientID is the client_id, unique across the file.
	ClientID string `yaml:"client_id"`
	// Name is shown to administrators.
	Name string `yaml:"name"`
	// Public marks a client that cannot keep a secret and authenticates
	// with token_endpoint_auth_method "none".
	Public bool `yaml:"public"`
	// ClientSecret is a plaintext secret, for development. Load warns
	// about every one.
	ClientSecret Secret `yaml:"client_secret"`
	// ClientSecretHash is a bcrypt hash of the secret.
	ClientSecretHash string `yaml:"client_secret_hash"`
	// GrantTypes are the grants the client may use. A client without
	// any uses no grant: a connector needs none to introspect.
	GrantTypes []string `yaml:"grant_types"`
	// RequireDPoP rejects the client's token requests without a DPoP proof.
	RequireDPoP bool `yaml:"require_dpop"`
	// RequireDPoPNonce makes the client's DPoP proofs at the token
	// endpoint carry a nonce the server provided (RFC 9449, Section 8).
	RequireDPoPNonce bool `yaml:"require_dpop_nonce"`
	// Audiences are the audiences whose tokens the client may see at
	// introspection.
	Audiences []string `yaml:"audiences"`
	// AdminScopes are the admin API scopes the client may request with
	// the client_credentials grant.
	AdminScopes []string `yaml:"admin_scopes"`
	// RedirectURIs are the redirect URIs of the authorization code grant,
	// matched exactly (RFC 6749, Section 3.1.2.2) except for the port of
	// a loopback IP on a public client (RFC 8252, Section 7.3).
	RedirectURIs []string `yaml:"redirect_uris"`
	// FirstParty skips the consent page: the client belongs to the
	// organization that runs Sotto.
	FirstParty bool `yaml:"first_party"`
}

// Grant types a client may list in grant_types.
const (
	GrantTypeAuthorizationCode = "authorization_code"
	GrantTypeRefreshToken      = "refresh_token"
	GrantTypeClientCredentials = "client_credentials"
)

var knownGrantTypes = []string{
	GrantTypeTokenExchange,
	GrantTypeAuthorizationCode,
	GrantTypeRefreshToken,
	GrantTypeClientCredentials,
}

// LogValue implements slog.LogValuer without the secret or its hash.
func (cl Client) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("client_id", cl.ClientID),
		slog.Bool("public", cl.Public),
		slog.Any("grant_types", cl.GrantTypes),
		slog.Bool("require_dpop", cl.RequireDPoP),
		slog.Bool("require_dpop_nonce", cl.RequireDPoPNonce),
		slog.Bool("first_party", cl.FirstParty),
	)
}

func (cl *Client) applyDefaults() {
	cl.ClientID = strings.TrimSpace(cl.ClientID)
}

// validateClients checks every client of the clients file at path.
func validateClients(path string, clients []Client) []Problem {
	var ps problems
	seen := map[string]int{}
	for i, cl := range clients {
		key := indexKey("clients", i)

		switch {
		case cl.ClientID == "":
			ps.add(path, key+".client_id", "", "a client_id")
		case !isVSChars(cl.ClientID):
			ps.add(path, key+".client_id", cl.ClientID,
				"printable ASCII characters only (RFC 6749, Appendix A.1)")
		}
		if first, dup := seen[cl.ClientID]; dup && cl.ClientID != "" {
			ps.add(path, key+".client_id", cl.ClientID,
				"a client_id not already used by "+indexKey("clients", first))
		} else {
			seen[cl.ClientID] = i
		}

		validateClientAuth(&ps, path, key, cl)
		if cl.RequireDPoPNonce && !slices.Contains(cl.GrantTypes, GrantTypeTokenExchange) {
			ps.add(path, key+".require_dpop_nonce", "true",
				"require_dpop_nonce only on a client with the token exchange grant, the grant that takes DPoP proofs")
		}

		for j, gt := range cl.GrantTypes {
			gkey := indexKey(key+".grant_types", j)
			if !slices.Contains(knownGrantTypes, gt) {
				ps.add(path, gkey, gt, "one of "+strings.Join(knownGrantTypes, ", "))
			}
			// RFC 6749, Section 4.4: the client credentials grant is for
			// confidential clients only.
			if gt == GrantTypeClientCredentials && cl.Public {
				ps.add(path, gkey, gt, "no client_credentials grant on a public client (RFC 6749, Section 4.4)")
			}
		}

		validateRedirects(&ps, path, key, cl)

		for j, aud := range cl.Audiences {
			if expected := checkAudience(aud); expected != "" {
				ps.add(path, indexKey(key+".audiences", j), aud, expected)
			}
		}
		validateAdminScopes(&ps, path, key, cl)
	}
	return ps.list
}

// validateRedirects checks the redirect URIs of a client and that a
// client with the authorization code grant has them.
func validateRedirects(ps *problems, path, key string, cl Client) {
	hasCode := slices.Contains(cl.GrantTypes, GrantTypeAuthorizationCode)
	if hasCode && len(cl.RedirectURIs) == 0 {
		ps.add(path, key+".redirect_uris", "",
			"at least one redirect URI for the authorization_code grant (RFC 6749, Section 3.1.2.2)")
	}
	if hasCode && !slices.Contains(cl.GrantTypes, GrantTypeRefreshToken) {
		ps.add(path, key+".grant_types", strings.Join(cl.GrantTypes, ", "),
			"refresh_token as well as authorization_code, since the code grant issues a session")
	}
	for j, uri := range cl.RedirectURIs {
		if expected := checkRedirectURI(uri, cl.Public); expected != "" {
			ps.add(path, indexKey(key+".redirect_uris", j), uri, expected)
		}
	}
}

// validateClientAuth checks that a client's credentials match its kind.
func validateClientAuth(ps *problems, path, key string, cl Client) {
	hasSecret := cl.ClientSecret != ""
	hasHash := cl.ClientSecretHash != ""

	switch {
	case cl.Public && hasSecret:
		ps.add(path, key+".client_secret", redacted, "no secret on a public client")
	case cl.Public && hasHash:
		ps.add(path, key+".client_secret_hash", redacted, "no secret hash on a public client")
	case !cl.Public && hasSecret && hasHash:
		ps.add(path, key+".client_secret", redacted,
			"either client_secret or client_secret_hash, not both")
	case !cl.Public && !hasSecret && !hasHash:
		ps.add(path, key+".client_secret_hash", "",
			"a bcrypt hash in client_secret_hash (or client_secret in development), or public: true")
	}

	if hasHash && !validBcryptHash(cl.ClientSecretHash) {
		// The hash is not secret, but a mistyped hash may be a pasted secret.
		ps.add(path, key+".client_secret_hash", redacted,
			"a bcrypt hash starting with $2a$, $2b$ or $2y$")
	}
}

func validBcryptHash(hash string) bool {
	if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
		return false
	}
	_, err := bcrypt.Cost([]byte(hash))
	return err == nil
}

// isVSChars reports whether s is made of VSCHAR (%x20-7E), the characters
// RFC 6749, Appendix A.1 allows in a client_id.
func isVSChars(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
