package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/sotto-auth/sotto/audit"
)

// Step-up challenge states.
const (
	ChallengePending  = "pending"
	ChallengeApproved = "approved"
	ChallengeDenied   = "denied"
)

// StepUpChallenge is a step-up challenge and the binding it was issued
// for. It is created in the transaction of the exchange that asked for
// step-up, decided once by an approver, and used once by the exchange
// that issues the token.
type StepUpChallenge struct {
	ID            string
	RequestID     string // the exchange that created the challenge
	Subject       string
	SubjectIssuer string
	ClientID      string
	DeviceJKT     string
	Action        string
	Description   string
	Audience      string
	DetailsHash   string
	DetailsJSON   []byte
	Methods       []string
	SpokenNumber  int
	Numbers       []int
	Interval      time.Duration
	Status        string
	Method        string // the method that decided it
	Approver      string // the approver device's jkt or the passkey credential ID
	CreatedAt     time.Time
	ExpiresAt     time.Time
	DecidedAt     *time.Time
	LastPolledAt  *time.Time
	DeliveredAt   *time.Time
	UsedAt        *time.Time
	TokenID       string
}

// ChallengeUse marks an approved challenge used by the token TokenID.
type ChallengeUse struct {
	ID      string
	TokenID string
	At      time.Time
}

// ApproverDevice is a user's approver app key, which signs push decisions.
type ApproverDevice struct {
	JKT       string // RFC 7638 thumbprint of PublicJWK
	Subject   string
	PublicJWK []byte
	Name      string
	CreatedAt time.Time
	// ActivatedAt is when the device became able to approve, or nil
	// while it waits for an administrator.
	ActivatedAt *time.Time
}

type stepUpChallengeModel struct {
	ID            string `gorm:"primaryKey"`
	RequestID     string
	Subject       string
	SubjectIssuer string
	ClientID      string
	DeviceJKT     string
	Action        string
	Description   string
	Audience      string
	DetailsHash   string
	DetailsJSON   []byte `gorm:"column:details_json"`
	Methods       string
	SpokenNumber  int
	Numbers       string
	Interval      int
	Status        string
	Method        string
	Approver      string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	DecidedAt     *time.Time
	LastPolledAt  *time.Time
	DeliveredAt   *time.Time
	UsedAt        *time.Time
	TokenID       string
}

func (stepUpChallengeModel) TableName() string { return "step_up_challenges" }

type approverDeviceModel struct {
	JKT         string `gorm:"column:jkt;primaryKey"`
	Subject     string
	PublicJWK   []byte
	Name        string
	CreatedAt   time.Time
	ActivatedAt *time.Time
}

func (approverDeviceModel) TableName() string { return "approver_devices" }

func challengeToModel(c StepUpChallenge) stepUpChallengeModel {
	numbers := make([]string, len(c.Numbers))
	for i, n := range c.Numbers {
		numbers[i] = strconv.Itoa(n)
	}
	status := c.Status
	if status == "" {
		status = ChallengePending
	}
	return stepUpChallengeModel{
		ID: c.ID, RequestID: c.RequestID, Subject: c.Subject, SubjectIssuer: c.SubjectIssuer,
		ClientID: c.ClientID, DeviceJKT: c.DeviceJKT, Action: c.Action, Description: c.Description,
		Audience: c.Audience, DetailsHash: c.DetailsHash, DetailsJSON: c.DetailsJSON,
		Methods: strings.Join(c.Methods, " "), SpokenNumber: c.SpokenNumber,
		Numbers: strings.Join(numbers, " "), Interval: int(c.Interval / time.Second),
		Status: status, Method: c.Method, Approver: c.Approver,
		CreatedAt: dbTime(c.CreatedAt), ExpiresAt: dbTime(c.ExpiresAt),
		DecidedAt: dbTimePtr(c.DecidedAt), LastPolledAt: dbTimePtr(c.LastPolledAt),
		DeliveredAt: dbTimePtr(c.DeliveredAt), UsedAt: dbTimePtr(c.UsedAt), TokenID: c.TokenID,
	}
}

