package exchange

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"time"

	"github.com/sotto-auth/sotto/config"
)

// Step-up methods of a catalog action.
const (
	StepUpNone    = "none"
	StepUpPasskey = "passkey"
	StepUpPush    = "push"
	StepUpAny     = "any"
)

// Authentication context class references that satisfy a step-up. They
// are the acr_values of an insufficient_user_authentication error.
const (
	ACRPasskey = "urn:sotto:acr:passkey"
	ACRPush    = "urn:sotto:acr:push"
)

// DefaultStepUpMaxAge is how old a step-up may be and still count.
const DefaultStepUpMaxAge = 5 * time.Minute

// Action is one entry of the scope catalog: an action an assistant may
// request a token for.
type Action struct {
	Scope       string
	Description string
	Audiences   []string
	MaxTTL      time.Duration
	StepUp      string
	Groups      []string
	// DeviceTrust is the lowest device trust level the action accepts:
	// DeviceTrustAny, DeviceTrustRegistered or DeviceTrustManaged.
	DeviceTrust string
	// MaxAge is how old a step-up may be and still satisfy the action.
	MaxAge time.Duration
	// Details declares the RFC 9396 authorization_details the action
	// takes. Nil means none.
	Details *config.AuthorizationDetails
	// Disabled is the action's kill switch: exchanges for it are refused
	// with access_denied.
	Disabled bool
	// Version identifies this entry's content: the first 16 hex digits of
	// the SHA-256 of its canonical JSON. Audit records name it, so a
	// decision can be matched to the exact rule it was made under.
	Version string
}

// Catalog is the scope catalog, read-only once built.
type Catalog struct {
	actions map[string]*Action
	// Version identifies the whole catalog's content the same way.
	Version string
	// Number is the stored catalog version this catalog was built from,
	// or 0 for a catalog read from the file alone.
	Number int64
}

// NewCatalog builds a catalog from configured actions. An action's MaxTTL
// is capped at maxTTL, the server maximum.
func NewCatalog(actions []config.Action, maxTTL time.Duration) *Catalog {
	c := &Catalog{actions: make(map[string]*Action, len(actions))}
	versions := make([]string, 0, len(actions))
	for _, a := range actions {
		action := &Action{
			Scope:       a.Scope,
			Description: a.Description,
			Audiences:   append([]string(nil), a.Audiences...),
			MaxTTL:      min(time.Duration(a.MaxTTL), maxTTL),
			StepUp:      a.StepUp,
			Groups:      append([]string(nil), a.Groups...),
			DeviceTrust: a.DeviceTrust,
			MaxAge:      time.Duration(a.MaxAge),
			Details:     a.AuthorizationDetails,
			Disabled:    a.Disabled,
		}
		if action.StepUp == "" {
			action.StepUp = StepUpNone
		}
		if action.DeviceTrust == "" {
			action.DeviceTrust = DeviceTrustAny
		}
		if action.MaxAge <= 0 {
			action.MaxAge = DefaultStepUpMaxAge
		}
		action.Version = contentVersion(action)
		c.actions[action.Scope] = action
		versions = append(versions, action.Scope+"="+action.Version)
	}
	sort.Strings(versions)
	c.Version = contentVersion(versions)
	return c
}

// Lookup returns the action for scope.
func (c *Catalog) Lookup(scope string) (*Action, bool) {
	a, ok := c.actions[scope]
	return a, ok
}

// Scopes returns every action's scope, sorted.
func (c *Catalog) Scopes() []string {
	out := make([]string, 0, len(c.actions))
	for s := range c.actions {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Len returns the number of actions.
func (c *Catalog) Len() int { return len(c.actions) }

func contentVersion(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// ACRValues returns the acr values that satisfy the action's step-up.
func (a *Action) ACRValues() []string {
	switch a.StepUp {
	case StepUpPasskey:
		return []string{ACRPasskey}
	case StepUpPush:
		return []string{ACRPush}
	default:
		return []string{ACRPasskey, ACRPush}
	}
}
