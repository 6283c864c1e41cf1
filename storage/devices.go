package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/sotto-auth/sotto/audit"
)

// Device trust levels as stored. An unenrolled key has no row.
const (
	TrustRegistered = "registered"
	TrustManaged    = "managed"
)

// ErrDeviceOtherSubject is returned by EnrollDevice when the key is
// already enrolled for another subject.
var ErrDeviceOtherSubject = errors.New("storage: device key enrolled for another subject")

// ErrDeviceRevoked is returned by EnrollDevice and SetDeviceTrust for a
// revoked device: its key must not come back.
var ErrDeviceRevoked = errors.New("storage: device revoked")

// ErrProofReplayed is returned by EnrollDevice when the proof was already
// claimed.
var ErrProofReplayed = errors.New("storage: DPoP proof already used")

// Device is a DPoP key enrolled for a subject.
type Device struct {
	JKT        string // RFC 7638 thumbprint of the device key; primary key
	Subject    string // Sotto subject, <subject_prefix>|<sub>
	Kind       string // phone, laptop, headset, speaker, car or other
	Name       string
	Trust      string // TrustRegistered or TrustManaged
	EnrolledAt time.Time
	LastSeenAt time.Time
	RevokedAt  *time.Time
}

type deviceModel struct {
	JKT        string `gorm:"column:jkt;primaryKey"`
	Subject    string
	Kind       string
	Name       string
	Trust      string
	EnrolledAt time.Time
	LastSeenAt time.Time
	RevokedAt  *time.Time
}

func (deviceModel) TableName() string { return "devices" }

func (m deviceModel) toDevice() *Device {
	return &Device{
		JKT: m.JKT, Subject: m.Subject, Kind: m.Kind, Name: m.Name, Trust: m.Trust,
		EnrolledAt: m.EnrolledAt.UTC(), LastSeenAt: m.LastSeenAt.UTC(), RevokedAt: utcPtr(m.RevokedAt),
	}
}

// EnrollWrite is one enrolment: the device, the proof that showed
// possession of its key, and the audit record.
type EnrollWrite struct {
	Device Device
	Proof  *ProofClaim
	Audit  audit.Record
}

// EnrollDevice claims the proof, then creates the device or updates an
// existing enrolment of the same key for the same subject, and appends the
// audit record, in one transaction. An update keeps the enrolment time,
// takes the new kind and name, and raises the trust to managed when w
// requests it but never lowers it. It returns the stored device and whether it
// was created. It fails with ErrProofReplayed, ErrDeviceOtherSubject or
// ErrDeviceRevoked and then writes nothing.
func (s *Store) EnrollDevice(ctx context.Context, w EnrollWrite) (*Device, bool, error) {
	var out *Device
	created := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if w.Proof != nil {
			claim := proofClaimModel{ID: proofClaimID(w.Proof.JKT, w.Proof.JTI, w.Proof.ExpiresAt), ExpiresAt: dbTime(w.Proof.ExpiresAt)}
			res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&claim)
			if res.Error != nil {
				return fmt.Errorf("claim proof: %w", res.Error)
			}
			if res.RowsAffected == 0 {
				return ErrProofReplayed
			}
		}

		var row deviceModel
		err := tx.Where("jkt = ?", w.Device.JKT).Take(&row).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			d := w.Device
			row = deviceModel{
				JKT: d.JKT, Subject: d.Subject, Kind: d.Kind, Name: d.Name, Trust: d.Trust,
				EnrolledAt: dbTime(d.EnrolledAt), LastSeenAt: dbTime(d.EnrolledAt),
			}
			if err := tx.Create(&row).Error; err != nil {
				return fmt.Errorf("insert device: %w", err)
			}
			created = true
		case err != nil:
			return fmt.Errorf("read device: %w", err)
		case row.Subject != w.Device.Subject:
			return ErrDeviceOtherSubject
		case row.RevokedAt != nil:
			return ErrDeviceRevoked
		default:
			row.Kind, row.Name = w.Device.Kind, w.Device.Name
			if w.Device.Trust == TrustManaged {
				row.Trust = TrustManaged
			}
			if err := tx.Model(&deviceModel{}).Where("jkt = ?", row.JKT).
				Updates(map[string]any{"kind": row.Kind, "name": row.Name, "trust": row.Trust}).Error; err != nil {
				return fmt.Errorf("update device: %w", err)
			}
		}
		out = row.toDevice()

		rec := w.Audit
		rec.DeviceTrust = out.Trust
		if err := appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)}); err != nil {
			return fmt.Errorf("append audit record: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("storage: enroll device %q: %w", w.Device.JKT, err)
	}
	return out, created, nil
}

// Device returns the device whose key thumbprint is jkt, or ErrNotFound.
func (s *Store) Device(ctx context.Context, jkt string) (*Device, error) {
	var row deviceModel
	if err := s.db.WithContext(ctx).Where("jkt = ?", jkt).Take(&row).Error; err != nil {
		return nil, fmt.Errorf("storage: read device %q: %w", jkt, notFound(err))
	}
	return row.toDevice(), nil
}

// Devices returns the devices of subject, or every device when subject is
// empty, ordered by subject and enrolment time.
func (s *Store) Devices(ctx context.Context, subject string) ([]Device, error) {
	q := s.db.WithContext(ctx)
	if subject != "" {
		q = q.Where("subject = ?", subject)
	}
	var rows []deviceModel
	if err := q.Order("subject, enrolled_at, jkt").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("storage: list devices: %w", err)
	}
	out := make([]Device, len(rows))
	for i, r := range rows {
		out[i] = *r.toDevice()
	}
	return out, nil
}

