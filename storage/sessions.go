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

// Session is a device-bound login at Sotto: the identity of the login it
// started from, the device key every token of it is bound to, and its
// absolute expiry. Its access tokens and refresh tokens are stored apart.
type Session struct {
	ID            string // a UUIDv7
	ClientID      string
	Subject       string // the Sotto subject, <subject_prefix>|<corporate sub>
	SubjectIssuer string
	DeviceJKT     string // JWK thumbprint (RFC 7638) of the session's key
	Groups        []string
	ACR           string
	AMR           []string
	AuthTime      *time.Time
	Parent        string // the login the session started from
	Generation    int64  // 0 at login, plus one for each refresh
	CreatedAt     time.Time
	RefreshedAt   time.Time
	ExpiresAt     time.Time // absolute expiry, never extended
	RevokedAt     *time.Time
}

// RefreshToken is the stored record of a refresh token: its hash, never
// the token. UsedAt is set when the token is rotated, so a second
// presentation is recognized as reuse.
type RefreshToken struct {
	Signature  string // hex SHA-256 of the token; primary key
	SessionID  string
	Generation int64
	ClientID   string
	DeviceJKT  string // the key the token is bound to (RFC 9449 §5)
	IssuedAt   time.Time
	ExpiresAt  time.Time // the idle timeout, capped at the session's expiry
	UsedAt     *time.Time
	RevokedAt  *time.Time
}

// SessionWrite is what issuing session tokens writes in one transaction:
// the proof claim, the new refresh token, the session access token and
// the audit record, plus the session itself when it is new.
type SessionWrite struct {
	Proof   *ProofClaim
	Session *Session // nil on a refresh
	Refresh RefreshToken
	Token   AccessToken
	Audit   audit.Record
	// ReplayAudit is written instead of everything else when the proof
	// was already claimed.
	ReplayAudit audit.Record
}

// RotateOutcome says how a refresh token rotation ended.
type RotateOutcome int

// Rotation outcomes.
const (
	// Rotated means the old token is used and the new tokens are stored.
	Rotated RotateOutcome = iota
	// RotateReplayed means the DPoP proof was already claimed.
	RotateReplayed
	// RotateInactive means the token is expired or revoked, or its session
	// ended. Nothing but the proof claim and the audit record was written.
	RotateInactive
	// RotateReused means the token had already been rotated: the whole
	// session was revoked (RFC 9700 §4.14.2).
	RotateReused
)

// RotateResult is the outcome of RotateRefreshToken.
type RotateResult struct {
	Outcome RotateOutcome
	// Revoked is the number of tokens a reuse revoked.
	Revoked int64
}

type sessionModel struct {
	ID            string `gorm:"primaryKey"`
	ClientID      string
	Subject       string
	SubjectIssuer string
	DeviceJKT     string
	Groups        []byte
	ACR           string `gorm:"column:acr"`
	AMR           []byte `gorm:"column:amr"`
	AuthTime      *time.Time
	Parent        string
	Generation    int64
	CreatedAt     time.Time
	RefreshedAt   time.Time
	ExpiresAt     time.Time
	RevokedAt     *time.Time
}

func (sessionModel) TableName() string { return "sessions" }

type refreshTokenModel struct {
	Signature  string `gorm:"primaryKey"`
	SessionID  string
	Generation int64
	ClientID   string
	DeviceJKT  string
	IssuedAt   time.Time
	ExpiresAt  time.Time
	UsedAt     *time.Time
	RevokedAt  *time.Time
}

func (refreshTokenModel) TableName() string { return "refresh_tokens" }

func sessionToModel(s Session) (sessionModel, error) {
	groups, err := json.Marshal(nonNil(s.Groups))
	if err != nil {
		return sessionModel{}, err
	}
	amr, err := json.Marshal(nonNil(s.AMR))
	if err != nil {
		return sessionModel{}, err
	}
	return sessionModel{
		ID:            s.ID,
		ClientID:      s.ClientID,
		Subject:       s.Subject,
		SubjectIssuer: s.SubjectIssuer,
		DeviceJKT:     s.DeviceJKT,
		Groups:        groups,
		ACR:           s.ACR,
		AMR:           amr,
		AuthTime:      dbTimePtr(s.AuthTime),
		Parent:        s.Parent,
		Generation:    s.Generation,
		CreatedAt:     dbTime(s.CreatedAt),
		RefreshedAt:   dbTime(s.RefreshedAt),
		ExpiresAt:     dbTime(s.ExpiresAt),
		RevokedAt:     dbTimePtr(s.RevokedAt),
	}, nil
}

