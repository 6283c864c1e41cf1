package exchange

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sotto-auth/sotto/internal/oauth"
)

// decide applies the catalog's group policy to a verified subject asking
// for action. It returns nil when the subject may have the action; the
// step-up that follows is requireStepUp.
func decide(subject *Subject, action *Action) *oauth.Error {
	if len(action.Groups) > 0 && !slices.ContainsFunc(action.Groups, func(g string) bool {
		return slices.Contains(subject.Groups, g)
	}) {
		return oauth.New("invalid_scope", "group_not_allowed", fmt.Sprintf(
			"The action %s is limited to members of %s; the subject token names none of these groups.",
			quote(action.Scope), quote(strings.Join(action.Groups, ", "))))
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
