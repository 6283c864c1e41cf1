package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// StepUp sets how step-up challenges are issued and how push approval is
// limited and delivered.
type StepUp struct {
	// ChallengeTTL is how long a step-up challenge may be completed.
	ChallengeTTL Duration `mapstructure:"challenge_ttl"`
	// Interval is the minimum time between two polls of one challenge
	// (RFC 8628, Section 3.5).
	Interval Duration `mapstructure:"interval"`
	Push     Push     `mapstructure:"push"`
}

// Push limits push approvals per user and names the push gateway.
type Push struct {
	// MaxChallenges is the number of push challenges a user may receive
	// within Window.
	MaxChallenges int `mapstructure:"max_challenges"`
	// Window is the period MaxChallenges counts over.
	Window Duration `mapstructure:"window"`
	// MaxDenials is the number of denied push challenges within Lockout
	// after which push is locked for the user.
	MaxDenials int `mapstructure:"max_denials"`
	// Lockout is how long push stays locked after MaxDenials denials.
	Lockout Duration `mapstructure:"lockout"`
	// Enrolment is how an approver device becomes active: EnrolmentAdmin
	// (the default) keeps a self-enrolled device pending until an
	// administrator activates it, EnrolmentSelf activates it at once.
	Enrolment string  `mapstructure:"enrolment"`
	Webhook   Webhook `mapstructure:"webhook"`
}

// Approver enrolment modes of step_up.push.enrolment.
const (
	// EnrolmentAdmin keeps a self-enrolled approver device pending until
	// an administrator activates it. An assistant holds the user's ID
	// token, so an enrolment proven by that token alone could make the
	// assistant its own approver.
	EnrolmentAdmin = "admin"
	// EnrolmentSelf activates an approver device at enrolment. Use it
	// only where the ID token that proves the enrolment never reaches an
	// assistant.
	EnrolmentSelf = "self"
)

// Webhook is the enterprise push gateway that receives each new push
// challenge.
type Webhook struct {
	// URL receives a POST per push challenge. Empty disables the webhook,
	// so approver apps only pull their challenges.
	URL string `mapstructure:"url"`
	// Secret is the HMAC-SHA256 key of the body signature, usually from
	// SOTTO_STEP_UP_PUSH_WEBHOOK_SECRET.
	Secret Secret `mapstructure:"secret"`
}

// WebAuthn sets the relying party of passkey ceremonies.
type WebAuthn struct {
	// RPID is the relying party ID, a registrable domain of the origins.
	// Empty means the host of the issuer.
	RPID string `mapstructure:"rp_id"`
	// RPDisplayName is shown by authenticators during registration.
	RPDisplayName string `mapstructure:"rp_display_name"`
	// Origins are the exact origins whose assertions are accepted. Empty
	// means the origin of the issuer.
	Origins []string `mapstructure:"origins"`
}

// defaultStepUp is the step-up configuration of Default.
func defaultStepUp() StepUp {
	return StepUp{
		ChallengeTTL: Duration(2 * time.Minute),
		Interval:     Duration(5 * time.Second),
		Push: Push{
			MaxChallenges: 3,
			Window:        Duration(10 * time.Minute),
			MaxDenials:    3,
			Lockout:       Duration(30 * time.Minute),
			Enrolment:     EnrolmentAdmin,
		},
	}
}

// minWebhookSecret is the shortest webhook secret accepted, in bytes: an
// HMAC-SHA256 key shorter than 32 bytes is weaker than the hash.
const minWebhookSecret = 32

