package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/sotto-auth/sotto/internal/oauth"
)

// ExplainRequest is what an exchange would present, for Explain. The
// subject comes from SubjectToken, which is verified like an exchange's
// subject_token, or else from SubjectClaims, which are taken as given.
type ExplainRequest struct {
	// Client is the registered client, or nil when ClientID names none.
	Client   Client
	ClientID string
	// SubjectToken is an ID token to verify.
	SubjectToken string
	// SubjectClaims are ID token claims (iss, sub, groups, acr,
	// auth_time, exp) to use without a signature.
	SubjectClaims map[string]any
	DeviceJKT     string
	Scope         string
	Audience      string
	// AuthorizationDetails is the RFC 9396 parameter as a JSON array.
	AuthorizationDetails string
}

// Rule results.
const (
	RulePass    = "pass"
	RuleFail    = "fail"
	RuleSkipped = "skipped"
)

// Rule is one check of the exchange and how it came out.
type Rule struct {
	Name   string `json:"rule"`
	Result string `json:"result"`
	// Reason is the refusal's reason code, or what made the check pass.
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Explanation is the decision an exchange would get and every rule that
// applied, in the order the token endpoint runs them.
type Explanation struct {
	// Decision is issued, refused or step_up_required.
	Decision         string `json:"decision"`
	Error            string `json:"error,omitempty"`
	ErrorDescription string `json:"error_description,omitempty"`
	Rules            []Rule `json:"rules"`
	CatalogNumber    int64  `json:"catalog_version"`
	CatalogEntry     string `json:"catalog_entry,omitempty"`
	Subject          string `json:"subject,omitempty"`
	// ExpiresIn is the lifetime a token would have, in seconds.
	ExpiresIn int64 `json:"expires_in,omitempty"`
}

// Explain runs the decision of a token exchange on req without issuing,
// recording or starting anything: no token, no audit record, no step-up
// challenge, no proof claim. A DPoP proof is not checked, since only its
// key's thumbprint matters to the policy. Every rule whose inputs are
// known is evaluated, also after an earlier one failed; the first failure
// decides, as at the token endpoint.
func (h *Handler) Explain(ctx context.Context, req ExplainRequest) *Explanation {
	catalog := h.live.Load()
	out := &Explanation{CatalogNumber: catalog.Number}
	var first *oauth.Error
	add := func(name string, err error, pass string) {
		if err == nil {
			out.Rules = append(out.Rules, Rule{Name: name, Result: RulePass, Reason: pass})
			return
		}
		e := oauth.From(err)
		out.Rules = append(out.Rules, Rule{Name: name, Result: RuleFail, Reason: e.Reason, Detail: e.Description})
		if first == nil {
			first = e
		}
	}
	skip := func(name, why string) {
		out.Rules = append(out.Rules, Rule{Name: name, Result: RuleSkipped, Detail: why})
	}

	h.explainClient(req, add)
	skip("dpop_proof", "Explain takes the device key thumbprint and checks no proof.")

	subject, err := h.explainSubject(ctx, req)
	add("subject", err, "subject_valid")
	if subject != nil {
		out.Subject = subject.ID
	}

	action, err := h.lookupAction(catalog, url.Values{"scope": {req.Scope}})
	add("scope", err, "scope_known")
	if action == nil {
		out.finish(first)
		return out
	}
	out.CatalogEntry = action.Version

	form := url.Values{}
	if req.Audience != "" {
		form.Set("audience", req.Audience)
	}
	_, err = selectTarget(form, action)
	add("target", err, "target_allowed")
	_, err = parseDetails(req.AuthorizationDetails, action)
	add("authorization_details", err, "details_valid")

	var disabled error
	if action.Disabled {
		disabled = actionDisabled(action)
	}
	add("action_enabled", disabled, "action_enabled")

	if subject == nil {
		for _, name := range []string{"device_trust", "groups", "step_up", "lifetime"} {
			skip(name, "The subject is not valid, so the rules about it cannot be evaluated.")
		}
		out.finish(first)
		return out
	}
	trust, err := h.deviceTrust(ctx, req.DeviceJKT, subject.ID)
	if err != nil {
		add("device_trust", oauth.ServerError(err), "")
	} else if e := checkDevice(trust, action); e != nil {
		add("device_trust", e, "")
	} else {
		add("device_trust", nil, "device_"+trust)
	}

	if e := decide(subject, action); e != nil {
		add("groups", e, "")
	} else {
		add("groups", nil, "group_allowed")
	}

	stepUp := h.explainStepUp(subject, action)
	add("step_up", stepUp.err, stepUp.pass)

	now := h.Now()
	out.ExpiresIn = lifetime(now, action, h.MaxTTL, subject.ExpiresAt) - now.Unix()
	var expiring error
	if out.ExpiresIn < 1 {
		expiring = oauth.InvalidRequest("subject_expiring", "The subject expires within a second.")
		out.ExpiresIn = 0
	}
	add("lifetime", expiring, fmt.Sprintf("lifetime_%ds", out.ExpiresIn))
	out.finish(first)
	return out
}

func (h *Handler) explainClient(req ExplainRequest, add func(string, error, string)) {
	if req.Client == nil {
		add("client", oauth.New("invalid_client", "client_unknown", fmt.Sprintf(
			"No client %s is registered.", quote(req.ClientID))), "")
		return
	}
	add("client", nil, "client_known")
	var grant error
	if !slices.Contains(req.Client.GetGrantTypes(), GrantType) {
		grant = oauth.New("unauthorized_client", "grant_not_allowed",
			"The client is not registered for the token exchange grant.")
	}
	add("client_grant", grant, "grant_allowed")
	var disabled error
	if IsDisabled(req.Client) {
		disabled = errClientDisabled
	}
	add("client_enabled", disabled, "client_enabled")
}

func (h *Handler) explainSubject(ctx context.Context, req ExplainRequest) (*Subject, error) {
	if req.SubjectToken != "" {
		s, err := h.Subjects.Verify(ctx, req.SubjectToken)
		var se *SubjectError
		if errors.As(err, &se) {
			return nil, oauth.InvalidRequest("subject_"+se.Check, "The subject_token was rejected: "+se.Description)
		}
		return s, err
	}
	if req.SubjectClaims == nil {
		return nil, oauth.InvalidRequest("subject_token_missing", "Send subject_token or subject_claims.")
	}
	return h.Subjects.SubjectFromClaims(req.SubjectClaims, h.Now())
}

type stepUpOutcome struct {
	err  error
	pass string
}

// explainStepUp applies the step-up rule of requireStepUp without
// starting a challenge.
func (h *Handler) explainStepUp(subject *Subject, action *Action) stepUpOutcome {
	if action.StepUp == StepUpNone {
		return stepUpOutcome{pass: "step_up_not_required"}
	}
	if slices.Contains(h.StrongACRValues[subject.Issuer], subject.ACR) && subject.ACR != "" &&
		!subject.AuthTime.IsZero() && h.Now().Sub(subject.AuthTime) <= action.MaxAge {
		return stepUpOutcome{pass: "step_up_satisfied_by_acr"}
	}
	return stepUpOutcome{err: oauth.New(oauth.CodeInsufficientUserAuthentication, "step_up_required", fmt.Sprintf(
		"The action %s requires step-up authentication (%s); the exchange would answer with a challenge.",
		quote(action.Scope), action.StepUp))}
}

func (out *Explanation) finish(first *oauth.Error) {
	switch {
	case first == nil:
		out.Decision = "issued"
	case first.Code == oauth.CodeInsufficientUserAuthentication:
		out.Decision = "step_up_required"
	default:
		out.Decision = "refused"
	}
	if first != nil {
		out.Error, out.ErrorDescription = first.Code, first.Description
	}
}

// SubjectFromClaims builds the subject of unverified ID token claims, for
// explaining a decision. iss must name a trusted issuer and sub must be
// set; the signature, aud and the time claims other than exp are not
// checked. A missing exp counts as ten minutes from now.
func (v *SubjectVerifier) SubjectFromClaims(claims map[string]any, now time.Time) (*Subject, error) {
	raw := make(map[string]json.RawMessage, len(claims))
	for k, value := range claims {
		b, err := json.Marshal(value)
		if err != nil {
			return nil, oauth.InvalidRequest("subject_claims_invalid", "The subject_claims are not JSON values.")
		}
		raw[k] = b
	}
	iss, _ := claimString(raw, "iss")
	issuer, ok := v.issuers[iss]
	if !ok {
		return nil, oauth.InvalidRequest("subject_iss", fmt.Sprintf(
			"The subject_claims iss %s is not a trusted issuer.", quote(iss)))
	}
	sub, _ := claimString(raw, "sub")
	if sub == "" {
		return nil, oauth.InvalidRequest("subject_sub", "The subject_claims have no sub.")
	}
	s := &Subject{
		Issuer:    issuer.Issuer,
		Subject:   sub,
		ID:        issuer.SubjectPrefix + "|" + sub,
		Groups:    claimGroups(raw, issuer.GroupsClaim),
		AMR:       claimStrings(raw, "amr"),
		ExpiresAt: now.Add(10 * time.Minute),
	}
	s.ACR, _ = claimString(raw, "acr")
	if exp, ok, err := claimNumericDate(raw, "exp"); err == nil && ok {
		s.ExpiresAt = exp
	}
	if at, ok, err := claimNumericDate(raw, "auth_time"); err == nil && ok {
		s.AuthTime = at
	}
	return s, nil
}
