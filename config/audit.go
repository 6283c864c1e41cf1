package config

import (
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// Audit configures the audit log's retention, checkpoints and exports.
type Audit struct {
	// Retention is how long records of each event are kept, by event name
	// (token_exchange, token_introspection, ...). An event not listed is
	// kept forever.
	Retention map[string]Duration `mapstructure:"retention"`
	// CheckpointInterval is how often the server signs a checkpoint of
	// the chain head and deletes the records past their retention.
	CheckpointInterval Duration `mapstructure:"checkpoint_interval"`
	// PseudonymKey keys the HMAC-SHA256 that replaces subject identifiers
	// in the compliance export. When empty, a random key is created once
	// and kept in the database's settings.
	PseudonymKey Secret `mapstructure:"pseudonym_key"`
}

// Metrics configures the Prometheus endpoint on the admin listener.
type Metrics struct {
	// BearerTokenFile is the absolute path of a file whose content a
	// scraper must send as a bearer token. Empty means no token is
	// needed, which suits an admin listener on a private interface.
	BearerTokenFile string `mapstructure:"bearer_token_file"`
}

// auditEvents are the event names retention accepts.
var auditEvents = []string{
	"token_exchange", "token_revocation", "token_introspection",
	"device_enrolment", "device_trust_change", "device_revocation",
}

// minCheckpointInterval keeps a misconfigured interval from signing and
// scanning the deleted ranges many times a second.
const minCheckpointInterval = Duration(time.Minute)

func (c *Config) validateAudit(ps *problems) {
	events := make([]string, 0, len(c.Audit.Retention))
	for e := range c.Audit.Retention {
		events = append(events, e)
	}
	sort.Strings(events)
	for _, e := range events {
		key := "audit.retention." + e
		switch d := c.Audit.Retention[e]; {
		case !slices.Contains(auditEvents, e):
			ps.add(c.File, key, e, "an event name, one of "+strings.Join(auditEvents, ", "))
		case d <= 0:
			ps.add(c.File, key, d.String(), "a duration greater than 0, such as 2160h; leave the event out to keep it forever")
		}
	}
	if c.Audit.CheckpointInterval < minCheckpointInterval {
		ps.add(c.fileFor("audit.checkpoint_interval"), "audit.checkpoint_interval", c.Audit.CheckpointInterval.String(),
			"a duration of at least "+minCheckpointInterval.String()+", such as 1h")
	}

	if c.AdminListen != "" {
		if _, port, err := net.SplitHostPort(c.AdminListen); err != nil || !validPort(port) {
			ps.add(c.fileFor("admin_listen"), "admin_listen", c.AdminListen,
				"a host:port address on a private interface, such as 127.0.0.1:9090, or empty to turn the admin listener off")
		}
	}
	if f := c.Metrics.BearerTokenFile; f != "" {
		b, err := os.ReadFile(f)
		switch {
		case err != nil:
			ps.add(c.fileFor("metrics.bearer_token_file"), "metrics.bearer_token_file", f, "a readable file: "+readError(err))
		case strings.TrimSpace(string(b)) == "":
			ps.add(c.fileFor("metrics.bearer_token_file"), "metrics.bearer_token_file", f, "a file that contains the token, not an empty one")
		}
	}
}

// ReadMetricsToken returns the bearer token scrapers must send, or "" when
// none is configured. Surrounding white space is not part of the token.
func (m Metrics) ReadMetricsToken() (Secret, error) {
	if m.BearerTokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(m.BearerTokenFile)
	if err != nil {
		return "", err
	}
	return Secret(strings.TrimSpace(string(b))), nil
}
