package stepup

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/devicebind"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// Step-up methods a challenge may offer.
const (
	MethodPasskey = "passkey"
	MethodPush    = "push"
)

// Authentication context classes of a completed step-up, the acr of the
// action token.
const (
	ACRPasskey = "urn:sotto:acr:passkey"
	ACRPush    = "urn:sotto:acr:push"
)

// Error codes of RFC 8628, Section 3.5 that a repeated exchange returns
// while its challenge is not approved.
const (
	CodeAuthorizationPending = "authorization_pending"
	CodeSlowDown             = "slow_down"
	CodeAccessDenied         = "access_denied"
	CodeExpiredToken         = "expired_token"
)

// challengeIDBytes is the randomness of a challenge ID: 256 bits, twice
// the minimum of 128.
const challengeIDBytes = 32

// Store is the storage the step-up service needs.
type Store interface {
	StepUpChallenge(ctx context.Context, id string) (*storage.StepUpChallenge, error)
	PollStepUpChallenge(ctx context.Context, id string, now time.Time, interval time.Duration) (bool, error)
	DecideStepUpChallenge(ctx context.Context, id, status, method, approver string, at time.Time, rec audit.Record) (bool, error)
	MarkStepUpDelivered(ctx context.Context, id string, at time.Time, rec audit.Record) error
	CountPushChallenges(ctx context.Context, subject string, since time.Time) (int, error)
	CountPushDenials(ctx context.Context, subject string, since time.Time) (int, error)
	PendingPushChallenges(ctx context.Context, subject string, now time.Time) ([]*storage.StepUpChallenge, error)
	ClaimProof(ctx context.Context, p storage.ProofClaim, rec *audit.Record) error
	EnrollApprover(ctx context.Context, d storage.ApproverDevice, p storage.ProofClaim, rec audit.Record) error
	ApproverDevice(ctx context.Context, jkt string) (*storage.ApproverDevice, error)
	CountApproverDevices(ctx context.Context, subject string) (int, error)
	AppendAudit(ctx context.Context, rec audit.Record) error
}

// IdentityVerifier verifies a corporate ID token of a trusted issuer and
// returns the subject it asserts, as the exchange names it
// ("<subject_prefix>|<sub>"), and the issuer.
type IdentityVerifier interface {
	VerifyIdentity(ctx context.Context, idToken string) (subject, issuer string, err error)
}

// Options configure a Service. Store, Identities and BaseURL are required.
type Options struct {
	Store      Store
	Identities IdentityVerifier
	// BaseURL is the issuer; the step-up endpoints live under it.
	BaseURL string
	// ChallengeTTL is how long a challenge may be completed. Zero means 2m.
	ChallengeTTL time.Duration
	// Interval is the minimum time between two polls. Zero means 5s.
	Interval time.Duration
	Push     PushLimits
	Notifier Notifier
	// DPoP verifies the signed requests of approver devices.
	DPoP   *devicebind.Verifier
	Logger *slog.Logger
	Now    func() time.Time
}

// PushLimits are the push fatigue limits per user.
type PushLimits struct {
	MaxChallenges int           // push challenges per Window; zero means 3
	Window        time.Duration // zero means 10m
	MaxDenials    int           // denials within Lockout that lock push; zero means 3
	Lockout       time.Duration // zero means 30m
	// SelfEnrolment activates an approver device when it enrolls. False,
	// the default, leaves it pending until an administrator activates
	// it: the enrolment is proven by the user's ID token, which an
	// assistant also holds.
	SelfEnrolment bool
}

// Service issues, decides and redeems step-up challenges.
type Service struct {
	Options
	passkeys *passkeys
}