func (m stepUpChallengeModel) toChallenge() *StepUpChallenge {
	var numbers []int
	for _, f := range strings.Fields(m.Numbers) {
		n, _ := strconv.Atoi(f)
		numbers = append(numbers, n)
	}
	return &StepUpChallenge{
		ID: m.ID, RequestID: m.RequestID, Subject: m.Subject, SubjectIssuer: m.SubjectIssuer,
		ClientID: m.ClientID, DeviceJKT: m.DeviceJKT, Action: m.Action, Description: m.Description,
		Audience: m.Audience, DetailsHash: m.DetailsHash, DetailsJSON: m.DetailsJSON,
		Methods: strings.Fields(m.Methods), SpokenNumber: m.SpokenNumber, Numbers: numbers,
		Interval: time.Duration(m.Interval) * time.Second, Status: m.Status, Method: m.Method,
		Approver: m.Approver, CreatedAt: m.CreatedAt.UTC(), ExpiresAt: m.ExpiresAt.UTC(),
		DecidedAt: utcPtr(m.DecidedAt), LastPolledAt: utcPtr(m.LastPolledAt),
		DeliveredAt: utcPtr(m.DeliveredAt), UsedAt: utcPtr(m.UsedAt), TokenID: m.TokenID,
	}
}

// StepUpChallenge returns the challenge with id, or ErrNotFound.
func (s *Store) StepUpChallenge(ctx context.Context, id string) (*StepUpChallenge, error) {
	var m stepUpChallengeModel
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&m).Error; err != nil {
		return nil, fmt.Errorf("storage: load step-up challenge: %w", notFound(err))
	}
	return m.toChallenge(), nil
}

// PollStepUpChallenge records a poll of a pending challenge at now unless
// the previous poll was less than interval ago. It reports whether the
// poll was recorded; the conditional update makes that hold across
// replicas.
func (s *Store) PollStepUpChallenge(ctx context.Context, id string, now time.Time, interval time.Duration) (bool, error) {
	res := s.db.WithContext(ctx).Model(&stepUpChallengeModel{}).
		Where("id = ? AND (last_polled_at IS NULL OR last_polled_at <= ?)", id, dbTime(now.Add(-interval))).
		Update("last_polled_at", dbTime(now))
	if res.Error != nil {
		return false, fmt.Errorf("storage: record step-up poll: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// DecideStepUpChallenge sets a pending, unexpired challenge to status
// (approved or denied) and appends rec in the same transaction. It
// reports false, and writes nothing, when the challenge was no longer
// pending or had expired at.
func (s *Store) DecideStepUpChallenge(ctx context.Context, id, status, method, approver string, at time.Time, rec audit.Record) (bool, error) {
	decided := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&stepUpChallengeModel{}).
			Where("id = ? AND status = ? AND expires_at > ?", id, ChallengePending, dbTime(at)).
			Updates(map[string]any{"status": status, "method": method, "approver": approver, "decided_at": dbTime(at)})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil
		}
		decided = true
		return appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)})
	})
	if err != nil {
		return false, fmt.Errorf("storage: decide step-up challenge: %w", err)
	}
	return decided, nil
}

// MarkStepUpDelivered records the first delivery of a challenge and
// appends rec with it. Later deliveries change nothing.
func (s *Store) MarkStepUpDelivered(ctx context.Context, id string, at time.Time, rec audit.Record) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&stepUpChallengeModel{}).
			Where("id = ? AND delivered_at IS NULL", id).
			Update("delivered_at", dbTime(at))
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		return appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)})
	})
	if err != nil {
		return fmt.Errorf("storage: mark step-up challenge delivered: %w", err)
	}
	return nil
}

// CountPushChallenges returns the number of challenges offering push that
// were created for subject at or after since.
func (s *Store) CountPushChallenges(ctx context.Context, subject string, since time.Time) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&stepUpChallengeModel{}).
		Where("subject = ? AND created_at >= ? AND methods LIKE ?", subject, dbTime(since), "%push%").
		Count(&n).Error
	if err != nil {
		return 0, fmt.Errorf("storage: count push challenges: %w", err)
	}
	return int(n), nil
}

