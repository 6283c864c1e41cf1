package exchange

import (
	"context"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/devicebind"
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

	claims   *Claims
	recorded bool
	// event is the audit event of the request; empty means a token
	// exchange.
	event audit.Event
	// sessionRequested is set once a request asks for a session.
	sessionRequested bool
	// session is the session decision of a session request or a refresh.
	session *sessionGrant
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
