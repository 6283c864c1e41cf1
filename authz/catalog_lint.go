package authz

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/sotto-auth/sotto/config"
)

// sensitiveAction matches action names that suggest an effect hard to
// undo: approving, deleting, paying, transferring or exporting.
var sensitiveAction = regexp.MustCompile(`(?i)(approve|delete|remove|pay|transfer|export|wire|refund)`)

// LintCatalog returns warnings about risky catalog entries: a
// sensitive-looking action without step-up, a max_ttl above the server
// maximum (which is clamped), and an audience that no client can
// introspect, so no connector could check its tokens online. The
// warnings do not make the catalog invalid.
func LintCatalog(actions []config.Action, serverMaxTTL time.Duration, clients []*Client) []string {
	var out []string
	for _, a := range actions {
		if sensitiveAction.MatchString(a.Scope) && (a.StepUp == "" || a.StepUp == config.StepUpNone) {
			out = append(out, fmt.Sprintf("%s: the name suggests a sensitive action but step_up is none; set step_up to passkey, push or any", a.Scope))
		}
		if time.Duration(a.MaxTTL) > serverMaxTTL {
			out = append(out, fmt.Sprintf("%s: max_ttl %s is above tokens.max_ttl %s and is clamped to it; lower max_ttl", a.Scope, a.MaxTTL, config.Duration(serverMaxTTL)))
		}
		for _, aud := range a.Audiences {
			if !slices.ContainsFunc(clients, func(c *Client) bool { return !c.Public && slices.Contains(c.Audiences, aud) }) {
				out = append(out, fmt.Sprintf("%s: no confidential client lists the audience %s, so no connector can introspect its tokens; add it to the connector's audiences", a.Scope, aud))
			}
		}
		if a.Disabled {
			out = append(out, fmt.Sprintf("%s: the action is disabled", a.Scope))
		}
	}
	return out
}
