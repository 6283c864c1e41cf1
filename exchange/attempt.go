package exchange

import (
	"context"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/devicebind"
	"github.com/sotto-auth/sotto/stepup"
	"github.com/sotto-auth/sotto/storage"
)

// Attempt collects what an exchange has established so far, so a refusal
// at any step can still be recorded with everything known at that point:
// the client, the device key, the subject, the action. The token endpoint
// creates one per request and passes it in the context.
type Attempt struct {
	RequestID string
	ClientID  string
	Proof     *devicebind.Proof
	Subject   *Subject
	Action    *Action
	Audience  string
	// DeviceTrust is the trust level of the proof's key for the subject,
	// once the device policy has looked it up.
	DeviceTrust string
	// Details are the accepted authorization_details (RFC 9396).
	Details *Details

	// challenge is a new step-up challenge, stored with the refusal's
	// audit record; completion is an approved one the token uses.
	challenge  *storage.StepUpChallenge
	completion *stepup.Completion
	// Start is when the request arrived, for the latency in the record.
	Start time.Time
	// ContextHash is the hash of the context the assistant sent, if any.
	ContextHash string

	claims   *Claims
	recorded bool
	// event is the audit event of the request; empty means a token
	// exchange.
	event audit.Event
	// sessionRequested is set once a request asks for a session.
	sessionRequested bool
	// session is the session decision of a session request or a refresh.
	session *sessionGrant
	// catalog is the catalog the exchange was decided under, read once
	// per exchange, so a change made meanwhile never mixes two versions.
	catalog *Catalog
	// code is the authorization code a code redemption presented.
	code *codeRedemption
}

type attemptKey struct{}

// WithAttempt returns a context that carries a.
func WithAttempt(ctx context.Context, a *Attempt) context.Context {
	return context.WithValue(ctx, attemptKey{}, a)
}

func attemptFrom(ctx context.Context) *Attempt {
	if a, ok := ctx.Value(attemptKey{}).(*Attempt); ok {
		return a
	}
	return &Attempt{}
}

// StepUpMethod returns the method of the step-up that completed the
// exchange (push or passkey), or "" when none did.
func (a *Attempt) StepUpMethod() string {
	if a == nil || a.completion == nil {
		return ""
	}
	return a.completion.Method
}
