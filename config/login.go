package config

import (
	"net"
	"net/url"
	"slices"
	"strings"
)

// Login configures sign-in in a browser: Sotto is an OpenID Connect
// relying party of the corporate IdP (authorization code flow with PKCE
// and a nonce). An empty Issuer turns the browser path off.
type Login struct {
	// Issuer is the corporate IdP's issuer. Its metadata is read by
	// OpenID Connect Discovery. It must also be the issuer of one of
	// TrustedIssuers, whose subject_prefix forms the Sotto sub, so a
	// user has the same sub on both session paths.
	Issuer string `mapstructure:"issuer"`
	// ClientID is Sotto's client_id at the IdP.
	ClientID string `mapstructure:"client_id"`
	// ClientSecret is Sotto's client secret at the IdP.
	ClientSecret Secret `mapstructure:"client_secret"`
	// Scopes are requested at the IdP; openid is always among them.
	Scopes []string `mapstructure:"scopes"`
	// GroupsClaim is the ID token claim that lists the user's groups.
	GroupsClaim string `mapstructure:"groups_claim"`
}

// Enabled reports whether browser sign-in is configured.
func (l Login) Enabled() bool { return l.Issuer != "" }

var defaultLoginScopes = []string{"openid", "profile", "email"}

func (l *Login) applyDefaults() {
	l.Issuer = strings.TrimSpace(l.Issuer)
	if len(l.Scopes) == 0 {
		l.Scopes = slices.Clone(defaultLoginScopes)
	}
	if l.GroupsClaim == "" {
		l.GroupsClaim = "groups"
	}
}

// LoginSubjectPrefix returns the subject_prefix of the trusted issuer
// that is also the login issuer, or "" when there is none.
func (c *Config) LoginSubjectPrefix() string {
	for _, ti := range c.TrustedIssuers {
		if ti.Issuer == c.Login.Issuer {
			return ti.SubjectPrefix
		}
	}
	return ""
}

func (c *Config) validateLogin(ps *problems) {
	l := c.Login
	if !l.Enabled() {
		for _, cl := range c.Clients {
			if slices.Contains(cl.GrantTypes, GrantTypeAuthorizationCode) {
				ps.add(c.fileFor("login.issuer"), "login.issuer", "",
					"the corporate IdP's issuer, since client "+cl.ClientID+" has the authorization_code grant")
				break
			}
		}
		return
	}
	if expected := checkHTTPSURL(l.Issuer); expected != "" {
		ps.add(c.fileFor("login.issuer"), "login.issuer", l.Issuer, expected)
	}
	if c.LoginSubjectPrefix() == "" {
		ps.add(c.fileFor("login.issuer"), "login.issuer", l.Issuer,
			"the issuer of one of trusted_issuers, whose subject_prefix forms the sub of a browser login")
	}
	if l.ClientID == "" {
		ps.add(c.fileFor("login.client_id"), "login.client_id", "", "Sotto's client_id at the corporate IdP")
	}
	if l.ClientSecret == "" {
		ps.add(c.fileFor("login.client_secret"), "login.client_secret", "",
			"Sotto's client secret at the corporate IdP, best set with SOTTO_LOGIN_CLIENT_SECRET")
	}
	if !slices.Contains(l.Scopes, "openid") {
		ps.add(c.File, "login.scopes", strings.Join(l.Scopes, " "),
			"a list that contains openid (OpenID Connect Core 1.0, Section 3.1.2.1)")
	}
}

// checkRedirectURI returns what is wrong with a registered redirect URI,
// or "". RFC 6749, Section 3.1.2: an absolute URI without a fragment.
// A confidential client uses https (http on a loopback host). A public
// native client may also use a private-use URI scheme (RFC 8252, Section
// 7.1), which contains a period.
func checkRedirectURI(raw string, public bool) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs():
		return "an absolute URI (RFC 6749, Section 3.1.2)"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "a redirect URI without a fragment (RFC 6749, Section 3.1.2)"
	case u.Scheme == "https" && u.Host != "":
		return ""
	case u.Scheme == "http" && u.Host != "" && isLoopback(u.Hostname()):
		return ""
	case public && strings.Contains(u.Scheme, ".") && u.Scheme != "http" && u.Scheme != "https":
		return ""
	case public:
		return "an https URI, an http URI on a loopback host, or a private-use scheme such as com.example.app:/callback (RFC 8252, Section 7)"
	}
	return "an https URI, or http on a loopback host"
}

// IsLoopbackIP reports whether host is an IP literal of the loopback
// range, the only hosts whose redirect port may vary (RFC 8252, Section
// 7.3).
func IsLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