// TouchDevice sets the last-seen time of the device to at unless it is
// already within a minute of at, so frequent callers cost at most one row
// write a minute per device. An unknown jkt is not an error.
func (s *Store) TouchDevice(ctx context.Context, jkt string, at time.Time) error {
	err := s.db.WithContext(ctx).Model(&deviceModel{}).
		Where("jkt = ? AND last_seen_at < ?", jkt, dbTime(at.Add(-time.Minute))).
		Update("last_seen_at", dbTime(at)).Error
	if err != nil {
		return fmt.Errorf("storage: touch device %q: %w", jkt, err)
	}
	return nil
}

// SetDeviceTrust sets the trust level of an unrevoked device and appends
// rec in one transaction. It fails with ErrNotFound or ErrDeviceRevoked.
func (s *Store) SetDeviceTrust(ctx context.Context, jkt, trust string, rec audit.Record) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row deviceModel
		if err := tx.Where("jkt = ?", jkt).Take(&row).Error; err != nil {
			return notFound(err)
		}
		if row.RevokedAt != nil {
			return ErrDeviceRevoked
		}
		if err := tx.Model(&deviceModel{}).Where("jkt = ?", jkt).Update("trust", trust).Error; err != nil {
			return fmt.Errorf("update device: %w", err)
		}
		rec.DeviceJKT, rec.Subject, rec.DeviceTrust = jkt, row.Subject, trust
		if err := appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)}); err != nil {
			return fmt.Errorf("append audit record: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: set trust of device %q: %w", jkt, err)
	}
	return nil
}

// RevokeDevice marks the device revoked at at, ends every session bound to
// its key with the session's refresh and access tokens, revokes every
// other live token bound to the key, and appends rec with rec.Count set to the number of
// tokens revoked, in one transaction. It returns that number. The tokens
// are found through the expires_at index, since only live tokens need
// revoking. Revoking a revoked device revokes any token left and keeps the
// first revocation time. It fails with ErrNotFound for an unknown jkt.
func (s *Store) RevokeDevice(ctx context.Context, jkt string, at time.Time, rec audit.Record) (int64, error) {
	var count int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row deviceModel
		if err := tx.Where("jkt = ?", jkt).Take(&row).Error; err != nil {
			return notFound(err)
		}
		if row.RevokedAt == nil {
			if err := tx.Model(&deviceModel{}).Where("jkt = ?", jkt).Update("revoked_at", dbTime(at)).Error; err != nil {
				return fmt.Errorf("update device: %w", err)
			}
		}
		// A session bound to the key ends too, with its refresh tokens,
		// or its refresh token would mint new tokens for a wiped device.
		var sessions []string
		err := tx.Model(&sessionModel{}).Where("device_jkt = ? AND revoked_at IS NULL", jkt).Pluck("id", &sessions).Error
		if err != nil {
			return fmt.Errorf("read sessions: %w", err)
		}
		for _, id := range sessions {
			n, err := revokeSession(tx, id, dbTime(at))
			if err != nil {
				return err
			}
			count += n
		}
		res := tx.Model(&accessTokenModel{}).
			Where("expires_at > ? AND device_jkt = ? AND revoked_at IS NULL", dbTime(at), jkt).
			Update("revoked_at", dbTime(at))
		if res.Error != nil {
			return fmt.Errorf("update tokens: %w", res.Error)
		}
		count += res.RowsAffected

		rec.DeviceJKT, rec.Subject, rec.DeviceTrust, rec.Count = jkt, row.Subject, "revoked", int(count)
		if err := appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)}); err != nil {
			return fmt.Errorf("append audit record: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: revoke device %q: %w", jkt, err)
	}
	return count, nil
}

// DeviceStanding is what the token exchange needs to know of a device
// key: whose it is, its trust level and whether it was revoked.
type DeviceStanding struct {
	Subject string
	Trust   string
	Revoked bool
}

// DeviceStanding returns the standing of the device with thumbprint jkt,
// or ErrNotFound. Every token exchange asks, so it is one prepared
// statement rather than a gorm query.
func (s *Store) DeviceStanding(ctx context.Context, jkt string) (DeviceStanding, error) {
	s.standingOnce.Do(func() {
		query := `SELECT "subject", "trust", CASE WHEN "revoked_at" IS NULL THEN 0 ELSE 1 END FROM "devices" WHERE "jkt" = ?`
		if s.driver == DriverPostgres {
			query = strings.Replace(query, "?", "$1", 1)
		}
		db, err := s.db.DB()
		if err != nil {
			s.standingErr = err
			return
		}
		s.standingStmt, s.standingErr = db.PrepareContext(ctx, query)
	})
	if s.standingErr != nil {
		return DeviceStanding{}, fmt.Errorf("storage: prepare device lookup: %w", s.standingErr)
	}
	var d DeviceStanding
	var revoked int64
	err := s.standingStmt.QueryRowContext(ctx, jkt).Scan(&d.Subject, &d.Trust, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return DeviceStanding{}, fmt.Errorf("storage: read device %q: %w", jkt, ErrNotFound)
	}
	if err != nil {
		return DeviceStanding{}, fmt.Errorf("storage: read device %q: %w", jkt, err)
	}
	d.Revoked = revoked != 0
	return d, nil
}