func (c *Config) validateStepUp(ps *problems) {
	if e := c.StepUp.Push.Enrolment; e != EnrolmentAdmin && e != EnrolmentSelf {
		ps.add(c.fileFor("step_up.push.enrolment"), "step_up.push.enrolment", e, EnrolmentAdmin+" or "+EnrolmentSelf)
	}
	positive := []struct {
		key   string
		value Duration
	}{
		{"step_up.challenge_ttl", c.StepUp.ChallengeTTL},
		{"step_up.interval", c.StepUp.Interval},
		{"step_up.push.window", c.StepUp.Push.Window},
		{"step_up.push.lockout", c.StepUp.Push.Lockout},
	}
	for _, p := range positive {
		if p.value <= 0 {
			ps.add(c.fileFor(p.key), p.key, p.value.String(), "a duration greater than 0, such as 2m")
		}
	}
	if c.StepUp.Interval >= c.StepUp.ChallengeTTL && c.StepUp.ChallengeTTL > 0 {
		ps.add(c.fileFor("step_up.interval"), "step_up.interval", c.StepUp.Interval.String(),
			"a duration shorter than step_up.challenge_ttl")
	}
	counts := []struct {
		key   string
		value int
	}{
		{"step_up.push.max_challenges", c.StepUp.Push.MaxChallenges},
		{"step_up.push.max_denials", c.StepUp.Push.MaxDenials},
	}
	for _, n := range counts {
		if n.value < 1 {
			ps.add(c.fileFor(n.key), n.key, strconv.Itoa(n.value), "a whole number of 1 or more")
		}
	}

	hook := c.StepUp.Push.Webhook
	if hook.URL != "" {
		if expected := checkHTTPSURL(hook.URL); expected != "" {
			ps.add(c.fileFor("step_up.push.webhook.url"), "step_up.push.webhook.url", hook.URL, expected)
		}
		if len(hook.Secret) < minWebhookSecret {
			ps.add(c.fileFor("step_up.push.webhook.secret"), "step_up.push.webhook.secret", redactedIfSet(hook.Secret),
				fmt.Sprintf("a secret of at least %d bytes, usually from SOTTO_STEP_UP_PUSH_WEBHOOK_SECRET", minWebhookSecret))
		}
	}

	for i, origin := range c.WebAuthn.Origins {
		key := indexKey("webauthn.origins", i)
		if expected := checkOrigin(origin); expected != "" {
			ps.add(c.fileFor("webauthn.origins"), key, origin, expected)
		}
	}
	if id := c.WebAuthn.RPID; id != "" && (strings.ContainsAny(id, ":/ ") || strings.HasPrefix(id, ".")) {
		ps.add(c.fileFor("webauthn.rp_id"), "webauthn.rp_id", id, "a domain name without scheme, port or path, such as sotto.corp.example")
	} else if net.ParseIP(id) != nil {
		// WebAuthn Level 3, Section 5.1.3: the RP ID is a domain, never an
		// IP address.
		ps.add(c.fileFor("webauthn.rp_id"), "webauthn.rp_id", id, "a domain name, not an IP address, such as localhost or sotto.corp.example")
	}
}

func redactedIfSet(s Secret) string {
	if s == "" {
		return ""
	}
	return redacted
}

// checkOrigin returns what is wrong with a WebAuthn origin, or "": an
// https origin (http on a loopback host) without path, query or fragment.
func checkOrigin(origin string) string {
	if expected := checkHTTPSURL(origin); expected != "" {
		return expected
	}
	rest := origin[strings.Index(origin, "://")+3:]
	if strings.ContainsAny(rest, "/?#") {
		return "an origin without path, query or fragment, such as https://sotto.corp.example"
	}
	return ""
}

// validateStrongACR checks trusted_issuers[i].strong_acr_values.
func (c *Config) validateStrongACR(ps *problems) {
	for i, ti := range c.TrustedIssuers {
		for j, v := range ti.StrongACRValues {
			if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t\r\n") {
				ps.add(c.File, indexKey(indexKey("trusted_issuers", i)+".strong_acr_values", j), v,
					"an acr value without spaces")
			}
			if slices.Contains(ti.StrongACRValues[:j], v) {
				ps.add(c.File, indexKey(indexKey("trusted_issuers", i)+".strong_acr_values", j), v,
					"an acr value listed once")
			}
		}
	}
}
