package exchange

import (
	"context"
	"time"

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
	// Start is when the request arrived, for the latency in the record.
	Start time.Time
	// ContextHash is the hash of the context the assistant sent, if any.
	ContextHash string

	claims   *Claims
	recorded bool
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
