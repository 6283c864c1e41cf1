package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/sotto-auth/sotto/audit"
)

// AuthorizationCode is the stored record of an authorization code (RFC
// 6749 §4.1.2): its hash, never the code, the request it responds to and the
// identity of the login it carries into the session.
type AuthorizationCode struct {
	Signature     string // hex SHA-256 of the code; primary key
	ClientID      string
	RedirectURI   string
	CodeChallenge string // the S256 code_challenge (RFC 7636 §4.2)
	DPoPJKT       string // the dpop_jkt of the request (RFC 9449 §10), or ""
	Subject       string // <subject_prefix>|<corporate sub>
	SubjectIssuer string
	Groups        []string
	ACR           string
	AMR           []string
	AuthTime      *time.Time
	LoginID       string // the browser login the code came from
	IssuedAt      time.Time
	ExpiresAt     time.Time
	UsedAt        *time.Time
	SessionID     string // the session of the first redemption
}

// RedeemOutcome is how a code redemption ended.
type RedeemOutcome int

// Redemption outcomes.
const (
	// Redeemed means the code is used and the session is stored.
	Redeemed RedeemOutcome = iota
	// RedeemReplayed means the DPoP proof was already claimed.
	RedeemReplayed
	// RedeemInactive means the code expired or is unknown.
	RedeemInactive
	// RedeemReused means the code was redeemed before: the session of the
	// first redemption was revoked (RFC 6749 §4.1.2).
	RedeemReused
)

// RedeemResult is the outcome of RedeemAuthorizationCode.
type RedeemResult struct {
	Outcome RedeemOutcome
	// Revoked is the number of tokens a reuse revoked.
	Revoked int64
}

type authorizationCodeModel struct {
	Signature     string `gorm:"primaryKey"`
	ClientID      string
	RedirectURI   string
	CodeChallenge string
	DPoPJKT       string `gorm:"column:dpop_jkt"`
	Subject       string
	SubjectIssuer string
	Groups        []byte
	ACR           string `gorm:"column:acr"`
	AMR           []byte `gorm:"column:amr"`
	AuthTime      *time.Time
	LoginID       string
	IssuedAt      time.Time
	ExpiresAt     time.Time
	UsedAt        *time.Time
	SessionID     *string
}

func (authorizationCodeModel) TableName() string { return "authorization_codes" }

// CreateAuthorizationCode stores c with the audit record rec in one
// transaction.
func (s *Store) CreateAuthorizationCode(ctx context.Context, c AuthorizationCode, rec audit.Record) error {
	groups, err := json.Marshal(nonNil(c.Groups))
	if err != nil {
		return err
	}
	amr, err := json.Marshal(nonNil(c.AMR))
	if err != nil {
		return err
	}
	row := authorizationCodeModel{
		Signature:     c.Signature,
		ClientID:      c.ClientID,
		RedirectURI:   c.RedirectURI,
		CodeChallenge: c.CodeChallenge,
		DPoPJKT:       c.DPoPJKT,
		Subject:       c.Subject,
		SubjectIssuer: c.SubjectIssuer,
		Groups:        groups,
		ACR:           c.ACR,
		AMR:           amr,
		AuthTime:      dbTimePtr(c.AuthTime),
		LoginID:       c.LoginID,
		IssuedAt:      dbTime(c.IssuedAt),
		ExpiresAt:     dbTime(c.ExpiresAt),
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("insert authorization code: %w", err)
		}
		return appendAudit(tx, rec)
	})
	if err != nil {
		return fmt.Errorf("storage: create authorization code: %w", err)
	}
	return nil
}

// AuthorizationCode returns the code whose hash is signature, used or
// not, or ErrNotFound.
func (s *Store) AuthorizationCode(ctx context.Context, signature string) (*AuthorizationCode, error) {
	var m authorizationCodeModel
	if err := s.db.WithContext(ctx).Where("signature = ?", signature).Take(&m).Error; err != nil {
		return nil, fmt.Errorf("storage: read authorization code: %w", notFound(err))
	}
	c := &AuthorizationCode{
		Signature:     m.Signature,
		ClientID:      m.ClientID,
		RedirectURI:   m.RedirectURI,
		CodeChallenge: m.CodeChallenge,
		DPoPJKT:       m.DPoPJKT,
		Subject:       m.Subject,
		SubjectIssuer: m.SubjectIssuer,
		ACR:           m.ACR,
		AuthTime:      utcPtr(m.AuthTime),
		LoginID:       m.LoginID,
		IssuedAt:      m.IssuedAt.UTC(),
		ExpiresAt:     m.ExpiresAt.UTC(),
		UsedAt:        utcPtr(m.UsedAt),
		SessionID:     stringOf(m.SessionID),
	}
	if err := json.Unmarshal(m.Groups, &c.Groups); err != nil {
		return nil, fmt.Errorf("storage: decode groups of an authorization code: %w", err)
	}
	if err := json.Unmarshal(m.AMR, &c.AMR); err != nil {
		return nil, fmt.Errorf("storage: decode amr of an authorization code: %w", err)
	}
	return c, nil
}

