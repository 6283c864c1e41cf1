package exchange

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sotto-auth/sotto/internal/oauth"
)

// decide applies the catalog's policy to a verified subject asking for
// action: group membership, then step-up. It returns nil when the action
// may be issued.
func decide(subject *Subject, action *Action) *oauth.Error {
	if len(action.Groups) > 0 && !slices.ContainsFunc(action.Groups, func(g string) bool {
		return slices.Contains(subject.Groups, g)
	}) {
		return oauth.New("invalid_scope", "group_not_allowed", fmt.Sprintf(
			"The action %q is limited to members of %s; the subject token names none of these groups.",
			action.Scope, strings.Join(action.Groups, ", ")))
	}

	if action.StepUp != StepUpNone {
		// RFC 9470 §3: the answer names the authentication context classes
		// that would satisfy the request in acr_values and their maximum
		// age in max_age. Step-up itself is not implemented yet, so a
		// sensitive action is never issued.
		e := oauth.New(oauth.CodeInsufficientUserAuthentication, "step_up_required", fmt.Sprintf(
			"The action %q requires step-up authentication (%s) before a token can be issued.",
			action.Scope, action.StepUp))
		e.Extra = map[string]any{
			"acr_values": strings.Join(action.acrValues(), " "),
			"max_age":    int64(DefaultStepUpMaxAge / time.Second),
		}
		return e
	}
	return nil
}

// lifetime returns the token's expiry in Unix seconds: the smallest of
// the action's max_ttl, the server maximum and the subject token's
// remaining life, so a token never outlives its subject token.
func lifetime(now time.Time, action *Action, serverMax time.Duration, subjectExpiry time.Time) int64 {
	ttl := min(action.MaxTTL, serverMax)
	exp := now.Add(ttl).Unix()
	return min(exp, subjectExpiry.Unix())
}
