package config

import (
	"strings"
	"testing"
	"time"
)

func TestSessionsValidation(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		key    string
	}{
		{"zero idle timeout", func(c *Config) { c.Sessions.IdleTimeout = 0 }, "sessions.idle_timeout"},
		{"negative absolute lifetime", func(c *Config) { c.Sessions.AbsoluteLifetime = -1 }, "sessions.absolute_lifetime"},
		{"zero access token lifetime", func(c *Config) { c.Sessions.AccessTokenTTL = 0 }, "sessions.access_token_ttl"},
		{"idle timeout above absolute lifetime", func(c *Config) {
			c.Sessions.IdleTimeout = Duration(48 * time.Hour)
			c.Sessions.AbsoluteLifetime = Duration(24 * time.Hour)
		}, "sessions.idle_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(c)
			var ps problems
			c.validateSessions(&ps)
			if len(ps.list) != 1 {
				t.Fatalf("problems = %v, want one for %s", ps.list, tc.key)
			}
			if !strings.Contains(ps.list[0].String(), tc.key) {
				t.Errorf("problem = %q, want it to name %s", ps.list[0].String(), tc.key)
			}
		})
	}
}

func TestSessionsDefaultsAndEnvironment(t *testing.T) {
	t.Setenv("SOTTO_SESSIONS_IDLE_TIMEOUT", "2h")
	cfg := mustLoad(t, writeSetup(t, nil))
	if got := time.Duration(cfg.Sessions.IdleTimeout); got != 2*time.Hour {
		t.Errorf("sessions.idle_timeout = %v, want 2h from SOTTO_SESSIONS_IDLE_TIMEOUT", got)
	}
	if got := time.Duration(cfg.Sessions.AbsoluteLifetime); got != 7*24*time.Hour {
		t.Errorf("sessions.absolute_lifetime = %v, want the default of 168h", got)
	}
	if got := time.Duration(cfg.Sessions.AccessTokenTTL); got != 15*time.Minute {
		t.Errorf("sessions.access_token_ttl = %v, want the default of 15m", got)
	}
}
