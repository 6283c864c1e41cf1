package config

import "time"

// Sessions sets the lifetimes of Sotto sessions: a device-bound session
// access token plus a refresh token, obtained by exchanging a corporate
// ID token with the scope sotto:session.
type Sessions struct {
	// IdleTimeout is how long a refresh token stays valid after it was
	// issued: a session that is not refreshed within it ends.
	IdleTimeout Duration `mapstructure:"idle_timeout"`
	// AbsoluteLifetime is how long a session lasts from its login,
	// however often it is refreshed.
	AbsoluteLifetime Duration `mapstructure:"absolute_lifetime"`
	// AccessTokenTTL is the lifetime of a session access token, capped at
	// the session's absolute expiry.
	AccessTokenTTL Duration `mapstructure:"access_token_ttl"`
}

// defaultSessions are the session lifetimes when none are configured.
var defaultSessions = Sessions{
	IdleTimeout:      Duration(24 * time.Hour),
	AbsoluteLifetime: Duration(7 * 24 * time.Hour),
	AccessTokenTTL:   Duration(15 * time.Minute),
}

func (c *Config) validateSessions(ps *problems) {
	for _, p := range []struct {
		key   string
		value Duration
	}{
		{"sessions.idle_timeout", c.Sessions.IdleTimeout},
		{"sessions.absolute_lifetime", c.Sessions.AbsoluteLifetime},
		{"sessions.access_token_ttl", c.Sessions.AccessTokenTTL},
	} {
		if p.value <= 0 {
			ps.add(c.fileFor(p.key), p.key, p.value.String(), "a duration greater than 0, such as 30s")
		}
	}
	if c.Sessions.AbsoluteLifetime > 0 && c.Sessions.IdleTimeout > c.Sessions.AbsoluteLifetime {
		ps.add(c.fileFor("sessions.idle_timeout"), "sessions.idle_timeout", c.Sessions.IdleTimeout.String(),
			"a duration of at most sessions.absolute_lifetime ("+c.Sessions.AbsoluteLifetime.String()+")")
	}
}