// CountPushDenials returns the number of push challenges of subject
// denied at or after since.
func (s *Store) CountPushDenials(ctx context.Context, subject string, since time.Time) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&stepUpChallengeModel{}).
		Where("subject = ? AND created_at >= ? AND status = ? AND method = ? AND decided_at >= ?",
			subject, dbTime(since), ChallengeDenied, "push", dbTime(since)).
		Count(&n).Error
	if err != nil {
		return 0, fmt.Errorf("storage: count push denials: %w", err)
	}
	return int(n), nil
}

// PendingPushChallenges returns the pending, unexpired challenges of
// subject that offer push, oldest first.
func (s *Store) PendingPushChallenges(ctx context.Context, subject string, now time.Time) ([]*StepUpChallenge, error) {
	var rows []stepUpChallengeModel
	err := s.db.WithContext(ctx).
		Where("subject = ? AND status = ? AND expires_at > ? AND methods LIKE ?",
			subject, ChallengePending, dbTime(now), "%push%").
		Order("created_at").Limit(20).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("storage: list pending push challenges: %w", err)
	}
	out := make([]*StepUpChallenge, len(rows))
	for i, r := range rows {
		out[i] = r.toChallenge()
	}
	return out, nil
}

// ErrReplay is returned when a signed request's proof was already used.
var ErrReplay = errors.New("storage: proof already used")

// ClaimProof records a DPoP-style proof as used and appends rec, in one
// transaction. It returns ErrReplay, and writes nothing, when the proof
// was claimed before.
func (s *Store) ClaimProof(ctx context.Context, p ProofClaim, rec *audit.Record) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := claimOneProof(tx, p); err != nil {
			return err
		}
		if rec == nil {
			return nil
		}
		return appendAuditRows(tx, []auditRecordModel{auditRecordToModel(*rec)})
	})
}

func claimOneProof(tx *gorm.DB, p ProofClaim) error {
	id := proofClaimID(p.JKT, p.JTI, p.ExpiresAt)
	inserted, err := insertProofClaims(tx, []proofClaimModel{{ID: id, ExpiresAt: dbTime(p.ExpiresAt)}})
	if err != nil {
		return fmt.Errorf("storage: claim proof: %w", err)
	}
	if !inserted[id] {
		return ErrReplay
	}
	return nil
}

// EnrollApprover claims the enrollment request's proof and stores the
// device with its audit record, in one transaction. A device already
// enrolled for the same subject is replaced (its name may change); one
// enrolled for another subject is an error.
func (s *Store) EnrollApprover(ctx context.Context, d ApproverDevice, p ProofClaim, rec audit.Record) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := claimOneProof(tx, p); err != nil {
			return err
		}
		var existing approverDeviceModel
		err := tx.Where("jkt = ?", d.JKT).Take(&existing).Error
		switch {
		case err == nil && existing.Subject != d.Subject:
			return ErrApproverTaken
		case err == nil:
			if err := tx.Model(&existing).Update("name", d.Name).Error; err != nil {
				return err
			}
		case errors.Is(err, gorm.ErrRecordNotFound):
			m := approverDeviceModel{
				JKT: d.JKT, Subject: d.Subject, PublicJWK: d.PublicJWK, Name: d.Name,
				CreatedAt: dbTime(d.CreatedAt), ActivatedAt: dbTimePtr(d.ActivatedAt),
			}
			if err := tx.Create(&m).Error; err != nil {
				return err
			}
		default:
			return err
		}
		return appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)})
	})
}

// ErrApproverTaken is returned by EnrollApprover for a key already
// enrolled by another subject.
var ErrApproverTaken = errors.New("storage: approver key enrolled by another subject")