// RedeemAuthorizationCode marks the code whose hash is signature used and
// stores the new session of w with its first tokens, in one transaction.
// The conditional UPDATE ... WHERE used_at IS NULL lets exactly one
// redemption through. A code that was already used is a replay: RFC 6749
// §4.1.2 says the server should revoke every token issued from the
// code, so the session of the first redemption is revoked in the same
// transaction, w.Audit is replaced by a revocation record with the
// count, and the outcome is RedeemReused.
func (s *Store) RedeemAuthorizationCode(ctx context.Context, signature string, now time.Time, w SessionWrite) (RedeemResult, error) {
	if w.Session == nil {
		return RedeemResult{}, errors.New("storage: redeem authorization code: the session is missing")
	}
	var result RedeemResult
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		replayed, err := claimProof(tx, w.Proof)
		if err != nil {
			return err
		}
		if replayed {
			result.Outcome = RedeemReplayed
			return appendAudit(tx, w.ReplayAudit)
		}

		at := dbTime(now)
		res := tx.Model(&authorizationCodeModel{}).
			Where("signature = ? AND used_at IS NULL AND expires_at > ?", signature, at).
			Updates(map[string]any{"used_at": at, "session_id": w.Session.ID})
		if res.Error != nil {
			return fmt.Errorf("mark authorization code used: %w", res.Error)
		}
		if res.RowsAffected == 1 {
			result.Outcome = Redeemed
			return insertSession(tx, w)
		}

		var row authorizationCodeModel
		err = tx.Where("signature = ?", signature).Take(&row).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("read authorization code: %w", err)
		}
		if err != nil || row.UsedAt == nil {
			result.Outcome = RedeemInactive
			w.Audit.Decision = audit.DecisionRefused
			w.Audit.Reason = "authorization_code_inactive"
			return appendAudit(tx, w.Audit)
		}
		var n int64
		if row.SessionID != nil {
			if n, err = revokeSession(tx, *row.SessionID, at); err != nil {
				return err
			}
		}
		result.Outcome = RedeemReused
		result.Revoked = n
		rec := w.Audit
		rec.Event = audit.EventRevocation
		rec.Decision = audit.DecisionRevoked
		rec.Reason = "authorization_code_reuse"
		rec.Detail = "An authorization code was redeemed a second time, so the session issued from it was revoked (RFC 6749 Section 4.1.2)."
		rec.TokenID = stringOf(row.SessionID)
		rec.TokenExpiresAt = time.Time{}
		rec.Count = int(n)
		return appendAudit(tx, rec)
	})
	if err != nil {
		return RedeemResult{}, fmt.Errorf("storage: redeem authorization code: %w", err)
	}
	return result, nil
}

// PendingRequest is state kept for the few minutes of one browser
// sign-in: a pushed authorization request (RFC 9126), a login in
// progress, or a logout waiting for the IdP. Data is opaque to storage.
//
// NOTE: expired pending requests and authorization codes are never
// read again but stay in their tables; nothing deletes them yet.
type PendingRequest struct {
	ID        string // hex SHA-256 of the handle the browser or client holds
	Kind      string
	ClientID  string
	Data      []byte
	ExpiresAt time.Time
}

type pendingRequestModel struct {
	ID        string `gorm:"primaryKey"`
	Kind      string
	ClientID  string
	Data      []byte
	ExpiresAt time.Time
}

func (pendingRequestModel) TableName() string { return "pending_requests" }

// PutPendingRequest inserts p, or replaces the data and expiry of the
// pending request with the same ID and kind.
func (s *Store) PutPendingRequest(ctx context.Context, p PendingRequest) error {
	row := pendingRequestModel{ID: p.ID, Kind: p.Kind, ClientID: p.ClientID, Data: p.Data, ExpiresAt: dbTime(p.ExpiresAt)}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&pendingRequestModel{}).Where("id = ? AND kind = ?", p.ID, p.Kind).
			Updates(map[string]any{"data": p.Data, "expires_at": row.ExpiresAt})
		if res.Error != nil || res.RowsAffected == 1 {
			return res.Error
		}
		return tx.Create(&row).Error
	})
	if err != nil {
		return fmt.Errorf("storage: put pending request: %w", err)
	}
	return nil
}

// PendingRequest returns the unexpired pending request of kind whose ID
// is id, or ErrNotFound.
func (s *Store) PendingRequest(ctx context.Context, kind, id string, now time.Time) (*PendingRequest, error) {
	var m pendingRequestModel
	err := s.db.WithContext(ctx).Where("id = ? AND kind = ? AND expires_at > ?", id, kind, dbTime(now)).Take(&m).Error
	if err != nil {
		return nil, fmt.Errorf("storage: read pending request: %w", notFound(err))
	}
	return &PendingRequest{ID: m.ID, Kind: m.Kind, ClientID: m.ClientID, Data: m.Data, ExpiresAt: m.ExpiresAt.UTC()}, nil
}

// TakePendingRequest deletes and returns the unexpired pending request of
// kind whose ID is id. Of two concurrent calls one gets the request and
// the other ErrNotFound, so a request can be used once.
func (s *Store) TakePendingRequest(ctx context.Context, kind, id string, now time.Time) (*PendingRequest, error) {
	var out *PendingRequest
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var m pendingRequestModel
		if err := tx.Where("id = ? AND kind = ? AND expires_at > ?", id, kind, dbTime(now)).Take(&m).Error; err != nil {
			return notFound(err)
		}
		res := tx.Where("id = ? AND kind = ?", id, kind).Delete(&pendingRequestModel{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		out = &PendingRequest{ID: m.ID, Kind: m.Kind, ClientID: m.ClientID, Data: m.Data, ExpiresAt: m.ExpiresAt.UTC()}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: take pending request: %w", err)
	}
	return out, nil
}
