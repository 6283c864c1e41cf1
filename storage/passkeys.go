package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/sotto-auth/sotto/audit"
)

// Passkey is a WebAuthn credential record (WebAuthn Level 3, Section 4:
// credential record) registered by a user for step-up.
type Passkey struct {
	ID         string // base64url credential ID
	Subject    string
	UserHandle []byte
	// PublicKey is the COSE_Key of the credential public key.
	PublicKey []byte
	SignCount uint32
	AAGUID    string
	// The authenticator data flags at registration (WebAuthn Level 3,
	// Section 6.1); BackupEligible tells a synced passkey.
	UserPresent       bool
	UserVerified      bool
	BackupEligible    bool
	BackupState       bool
	AttestationFormat string
	Transports        []string
	Name              string
	CreatedAt         time.Time
	LastUsedAt        *time.Time
	// FlaggedAt is set when the credential may be cloned; a flagged
	// credential is refused.
	FlaggedAt  *time.Time
	FlagReason string
}

type passkeyModel struct {
	ID                string `gorm:"primaryKey"`
	Subject           string
	UserHandle        []byte
	PublicKey         []byte
	SignCount         int64
	AAGUID            string `gorm:"column:aaguid"`
	UserPresent       bool
	UserVerified      bool
	BackupEligible    bool
	BackupState       bool
	AttestationFormat string
	Transports        string
	Name              string
	CreatedAt         time.Time
	LastUsedAt        *time.Time
	FlaggedAt         *time.Time
	FlagReason        string
}

func (passkeyModel) TableName() string { return "passkey_credentials" }

func (m passkeyModel) toPasskey() *Passkey {
	return &Passkey{
		ID: m.ID, Subject: m.Subject, UserHandle: m.UserHandle, PublicKey: m.PublicKey,
		SignCount: uint32(m.SignCount), AAGUID: m.AAGUID,
		UserPresent: m.UserPresent, UserVerified: m.UserVerified,
		BackupEligible: m.BackupEligible, BackupState: m.BackupState,
		AttestationFormat: m.AttestationFormat, Transports: strings.Fields(m.Transports),
		Name: m.Name, CreatedAt: m.CreatedAt.UTC(), LastUsedAt: utcPtr(m.LastUsedAt),
		FlaggedAt: utcPtr(m.FlaggedAt), FlagReason: m.FlagReason,
	}
}

// ErrPasskeyTaken is returned by RegisterPasskey for a credential ID that
// is already registered.
var ErrPasskeyTaken = errors.New("storage: passkey credential ID already registered")

// RegisterPasskey stores p and appends rec, in one transaction. A
// credential ID registered before, by any user, is ErrPasskeyTaken
// (WebAuthn Level 3, Section 7.1: the credential ID must not be
// registered for any other user).
func (s *Store) RegisterPasskey(ctx context.Context, p Passkey, rec audit.Record) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&passkeyModel{}).Where("id = ?", p.ID).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrPasskeyTaken
		}
		m := passkeyModel{
			ID: p.ID, Subject: p.Subject, UserHandle: p.UserHandle, PublicKey: p.PublicKey,
			SignCount: int64(p.SignCount), AAGUID: p.AAGUID,
			UserPresent: p.UserPresent, UserVerified: p.UserVerified,
			BackupEligible: p.BackupEligible, BackupState: p.BackupState,
			AttestationFormat: p.AttestationFormat, Transports: strings.Join(p.Transports, " "),
			Name: p.Name, CreatedAt: dbTime(p.CreatedAt),
		}
		if err := tx.Create(&m).Error; err != nil {
			return err
		}
		return appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)})
	})
	if errors.Is(err, ErrPasskeyTaken) {
		return err
	}
	if err != nil {
		return fmt.Errorf("storage: register passkey: %w", err)
	}
	return nil
}

// Passkey returns the credential with the base64url ID id, or ErrNotFound.
func (s *Store) Passkey(ctx context.Context, id string) (*Passkey, error) {
	var m passkeyModel
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&m).Error; err != nil {
		return nil, fmt.Errorf("storage: load passkey: %w", notFound(err))
	}
	return m.toPasskey(), nil
}

// Passkeys returns the credentials of subject, oldest first.
func (s *Store) Passkeys(ctx context.Context, subject string) ([]*Passkey, error) {
	var rows []passkeyModel
	if err := s.db.WithContext(ctx).Where("subject = ?", subject).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("storage: list passkeys: %w", err)
	}
	out := make([]*Passkey, len(rows))
	for i, r := range rows {
		out[i] = r.toPasskey()
	}
	return out, nil
}

// RemovePasskey deletes the credential id of subject and appends rec, in
// one transaction. It returns ErrNotFound, and writes nothing, when
// subject has no such credential.
func (s *Store) RemovePasskey(ctx context.Context, subject, id string, rec audit.Record) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Where("id = ? AND subject = ?", id, subject).Delete(&passkeyModel{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)})
	})
	if err != nil {
		return fmt.Errorf("storage: remove passkey: %w", err)
	}
	return nil
}

// FlagPasskey marks the credential id as possibly cloned with reason and
// appends rec, in one transaction. A credential flagged before keeps its
// first flag time.
func (s *Store) FlagPasskey(ctx context.Context, id, reason string, at time.Time, rec audit.Record) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&passkeyModel{}).Where("id = ? AND flagged_at IS NULL", id).
			Updates(map[string]any{"flagged_at": dbTime(at), "flag_reason": reason})
		if res.Error != nil {
			return res.Error
		}
		return appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)})
	})
	if err != nil {
		return fmt.Errorf("storage: flag passkey: %w", err)
	}
	return nil
}

// PasskeyUse is an assertion that approves a step-up challenge.
type PasskeyUse struct {
	ChallengeID  string
	CredentialID string
	// OldSignCount is the stored counter the assertion was checked
	// against, and NewSignCount the assertion's.
	OldSignCount uint32
	NewSignCount uint32
	At           time.Time
}

// ApproveWithPasskey approves a pending, unexpired challenge with the
// passkey u.CredentialID, stores the new sign count and last use, and
// appends rec, all in one transaction. It reports false, and writes
// nothing, when the challenge is no longer pending or has expired, or
// when the credential was flagged, removed or used concurrently: its
// counter is no longer u.OldSignCount.
func (s *Store) ApproveWithPasskey(ctx context.Context, u PasskeyUse, rec audit.Record) (bool, error) {
	approved := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&passkeyModel{}).
			Where("id = ? AND flagged_at IS NULL AND sign_count = ?", u.CredentialID, int64(u.OldSignCount)).
			Updates(map[string]any{"sign_count": int64(u.NewSignCount), "last_used_at": dbTime(u.At)})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil
		}
		res = tx.Model(&stepUpChallengeModel{}).
			Where("id = ? AND status = ? AND expires_at > ?", u.ChallengeID, ChallengePending, dbTime(u.At)).
			Updates(map[string]any{"status": ChallengeApproved, "method": "passkey",
				"approver": u.CredentialID, "decided_at": dbTime(u.At)})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			// Undo the counter update with the rest of the transaction.
			return errNotApproved
		}
		approved = true
		return appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)})
	})
	if errors.Is(err, errNotApproved) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: approve step-up challenge with passkey: %w", err)
	}
	return approved, nil
}

var errNotApproved = errors.New("storage: challenge not approved")
