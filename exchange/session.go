package exchange

import (
	"encoding/json"
	"time"

	"github.com/ory/fosite"
)

// Session is the fosite session of an exchange: the claims of the action
// token being issued. It round-trips through JSON, which is how the token
// record stores it.
type Session struct {
	Claims    Claims                         `json:"claims"`
	ExpiresAt map[fosite.TokenType]time.Time `json:"expires_at,omitempty"`
	// Groups are the groups of the login, kept for a session access token
	// so the actions exchanged from it are checked against them.
	Groups []string `json:"groups,omitempty"`
}

// NewSession returns an empty session.
func NewSession() *Session {
	return &Session{ExpiresAt: map[fosite.TokenType]time.Time{}}
}

// SetExpiresAt implements fosite.Session.
func (s *Session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.ExpiresAt == nil {
		s.ExpiresAt = map[fosite.TokenType]time.Time{}
	}
	s.ExpiresAt[key] = exp
}

// GetExpiresAt implements fosite.Session.
func (s *Session) GetExpiresAt(key fosite.TokenType) time.Time { return s.ExpiresAt[key] }

// GetUsername implements fosite.Session.
func (s *Session) GetUsername() string { return s.Claims.Subject }

// GetSubject implements fosite.Session.
func (s *Session) GetSubject() string { return s.Claims.Subject }

// Clone implements fosite.Session with a deep copy.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil
	}
	out := NewSession()
	if err := json.Unmarshal(b, out); err != nil {
		return nil
	}
	return out
}

// Claims are the claims of an action token: the JWT access token profile
// of RFC 9068 §2.2 plus the confirmation of RFC 9449 §6.1 and the parent
// the token was exchanged from.
type Claims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	ID       string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	// Confirmation binds the token to the DPoP key (RFC 9449 §6.1).
	Confirmation Confirmation `json:"cnf"`
	// Parent identifies the subject token or session this token was
	// exchanged from, so revoking the parent can end its children.
	Parent string `json:"sotto_parent,omitempty"`
	// SubjectIssuer is the corporate issuer that asserted the subject.
	SubjectIssuer string `json:"sotto_subject_issuer,omitempty"`
	// CatalogEntry is the version of the catalog entry the decision was
	// made under, as in the audit record's catalog_entry.
	CatalogEntry string `json:"sotto_catalog_entry,omitempty"`
	// CatalogVersion is the number of the stored catalog version the
	// decision was made under, as in the audit record's catalog_number.
	CatalogVersion int64 `json:"sotto_catalog_version,omitempty"`
	// AuthorizationDetails are the accepted RFC 9396 details (Section 9.1
	// for JWT access tokens).
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	// SessionID is the session the token belongs to or was exchanged
	// from, as the sid claim of the IANA JWT claims registry.
	SessionID string `json:"sid,omitempty"`
}

// Confirmation is the cnf claim (RFC 7800 §3.1) with the JWK SHA-256
// thumbprint member jkt of RFC 9449 §6.1.
type Confirmation struct {
	JKT string `json:"jkt"`
}
