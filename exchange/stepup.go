package exchange

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/stepup"
	"github.com/sotto-auth/sotto/storage"
)

// StepUp is the step-up service the exchange hands sensitive actions to.
type StepUp interface {
	Begin(ctx context.Context, b stepup.Binding) (*storage.StepUpChallenge, error)
	Created(ctx context.Context, c *storage.StepUpChallenge)
	Challenge(c *storage.StepUpChallenge, maxAge time.Duration) *oauth.Error
	Redeem(ctx context.Context, id string, b stepup.Binding) (*stepup.Completion, error)
}

// requireStepUp is the step-up part of the policy (RFC 9470, Section 3).
// It returns nil when the action needs no step-up or the subject token
// already satisfies it; the completion of an approved challenge named by
// step_up_challenge; or the error to send, which for a new challenge is
// insufficient_user_authentication with the challenge.
func (h *Handler) requireStepUp(ctx context.Context, form url.Values, attempt *Attempt) (*stepup.Completion, error) {
	action, subject := attempt.Action, attempt.Subject
	if action.StepUp == StepUpNone {
		if form.Get("step_up_challenge") != "" {
			return nil, oauth.InvalidRequest("step_up_not_required", fmt.Sprintf(
				"The action %s needs no step-up; omit step_up_challenge.", action.Scope))
		}
		return nil, nil
	}
	now := h.Now()

	// A corporate acr that the operator lists as strong for this issuer
	// satisfies step-up when its auth_time is within max_age (OpenID
	// Connect Core 1.0, Section 2: acr and auth_time).
	if slices.Contains(h.StrongACRValues[subject.Issuer], subject.ACR) && subject.ACR != "" &&
		!subject.AuthTime.IsZero() && now.Sub(subject.AuthTime) <= action.MaxAge &&
		form.Get("step_up_challenge") == "" {
		return nil, nil
	}

	if h.StepUp == nil {
		e := oauth.New(oauth.CodeInsufficientUserAuthentication, "step_up_required", fmt.Sprintf(
			"The action %s requires step-up authentication (%s) before a token can be issued.",
			action.Scope, action.StepUp))
		e.Extra = map[string]any{
			"acr_values": strings.Join(action.ACRValues(), " "),
			"max_age":    int64(action.MaxAge / time.Second),
		}
		return nil, e
	}

	binding := stepup.Binding{
		RequestID:     attempt.RequestID,
		Subject:       subject.ID,
		SubjectIssuer: subject.Issuer,
		ClientID:      attempt.ClientID,
		DeviceJKT:     attempt.Proof.JKT,
		Action:        action.Scope,
		Description:   action.Description,
		Audience:      attempt.Audience,
		Methods:       action.methods(),
		MaxAge:        action.MaxAge,
	}
	if d := attempt.Details; d != nil {
		binding.DetailsHash, binding.DetailsJSON = d.Hash, d.JSON
	}

	if id := form.Get("step_up_challenge"); id != "" {
		return h.StepUp.Redeem(ctx, id, binding)
	}
	c, err := h.StepUp.Begin(ctx, binding)
	if err != nil {
		return nil, err
	}
	attempt.challenge = c
	return nil, h.StepUp.Challenge(c, action.MaxAge)
}

// methods returns the step-up methods the action allows.
func (a *Action) methods() []string {
	switch a.StepUp {
	case StepUpPasskey:
		return []string{stepup.MethodPasskey}
	case StepUpPush:
		return []string{stepup.MethodPush}
	default:
		return []string{stepup.MethodPasskey, stepup.MethodPush}
	}
}