func (m sessionModel) toSession() (*Session, error) {
	s := &Session{
		ID:            m.ID,
		ClientID:      m.ClientID,
		Subject:       m.Subject,
		SubjectIssuer: m.SubjectIssuer,
		DeviceJKT:     m.DeviceJKT,
		ACR:           m.ACR,
		AuthTime:      utcPtr(m.AuthTime),
		Parent:        m.Parent,
		Generation:    m.Generation,
		CreatedAt:     m.CreatedAt.UTC(),
		RefreshedAt:   m.RefreshedAt.UTC(),
		ExpiresAt:     m.ExpiresAt.UTC(),
		RevokedAt:     utcPtr(m.RevokedAt),
	}
	if err := json.Unmarshal(m.Groups, &s.Groups); err != nil {
		return nil, fmt.Errorf("decode groups of session %q: %w", m.ID, err)
	}
	if err := json.Unmarshal(m.AMR, &s.AMR); err != nil {
		return nil, fmt.Errorf("decode amr of session %q: %w", m.ID, err)
	}
	return s, nil
}

func refreshTokenToModel(r RefreshToken) refreshTokenModel {
	return refreshTokenModel{
		Signature:  r.Signature,
		SessionID:  r.SessionID,
		Generation: r.Generation,
		ClientID:   r.ClientID,
		DeviceJKT:  r.DeviceJKT,
		IssuedAt:   dbTime(r.IssuedAt),
		ExpiresAt:  dbTime(r.ExpiresAt),
		UsedAt:     dbTimePtr(r.UsedAt),
		RevokedAt:  dbTimePtr(r.RevokedAt),
	}
}

func (m refreshTokenModel) toRefreshToken() *RefreshToken {
	return &RefreshToken{
		Signature:  m.Signature,
		SessionID:  m.SessionID,
		Generation: m.Generation,
		ClientID:   m.ClientID,
		DeviceJKT:  m.DeviceJKT,
		IssuedAt:   m.IssuedAt.UTC(),
		ExpiresAt:  m.ExpiresAt.UTC(),
		UsedAt:     utcPtr(m.UsedAt),
		RevokedAt:  utcPtr(m.RevokedAt),
	}
}

// Session returns the session whose id is id, or ErrNotFound.
func (s *Store) Session(ctx context.Context, id string) (*Session, error) {
	var row sessionModel
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, fmt.Errorf("storage: read session %q: %w", id, notFound(err))
	}
	return row.toSession()
}

// RefreshToken returns the refresh token whose hash is signature, or
// ErrNotFound.
func (s *Store) RefreshToken(ctx context.Context, signature string) (*RefreshToken, error) {
	var row refreshTokenModel
	if err := s.db.WithContext(ctx).Where("signature = ?", signature).Take(&row).Error; err != nil {
		return nil, fmt.Errorf("storage: read refresh token: %w", notFound(err))
	}
	return row.toRefreshToken(), nil
}

// CreateSession stores a new session with its first refresh token and
// access token and the audit record, in one transaction. When the proof
// was already claimed it writes only w.ReplayAudit and reports Replayed.
func (s *Store) CreateSession(ctx context.Context, w SessionWrite) (ExchangeResult, error) {
	if w.Session == nil {
		return ExchangeResult{}, errors.New("storage: create session: the session is missing")
	}
	var result ExchangeResult
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		replayed, err := claimProof(tx, w.Proof)
		if err != nil {
			return err
		}
		if replayed {
			result.Replayed = true
			return appendAudit(tx, w.ReplayAudit)
		}
		return insertSession(tx, w)
	})
	if err != nil {
		return ExchangeResult{}, fmt.Errorf("storage: create session: %w", err)
	}
	return result, nil
}

// insertSession stores the new session of w with its first tokens and
// audit record, inside tx.
func insertSession(tx *gorm.DB, w SessionWrite) error {
	row, err := sessionToModel(*w.Session)
	if err != nil {
		return err
	}
	if err := tx.Create(&row).Error; err != nil {
		return fmt.Errorf("insert session: %w", err)
	}
	return writeSessionTokens(tx, w)
}

// RotateRefreshToken marks the refresh token whose hash is oldSignature
// used and stores the tokens of w, in one transaction. Only one caller can
// rotate a token: the conditional UPDATE ... WHERE used_at IS NULL lets
// one transaction through, and any other finds zero rows. A caller that
// finds the token already used has presented a rotated token, which RFC
// 9700 §4.14.2 treats as a sign of theft, so the whole session is revoked
// in the same transaction, w.Audit is replaced by a revocation record,
// and the outcome is RotateReused. This is also what the loser of two
// concurrent refreshes of one token gets: a race and a replay look the
// same to the server.
func (s *Store) RotateRefreshToken(ctx context.Context, oldSignature string, now time.Time, w SessionWrite) (RotateResult, error) {
	var result RotateResult
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		replayed, err := claimProof(tx, w.Proof)
		if err != nil {
			return err
		}
		if replayed {
			result.Outcome = RotateReplayed
			return appendAudit(tx, w.ReplayAudit)
		}

		at := dbTime(now)
		res := tx.Model(&refreshTokenModel{}).
			Where("signature = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?", oldSignature, at).
			Update("used_at", at)
		if res.Error != nil {
			return fmt.Errorf("mark refresh token used: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return s.rotationRefused(tx, oldSignature, at, w, &result)
		}

		res = tx.Model(&sessionModel{}).
			Where("id = ? AND generation = ? AND revoked_at IS NULL AND expires_at > ?",
				w.Refresh.SessionID, w.Refresh.Generation-1, at).
			Updates(map[string]any{"generation": w.Refresh.Generation, "refreshed_at": at})
		if res.Error != nil {
			return fmt.Errorf("advance session: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			// The session ended or moved on although this token was
			// live. The used_at mark stays, since the token is spent.
			result.Outcome = RotateInactive
			w.Audit.Decision = audit.DecisionRefused
			w.Audit.Reason = "session_inactive"
			return appendAudit(tx, w.Audit)
		}
		result.Outcome = Rotated
		return writeSessionTokens(tx, w)
	})
	if err != nil {
		return RotateResult{}, fmt.Errorf("storage: rotate refresh token: %w", err)
	}
	return result, nil
}