// New returns a Service with the defaults applied.
func New(o Options) *Service {
	if o.ChallengeTTL <= 0 {
		o.ChallengeTTL = 2 * time.Minute
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Push.MaxChallenges <= 0 {
		o.Push.MaxChallenges = 3
	}
	if o.Push.Window <= 0 {
		o.Push.Window = 10 * time.Minute
	}
	if o.Push.MaxDenials <= 0 {
		o.Push.MaxDenials = 3
	}
	if o.Push.Lockout <= 0 {
		o.Push.Lockout = 30 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Notifier == nil {
		o.Notifier = NopNotifier{}
	}
	if o.DPoP == nil {
		o.DPoP = &devicebind.Verifier{Now: o.Now}
	}
	o.BaseURL = strings.TrimSuffix(o.BaseURL, "/")
	return &Service{Options: o}
}

// Binding is the exact request a challenge is bound to. A repeated
// exchange must match its Subject, ClientID, DeviceJKT, Action, Audience
// and DetailsHash.
type Binding struct {
	RequestID     string
	Subject       string
	SubjectIssuer string
	ClientID      string
	DeviceJKT     string
	Action        string
	Description   string
	Audience      string
	DetailsHash   string
	DetailsJSON   []byte
	// Methods are the methods the action allows: passkey, push or both.
	Methods []string
	// MaxAge is the maximum age of the step-up when the token is issued.
	MaxAge time.Duration
}

// Completion is an approved challenge that a repeated exchange may use.
type Completion struct {
	ChallengeID string
	Method      string
	Approver    string
	ACR         string
	AMR         []string
	AuthTime    time.Time
}

// Begin prepares a challenge for b, after the push limits: the caller
// stores it in the exchange's transaction, then calls Created. It returns
// an *oauth.Error when no method can be offered.
func (s *Service) Begin(ctx context.Context, b Binding) (*storage.StepUpChallenge, error) {
	now := s.Now()
	methods := slices.Clone(b.Methods)
	if slices.Contains(methods, MethodPush) {
		refusal, err := s.pushAllowed(ctx, b, now)
		if err != nil {
			return nil, err
		}
		if refusal != nil {
			methods = slices.DeleteFunc(methods, func(m string) bool { return m == MethodPush })
			if len(methods) == 0 {
				return nil, refusal
			}
		}
	}
	id, err := randomID()
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	c := &storage.StepUpChallenge{
		ID:            id,
		RequestID:     b.RequestID,
		Subject:       b.Subject,
		SubjectIssuer: b.SubjectIssuer,
		ClientID:      b.ClientID,
		DeviceJKT:     b.DeviceJKT,
		Action:        b.Action,
		Description:   b.Description,
		Audience:      b.Audience,
		DetailsHash:   b.DetailsHash,
		DetailsJSON:   b.DetailsJSON,
		Methods:       methods,
		Interval:      s.Interval,
		Status:        storage.ChallengePending,
		CreatedAt:     now.UTC(),
		ExpiresAt:     now.Add(s.ChallengeTTL).UTC(),
	}
	if slices.Contains(methods, MethodPush) {
		if c.SpokenNumber, c.Numbers, err = numberChoices(); err != nil {
			return nil, oauth.ServerError(err)
		}
	}
	return c, nil
}

// pushAllowed applies the push fatigue limits to b's subject. It returns
// the refusal to send when push cannot be offered, and records an alert
// when a limit is reached.
func (s *Service) pushAllowed(ctx context.Context, b Binding, now time.Time) (*oauth.Error, error) {
	devices, err := s.Store.CountApproverDevices(ctx, b.Subject)
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	if devices == 0 {
		return oauth.New(CodeAccessDenied, "push_no_approver",
			"No approver device is enrolled for this user, so push approval is not possible; enroll one in the approver app first."), nil
	}

	denials, err := s.Store.CountPushDenials(ctx, b.Subject, now.Add(-s.Push.Lockout))
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	if denials >= s.Push.MaxDenials {
		s.alert(ctx, b, "push_locked", fmt.Sprintf(
			"Push is locked for the user after %d denied challenges within %s.", denials, s.Push.Lockout))
		return oauth.New(CodeAccessDenied, "push_locked", fmt.Sprintf(
			"Push approval is locked for this user after %d denied challenges; retry after %s or use a passkey.",
			denials, minutes(s.Push.Lockout))), nil
	}

	sent, err := s.Store.CountPushChallenges(ctx, b.Subject, now.Add(-s.Push.Window))
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	// NOTE: the count and the insert are not one transaction, so requests
	// racing on several replicas may exceed the limit by a few challenges.
	if sent >= s.Push.MaxChallenges {
		s.alert(ctx, b, "push_rate_limited", fmt.Sprintf(
			"The user reached %d push challenges within %s.", sent, s.Push.Window))
		return oauth.New(CodeAccessDenied, "push_rate_limited", fmt.Sprintf(
			"Too many push approvals were requested for this user: at most %d within %s; retry later.",
			s.Push.MaxChallenges, minutes(s.Push.Window))), nil
	}
	return nil, nil
}

func (s *Service) alert(ctx context.Context, b Binding, reason, detail string) {
	rec := audit.Record{
		Time: s.Now().UTC(), RequestID: b.RequestID, Event: audit.EventStepUp,
		ClientID: b.ClientID, Subject: b.Subject, SubjectIssuer: b.SubjectIssuer,
		DeviceJKT: b.DeviceJKT, Action: b.Action, Audience: b.Audience,
		Decision: audit.DecisionAlert, Reason: reason, Detail: detail,
		AuthorizationDetails: string(b.DetailsJSON), DetailsHash: b.DetailsHash, StepUpMethod: MethodPush,
	}
	s.Logger.WarnContext(ctx, "step-up alert", "request_id", b.RequestID, "subject", b.Subject, "reason", reason)
	if err := s.Store.AppendAudit(ctx, rec); err != nil {
		s.Logger.ErrorContext(ctx, "step-up alert not recorded", "request_id", b.RequestID, "reason", reason, "error", err)
	}
}

// Created hands the notification of a push challenge to the notifier once
// the challenge is stored. A Notifier must return at once; the webhook
// notifier queues the notification and drops it when its queue is full.
func (s *Service) Created(ctx context.Context, c *storage.StepUpChallenge) {
	if !slices.Contains(c.Methods, MethodPush) {
		return
	}
	s.Notifier.Notify(ctx, s.notification(c))
}

// Challenge returns the insufficient_user_authentication error for c
// (RFC 9470, Section 3, extended with the step_up member).
func (s *Service) Challenge(c *storage.StepUpChallenge, maxAge time.Duration) *oauth.Error {
	acr := make([]string, 0, 2)
	for _, m := range c.Methods {
		acr = append(acr, methodACR(m))
	}
	e := oauth.New(oauth.CodeInsufficientUserAuthentication, "step_up_challenge_created", fmt.Sprintf(
		"The action %s requires step-up authentication: complete the challenge with %s, then repeat the exchange with step_up_challenge and a fresh DPoP proof.",
		c.Action, strings.Join(c.Methods, " or ")))
	challenge := map[string]any{
		"challenge_id": c.ID,
		"methods":      c.Methods,
		"expires_in":   int64(c.ExpiresAt.Sub(c.CreatedAt) / time.Second),
		"interval":     int64(c.Interval / time.Second),
		"passkey_url":  s.BaseURL + PathPasskeyPage + "#" + c.ID,
		"push_url":     s.BaseURL + PathPushChallenges + "/" + c.ID,
	}
	if c.SpokenNumber != 0 {
		challenge["spoken_number"] = fmt.Sprintf("%02d", c.SpokenNumber)
	}
	e.Extra = map[string]any{
		"acr_values": strings.Join(acr, " "),
		"max_age":    int64(maxAge / time.Second),
		"step_up":    challenge,
	}
	return e
}

// Redeem checks a repeated exchange's step_up_challenge against b and
// returns the completion when the challenge was approved. Every other
// outcome is an *oauth.Error: the challenge is unknown, bound to another
// request, used, expired, denied, still pending, or polled too fast.
func (s *Service) Redeem(ctx context.Context, id string, b Binding) (*Completion, error) {
	if len(id) > 128 {
		return nil, oauth.New("invalid_grant", "step_up_challenge_unknown",
			"The step_up_challenge is not a challenge of this server; repeat the exchange without it to get a new one.")
	}
	c, err := s.Store.StepUpChallenge(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.New("invalid_grant", "step_up_challenge_unknown",
			"The step_up_challenge is not a challenge of this server; repeat the exchange without it to get a new one.")
	}
	if err != nil {
		return nil, oauth.ServerError(err)
	}

	// The binding is checked before anything about the challenge's state
	// is revealed, so a stolen challenge ID reveals nothing to its holder.
	if field := mismatch(c, b); field != "" {
		s.Logger.WarnContext(ctx, "step-up binding mismatch", "request_id", b.RequestID,
			"challenge_request_id", c.RequestID, "field", field)
		return nil, oauth.New("invalid_grant", "step_up_binding_mismatch", fmt.Sprintf(
			"The step_up_challenge was issued for another %s; repeat the exact exchange that received it, with the same DPoP key.", field))
	}
	now := s.Now()
	if c.UsedAt != nil {
		return nil, oauth.New("invalid_grant", "step_up_challenge_used",
			"The step_up_challenge was already used for a token; repeat the exchange without it to get a new challenge.")
	}
	// RFC 8628, Section 3.5: expired_token once the challenge has expired
	// unless it was approved in time.
	approvedInTime := c.Status == storage.ChallengeApproved && c.DecidedAt != nil && c.DecidedAt.Before(c.ExpiresAt)
	if !now.Before(c.ExpiresAt) && !approvedInTime {
		return nil, oauth.New(CodeExpiredToken, "step_up_expired",
			"The step-up challenge expired before it was approved; repeat the exchange without step_up_challenge to get a new one.")
	}
	switch c.Status {
	case storage.ChallengeDenied:
		return nil, oauth.New(CodeAccessDenied, "step_up_denied",
			"The user denied the step-up challenge; no token is issued for this request.")
	case storage.ChallengePending:
		polled, err := s.Store.PollStepUpChallenge(ctx, c.ID, now, c.Interval)
		if err != nil {
			return nil, oauth.ServerError(err)
		}
		if !polled {
			return nil, oauth.New(CodeSlowDown, "step_up_slow_down", fmt.Sprintf(
				"The exchange was repeated sooner than the interval; wait at least %d seconds between attempts (RFC 8628, Section 3.5).",
				int64(c.Interval/time.Second)+5))
		}
		return nil, oauth.New(CodeAuthorizationPending, "step_up_pending",
			"The step-up challenge is not approved yet; repeat the exchange after the interval.")
	case storage.ChallengeApproved:
	default:
		return nil, oauth.ServerError(fmt.Errorf("step-up challenge in unknown state %q", c.Status))
	}

	authTime := *c.DecidedAt
	if b.MaxAge > 0 && now.Sub(authTime) > b.MaxAge {
		return nil, oauth.New(CodeExpiredToken, "step_up_too_old", fmt.Sprintf(
			"The step-up was approved more than %d seconds ago; repeat the exchange without step_up_challenge to get a new one.",
			int64(b.MaxAge/time.Second)))
	}
	amr := methodAMR(c.Method)
	if c.Method == MethodPasskey && s.passkeys != nil {
		// A credential removed since the approval still counts; its amr
		// then claims a hardware key, as for any passkey.
		p, err := s.passkeys.Store.Passkey(ctx, c.Approver)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, oauth.ServerError(err)
		}
		amr = passkeyAMR(p)
	}
	return &Completion{
		ChallengeID: c.ID,
		Method:      c.Method,
		Approver:    c.Approver,
		ACR:         methodACR(c.Method),
		AMR:         amr,
		AuthTime:    authTime,
	}, nil
}

// mismatch returns the first binding field in which c and b differ, or "".
func mismatch(c *storage.StepUpChallenge, b Binding) string {
	switch {
	case c.ClientID != b.ClientID:
		return "client"
	case c.DeviceJKT != b.DeviceJKT:
		return "DPoP key"
	case c.Subject != b.Subject:
		return "subject"
	case c.Action != b.Action:
		return "action"
	case c.Audience != b.Audience:
		return "audience"
	case c.DetailsHash != b.DetailsHash:
		return "authorization_details"
	}
	return ""
}

func methodACR(method string) string {
	if method == MethodPush {
		return ACRPush
	}
	return ACRPasskey
}

// methodAMR returns the RFC 8176 amr values of a step-up method: push is
// a proof of possession of the approver app's software key on a second
// channel (swk, mca); a passkey is passkeyAMR of its credential.
func methodAMR(method string) []string {
	if method == MethodPush {
		return []string{"mca", "swk"}
	}
	return passkeyAMR(nil)
}

// minutes formats d for an error description, such as "10 minutes".
func minutes(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d minutes", int64(d/time.Minute))
	}
	return fmt.Sprintf("%d seconds", int64(d/time.Second))
}

func randomID() (string, error) {
	b := make([]byte, challengeIDBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random challenge ID: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// numberChoices returns the spoken number and the three distinct numbers of 10
// to 99 the approver app shows, the spoken one at a random place.
func numberChoices() (int, []int, error) {
	var numbers []int
	for len(numbers) < 3 {
		n, err := rand.Int(rand.Reader, big.NewInt(90))
		if err != nil {
			return 0, nil, fmt.Errorf("draw number: %w", err)
		}
		v := int(n.Int64()) + 10
		if !slices.Contains(numbers, v) {
			numbers = append(numbers, v)
		}
	}
	// The first draw is the spoken number; the list is sorted, so its position reveals nothing.
	spoken := numbers[0]
	slices.Sort(numbers)
	return spoken, numbers, nil
}

// writeJSON writes v with Cache-Control: no-store.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = jsonEncode(w, v)
}
