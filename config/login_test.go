package config

import (
	"strings"
	"testing"
)

// codeClient is a public client with the authorization code grant.
func codeClient(redirects ...string) Client {
	return Client{
		ClientID:     "browser-app",
		Public:       true,
		GrantTypes:   []string{GrantTypeAuthorizationCode, GrantTypeRefreshToken},
		RedirectURIs: redirects,
	}
}

func withLogin(c *Config) {
	c.Login = Login{Issuer: c.TrustedIssuers[0].Issuer, ClientID: "sotto", ClientSecret: "s",
		Scopes: []string{"openid", "email"}, GroupsClaim: "groups"}
}

func TestValidateLoginAndRedirects(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantKey string // "" when the config is valid
	}{
		{"loopback redirect", func(c *Config) {
			withLogin(c)
			c.Clients = append(c.Clients, codeClient("http://127.0.0.1/callback"))
		}, ""},
		{"private-use scheme on public client", func(c *Config) {
			withLogin(c)
			c.Clients = append(c.Clients, codeClient("com.corp.assistant:/callback"))
		}, ""},
		{"code grant without login", func(c *Config) {
			c.Clients = append(c.Clients, codeClient("https://app.example/cb"))
		}, "login.issuer"},
		{"code grant without redirect", func(c *Config) {
			withLogin(c)
			c.Clients = append(c.Clients, codeClient())
		}, "redirect_uris"},
		{"code grant without refresh", func(c *Config) {
			withLogin(c)
			cl := codeClient("https://app.example/cb")
			cl.GrantTypes = []string{GrantTypeAuthorizationCode}
			c.Clients = append(c.Clients, cl)
		}, "grant_types"},
		{"redirect with fragment", func(c *Config) {
			withLogin(c)
			c.Clients = append(c.Clients, codeClient("https://app.example/cb#x"))
		}, "redirect_uris[0]"},
		{"relative redirect", func(c *Config) {
			withLogin(c)
			c.Clients = append(c.Clients, codeClient("/cb"))
		}, "redirect_uris[0]"},
		{"plain http on a public host", func(c *Config) {
			withLogin(c)
			c.Clients = append(c.Clients, codeClient("http://app.example/cb"))
		}, "redirect_uris[0]"},
		{"private-use scheme on confidential client", func(c *Config) {
			withLogin(c)
			cl := confidentialClient()
			cl.GrantTypes = []string{GrantTypeAuthorizationCode, GrantTypeRefreshToken}
			cl.RedirectURIs = []string{"com.corp.assistant:/callback"}
			c.Clients = append(c.Clients, cl)
		}, "redirect_uris[0]"},
		{"login issuer not trusted", func(c *Config) {
			withLogin(c)
			c.Login.Issuer = "https://other.example"
		}, "login.issuer"},
		{"login without client_id", func(c *Config) { withLogin(c); c.Login.ClientID = "" }, "login.client_id"},
		{"login without secret", func(c *Config) { withLogin(c); c.Login.ClientSecret = "" }, "login.client_secret"},
		{"login scopes without openid", func(c *Config) { withLogin(c); c.Login.Scopes = []string{"email"} }, "login.scopes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(c)
			err := c.Validate()
			if tt.wantKey == "" {
				if err != nil {
					t.Errorf("Validate error:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted the config, want a problem at %s", tt.wantKey)
			}
			if !strings.Contains(err.Error(), tt.wantKey+":") {
				t.Errorf("Validate error does not name %s:\n%v", tt.wantKey, err)
			}
		})
	}
}

func TestLoginDefaults(t *testing.T) {
	var l Login
	l.applyDefaults()
	if strings.Join(l.Scopes, " ") != "openid profile email" {
		t.Errorf("default scopes = %v, want openid profile email", l.Scopes)
	}
	if l.GroupsClaim != "groups" {
		t.Errorf("default groups_claim = %q, want groups", l.GroupsClaim)
	}
}