// ApproverDevice returns the device with thumbprint jkt, or ErrNotFound.
func (s *Store) ApproverDevice(ctx context.Context, jkt string) (*ApproverDevice, error) {
	var m approverDeviceModel
	if err := s.db.WithContext(ctx).Where("jkt = ?", jkt).Take(&m).Error; err != nil {
		return nil, fmt.Errorf("storage: load approver device: %w", notFound(err))
	}
	return m.toApproverDevice(), nil
}

func (m approverDeviceModel) toApproverDevice() *ApproverDevice {
	return &ApproverDevice{
		JKT: m.JKT, Subject: m.Subject, PublicJWK: m.PublicJWK, Name: m.Name,
		CreatedAt: m.CreatedAt.UTC(), ActivatedAt: utcPtr(m.ActivatedAt),
	}
}

// ApproverDevices returns the approver devices of subject, or of every
// subject when subject is empty, in enrolment order.
func (s *Store) ApproverDevices(ctx context.Context, subject string) ([]ApproverDevice, error) {
	q := s.db.WithContext(ctx)
	if subject != "" {
		q = q.Where("subject = ?", subject)
	}
	var rows []approverDeviceModel
	if err := q.Order("created_at, jkt").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("storage: list approver devices: %w", err)
	}
	out := make([]ApproverDevice, len(rows))
	for i, m := range rows {
		out[i] = *m.toApproverDevice()
	}
	return out, nil
}

// ActivateApprover activates the pending approver device jkt at at and
// appends rec, in one transaction. Activating an active device changes
// nothing and writes no record. It fails with ErrNotFound for an unknown
// jkt.
func (s *Store) ActivateApprover(ctx context.Context, jkt string, at time.Time, rec audit.Record) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var m approverDeviceModel
		if err := tx.Where("jkt = ?", jkt).Take(&m).Error; err != nil {
			return notFound(err)
		}
		if m.ActivatedAt != nil {
			return nil
		}
		if err := tx.Model(&approverDeviceModel{}).Where("jkt = ? AND activated_at IS NULL", jkt).
			Update("activated_at", dbTime(at)).Error; err != nil {
			return err
		}
		rec.Subject, rec.Approver = m.Subject, jkt
		return appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)})
	})
	if err != nil {
		return fmt.Errorf("storage: activate approver device %q: %w", jkt, err)
	}
	return nil
}

// CountApproverDevices returns the number of active approver devices of
// subject: the ones that can approve a push challenge.
func (s *Store) CountApproverDevices(ctx context.Context, subject string) (int, error) {
	var n int64
	q := s.db.WithContext(ctx).Model(&approverDeviceModel{}).Where("subject = ? AND activated_at IS NOT NULL", subject)
	if err := q.Count(&n).Error; err != nil {
		return 0, fmt.Errorf("storage: count approver devices: %w", err)
	}
	return int(n), nil
}

// writeChallenges inserts the challenges of ws and consumes the
// challenges they use, inside the exchange transaction. A write whose
// proof was replayed writes neither. A challenge is consumed by a
// conditional UPDATE ... WHERE used_at IS NULL, so of two exchanges that
// use one challenge, on any replica, at most one issues a token.
func writeChallenges(tx *gorm.DB, ws []ExchangeWrite, results []ExchangeResult) error {
	for i, w := range ws {
		if results[i].Replayed {
			continue
		}
		if w.Challenge != nil {
			m := challengeToModel(*w.Challenge)
			if err := tx.Create(&m).Error; err != nil {
				return fmt.Errorf("insert step-up challenge: %w", err)
			}
		}
		if u := w.ConsumeChallenge; u != nil {
			res := tx.Model(&stepUpChallengeModel{}).
				Where("id = ? AND used_at IS NULL AND status = ?", u.ID, ChallengeApproved).
				Updates(map[string]any{"used_at": dbTime(u.At), "token_id": u.TokenID})
			if res.Error != nil {
				return fmt.Errorf("consume step-up challenge: %w", res.Error)
			}
			results[i].ChallengeSpent = res.RowsAffected == 0
		}
	}
	return nil
}