// rotationRefused decides, inside the rotation's transaction, why the
// refresh token could not be marked used, and revokes its session when
// the token was already rotated.
func (s *Store) rotationRefused(tx *gorm.DB, signature string, at time.Time, w SessionWrite, result *RotateResult) error {
	var row refreshTokenModel
	err := tx.Where("signature = ?", signature).Take(&row).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("read refresh token: %w", err)
	}
	if err != nil || row.UsedAt == nil {
		result.Outcome = RotateInactive
		w.Audit.Decision = audit.DecisionRefused
		w.Audit.Reason = "refresh_token_inactive"
		return appendAudit(tx, w.Audit)
	}

	n, err := revokeSession(tx, row.SessionID, at)
	if err != nil {
		return err
	}
	result.Outcome = RotateReused
	result.Revoked = n
	rec := w.Audit
	rec.Event = audit.EventRevocation
	rec.Decision = audit.DecisionRevoked
	rec.Reason = "refresh_token_reuse"
	rec.Detail = "A rotated refresh token was presented again, so the whole session was revoked (RFC 9700 Section 4.14.2)."
	rec.TokenID = row.SessionID
	rec.TokenExpiresAt = time.Time{}
	rec.Count = int(n)
	return appendAudit(tx, rec)
}

// RevokeSession revokes the session id, every refresh token of it and
// every access token that belongs to it or was exchanged from it, and
// appends rec with rec.Count set to the number of tokens that were still
// live, in one transaction. It returns that number.
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time, rec audit.Record) (int64, error) {
	var count int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		n, err := revokeSession(tx, id, dbTime(at))
		if err != nil {
			return err
		}
		count = n
		rec.Count = int(n)
		return appendAudit(tx, rec)
	})
	if err != nil {
		return 0, fmt.Errorf("storage: revoke session %q: %w", id, err)
	}
	return count, nil
}

// revokeSession marks the session and its live tokens revoked and returns
// how many live refresh and access tokens it ended.
func revokeSession(tx *gorm.DB, id string, at time.Time) (int64, error) {
	res := tx.Model(&sessionModel{}).Where("id = ? AND revoked_at IS NULL", id).Update("revoked_at", at)
	if res.Error != nil {
		return 0, fmt.Errorf("revoke session: %w", res.Error)
	}
	res = tx.Model(&refreshTokenModel{}).
		Where("session_id = ? AND revoked_at IS NULL AND used_at IS NULL AND expires_at > ?", id, at).
		Update("revoked_at", at)
	if res.Error != nil {
		return 0, fmt.Errorf("revoke refresh tokens: %w", res.Error)
	}
	count := res.RowsAffected
	// session_id = ? uses the partial index on session_id.
	res = tx.Model(&accessTokenModel{}).
		Where("session_id = ? AND revoked_at IS NULL AND expires_at > ?", id, at).
		Update("revoked_at", at)
	if res.Error != nil {
		return 0, fmt.Errorf("revoke access tokens: %w", res.Error)
	}
	return count + res.RowsAffected, nil
}

// writeSessionTokens inserts the refresh token, the access token and the
// audit record of w.
func writeSessionTokens(tx *gorm.DB, w SessionWrite) error {
	rt := refreshTokenToModel(w.Refresh)
	if err := tx.Create(&rt).Error; err != nil {
		return fmt.Errorf("insert refresh token: %w", err)
	}
	if err := insertRows(tx, "access_tokens", accessTokenColumns, [][]any{accessTokenToModel(w.Token).values()}); err != nil {
		return fmt.Errorf("insert access token: %w", err)
	}
	return appendAudit(tx, w.Audit)
}

// claimProof inserts the proof claim p and reports whether it was already
// there. A nil p claims nothing.
func claimProof(tx *gorm.DB, p *ProofClaim) (bool, error) {
	if p == nil {
		return false, nil
	}
	id := proofClaimID(p.JKT, p.JTI, p.ExpiresAt)
	inserted, err := insertProofClaims(tx, []proofClaimModel{{ID: id, ExpiresAt: dbTime(p.ExpiresAt)}})
	if err != nil {
		return false, fmt.Errorf("claim proof: %w", err)
	}
	return !inserted[id], nil
}

func appendAudit(tx *gorm.DB, rec audit.Record) error {
	if err := appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)}); err != nil {
		return fmt.Errorf("append audit record: %w", err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// nullString maps "" to NULL, so the partial index on session_id leaves
// out tokens without a session.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func stringOf(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
