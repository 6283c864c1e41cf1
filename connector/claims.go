package connector

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Claims are the verified claims of an action token (RFC 9068, Section 2.2).
type Claims struct {
	Issuer   string
	Subject  string
	Audience []string

	// ClientID is the client the token was issued to (RFC 8693, Section 4.3).
	ClientID string

	// Scope is the space-separated scope claim (RFC 8693, Section 4.2).
	Scope string

	// ACR, AMR and AuthTime describe the user's authentication
	// (RFC 9068, Section 2.2.1). AuthTime is zero when the token has none.
	ACR      string
	AMR      []string
	AuthTime time.Time

	// AuthorizationDetails is the authorization_details claim of RFC 9396,
	// Section 9.1, as sent, or nil.
	AuthorizationDetails json.RawMessage

	// Actor is the act claim of a delegated token (RFC 8693, Section 4.1),
	// or nil.
	Actor *Actor

	// JKT is the cnf.jkt claim: the RFC 7638 thumbprint of the DPoP key the
	// token is bound to (RFC 9449, Section 6.1).
	JKT string

	// TokenID is the jti claim.
	TokenID string

	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Actor is the party acting for the subject (RFC 8693, Section 4.1). Actor
// chains nest through the Actor field.
type Actor struct {
	Subject string `json:"sub"`
	Issuer  string `json:"iss,omitempty"`
	Actor   *Actor `json:"act,omitempty"`
}

// HasScope reports whether the space-separated scope claim contains scope.
func (c *Claims) HasScope(scope string) bool {
	return slices.Contains(strings.Fields(c.Scope), scope)
}

type claimsKey struct{}

// WithClaims returns a copy of ctx that carries claims.
func WithClaims(ctx context.Context, claims *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, claims)
}

// ClaimsFrom returns the claims that [Validator.Require] stored in the
// request context.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	claims, ok := ctx.Value(claimsKey{}).(*Claims)
	return claims, ok && claims != nil
}
