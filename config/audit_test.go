package config

import (
	"path/filepath"
	"testing"
	"time"
)

func TestLoadAuditSettings(t *testing.T) {
	path := writeSetup(t, map[string]string{
		"sotto.yaml": testMain + `admin_listen: 127.0.0.1:9090
audit:
  retention:
    token_introspection: 720h
    token_exchange: 8760h
  checkpoint_interval: 30m
  pseudonym_key: not-a-real-key
metrics:
  bearer_token_file: scrape.token
`,
		"scrape.token": "scrape-secret\n",
	})
	c := mustLoad(t, path)

	if got, want := c.Audit.Retention["token_introspection"], Duration(720*time.Hour); got != want {
		t.Errorf("retention of token_introspection = %v, want %v", got, want)
	}
	if got, want := c.Audit.Retention["token_exchange"], Duration(8760*time.Hour); got != want {
		t.Errorf("retention of token_exchange = %v, want %v", got, want)
	}
	if got, want := c.Audit.CheckpointInterval, Duration(30*time.Minute); got != want {
		t.Errorf("checkpoint_interval = %v, want %v", got, want)
	}
	if c.AdminListen != "127.0.0.1:9090" {
		t.Errorf("admin_listen = %q, want 127.0.0.1:9090", c.AdminListen)
	}
	if want := filepath.Join(filepath.Dir(path), "scrape.token"); c.Metrics.BearerTokenFile != want {
		t.Errorf("metrics.bearer_token_file = %q, want %q", c.Metrics.BearerTokenFile, want)
	}
	token, err := c.Metrics.ReadMetricsToken()
	if err != nil {
		t.Fatalf("ReadMetricsToken: %v", err)
	}
	if string(token) != "scrape-secret" {
		t.Errorf("metrics token has %d bytes, want the 13 of the file without its newline", len(token))
	}
	if s := c.Audit.PseudonymKey.String(); s != "[redacted]" {
		t.Errorf("pseudonym key prints as %q, want [redacted]", s)
	}
}

func TestAuditDefaults(t *testing.T) {
	c := mustLoad(t, writeSetup(t, nil))
	if len(c.Audit.Retention) != 0 {
		t.Errorf("default retention = %v, want none (keep forever)", c.Audit.Retention)
	}
	if c.Audit.CheckpointInterval != Duration(time.Hour) {
		t.Errorf("default checkpoint_interval = %v, want 1h", c.Audit.CheckpointInterval)
	}
	if c.AdminListen != "" {
		t.Errorf("default admin_listen = %q, want empty (off)", c.AdminListen)
	}
}

func TestValidateAuditSettings(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantKey string
	}{
		{"unknown retention event", func(c *Config) {
			c.Audit.Retention = map[string]Duration{"token_exchnage": Duration(time.Hour)}
		}, "audit.retention.token_exchnage"},
		{"zero retention", func(c *Config) {
			c.Audit.Retention = map[string]Duration{"token_exchange": 0}
		}, "audit.retention.token_exchange"},
		{"checkpoint interval too short", func(c *Config) { c.Audit.CheckpointInterval = Duration(time.Second) }, "audit.checkpoint_interval"},
		{"admin listen without port", func(c *Config) { c.AdminListen = "127.0.0.1" }, "admin_listen"},
		{"missing bearer token file", func(c *Config) {
			c.Metrics.BearerTokenFile = filepath.Join(t.TempDir(), "absent")
		}, "metrics.bearer_token_file"},
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
