package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Action is one entry of the scope catalog: a scope that an action token
// can carry and the policy for issuing it.
type Action struct {
	// Scope is the scope token, unique across the catalog.
	Scope string `yaml:"scope" json:"scope"`
	// Description is a human-readable summary of the action, for
	// administrators and the audit trail.
	Description string `yaml:"description" json:"description"`
	// Audiences are the connectors that accept the action's tokens.
	Audiences []string `yaml:"audiences" json:"audiences"`
	// MaxTTL is the action's maximum token lifetime. Load caps it at
	// tokens.max_ttl.
	MaxTTL Duration `yaml:"max_ttl" json:"max_ttl"`
	// StepUp is the step-up authentication the action requires.
	StepUp string `yaml:"step_up" json:"step_up"`
	// MaxAge is how old a step-up may be and still satisfy the action.
	// Zero means 5m.
	MaxAge Duration `yaml:"max_age" json:"max_age,omitempty"`
	// AuthorizationDetails declares the RFC 9396 details an exchange for
	// the action must send. Nil means the action takes none.
	AuthorizationDetails *AuthorizationDetails `yaml:"authorization_details" json:"authorization_details,omitempty"`
	// Groups are the groups allowed the action. Empty allows any
	// authenticated user.
	Groups []string `yaml:"groups" json:"groups,omitempty"`
	// DeviceTrust is the lowest trust level of the device key the action
	// accepts: any, registered or managed.
	DeviceTrust string `yaml:"device_trust" json:"device_trust,omitempty"`
	// Disabled is the action's kill switch: every exchange for it is
	// refused with access_denied while it is true.
	Disabled bool `yaml:"disabled" json:"disabled,omitempty"`
}

// Device trust levels an action may require in device_trust.
const (
	DeviceTrustAny        = "any"
	DeviceTrustRegistered = "registered"
	DeviceTrustManaged    = "managed"
)

var deviceTrusts = []string{DeviceTrustAny, DeviceTrustRegistered, DeviceTrustManaged}

// Step-up requirements an action may have in step_up.
const (
	StepUpNone    = "none"
	StepUpPasskey = "passkey"
	StepUpPush    = "push"
	StepUpAny     = "any"
)

var stepUps = []string{StepUpNone, StepUpPasskey, StepUpPush, StepUpAny}

func (a *Action) applyDefaults() {
	a.StepUp = strings.ToLower(strings.TrimSpace(a.StepUp))
	if a.StepUp == "" {
		a.StepUp = StepUpNone
	}
	a.DeviceTrust = strings.ToLower(strings.TrimSpace(a.DeviceTrust))
	if a.DeviceTrust == "" {
		a.DeviceTrust = DeviceTrustAny
	}
	if a.MaxAge == 0 {
		a.MaxAge = DefaultStepUpMaxAge
	}
	if a.AuthorizationDetails != nil {
		a.AuthorizationDetails.applyDefaults()
	}
}

// DefaultStepUpMaxAge is an action's max_age when the catalog sets none.
const DefaultStepUpMaxAge = Duration(5 * time.Minute)

// validateActions checks every action of the catalog file at path.
func validateActions(path string, actions []Action) []Problem {
	var ps problems
	seen := map[string]int{}
	for i, a := range actions {
		key := indexKey("actions", i)

		switch {
		case a.Scope == "":
			ps.add(path, key+".scope", "", "a scope token")
		case !isScopeToken(a.Scope):
			ps.add(path, key+".scope", a.Scope,
				"a scope token of the characters %x21 / %x23-5B / %x5D-7E, with no spaces (RFC 6749, Section 3.3)")
		}
		if first, dup := seen[a.Scope]; dup && a.Scope != "" {
			ps.add(path, key+".scope", a.Scope, "a scope not already used by "+indexKey("actions", first))
		} else {
			seen[a.Scope] = i
		}

		if strings.TrimSpace(a.Description) == "" {
			ps.add(path, key+".description", "", "a description of the action")
		}

		if len(a.Audiences) == 0 {
			ps.add(path, key+".audiences", "", "at least one audience, the connector that accepts the token")
		}
		for j, aud := range a.Audiences {
			if expected := checkAudience(aud); expected != "" {
				ps.add(path, indexKey(key+".audiences", j), aud, expected)
			}
		}

		if a.MaxTTL <= 0 {
			ps.add(path, key+".max_ttl", durationValue(a.MaxTTL), "a duration greater than 0, such as 5m")
		}
		if !slices.Contains(stepUps, a.StepUp) {
			ps.add(path, key+".step_up", a.StepUp, "one of "+strings.Join(stepUps, ", "))
		}
		if !slices.Contains(deviceTrusts, a.DeviceTrust) {
			ps.add(path, key+".device_trust", a.DeviceTrust, "one of "+strings.Join(deviceTrusts, ", "))
		}
		if a.MaxAge < 0 {
			ps.add(path, key+".max_age", a.MaxAge.String(), "a duration greater than 0, such as 5m")
		}
		if a.AuthorizationDetails != nil {
			validateDetails(&ps, path, key, a.AuthorizationDetails)
		}
		for j, g := range a.Groups {
			if strings.TrimSpace(g) == "" {
				ps.add(path, indexKey(key+".groups", j), "", "a group name")
			}
		}
	}
	return ps.list
}

// isScopeToken reports whether s is a scope-token of RFC 6749, Section 3.3:
// one or more of %x21 / %x23-5B / %x5D-7E.
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// checkAudience returns what is wrong with an audience, or "". An audience
// with the http or https scheme must be an absolute https URL (http only on
// a loopback host) without a fragment. Any other audience, such as a URN or
// a plain name, must be non-empty and contain no whitespace.
func checkAudience(aud string) string {
	if aud == "" || strings.ContainsAny(aud, " \t\r\n") {
		return "a non-empty audience without spaces"
	}
	u, err := url.Parse(aud)
	isURL := strings.Contains(aud, "://") || (err == nil && (u.Scheme == "http" || u.Scheme == "https"))
	if !isURL {
		return ""
	}
	if expected := checkHTTPSURL(aud); expected != "" {
		return expected
	}
	if u.Fragment != "" {
		return "an audience URL without a fragment"
	}
	return ""
}

// durationValue formats a duration for a problem's Value.
func durationValue(d Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func indexKey(prefix string, i int) string {
	return fmt.Sprintf("%s[%d]", prefix, i)
}
