package storage

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"

	"github.com/sotto-auth/sotto/audit"
)

// migrationAuditChain turns the audit log into a hash chain. It adds each
// record's hash and the hash of the record before it, the chain head that
// every writer locks, the signed checkpoints, and the ranges a retention
// run deleted. Records written before the chain existed are linked in ID
// order by the migration itself.
func migrationAuditChain() *gormigrate.Migration {
	// auditRecord names the existing table; only the new columns are
	// declared.
	type auditRecord struct {
		PrevHash      string `gorm:"size:64;not null;default:''"`
		Hash          string `gorm:"size:64;not null;default:''"`
		ContextHash   string `gorm:"size:64;not null;default:''"`
		LatencyMicros int64  `gorm:"column:latency_us;not null;default:0"`
	}
	// auditChainHead has one row, ID 1: the sequence number and hash of
	// the last record. Writers lock it, so records are appended one
	// transaction at a time on every replica.
	type auditChainHead struct {
		ID   int64  `gorm:"primaryKey;autoIncrement:false"`
		Seq  int64  `gorm:"not null"`
		Hash string `gorm:"size:64;not null"`
	}
	// auditCheckpoint is a signed statement of the chain head and of the
	// deleted ranges at one moment.
	type auditCheckpoint struct {
		ID        int64     `gorm:"primaryKey;autoIncrement"`
		Seq       int64     `gorm:"not null"`
		Hash      string    `gorm:"size:64;not null"`
		CreatedAt time.Time `gorm:"not null"`
		JWS       string    `gorm:"column:jws;not null"`
	}
	// auditGap is a range of records a retention run deleted, with the
	// previous hash of the first and the hash of the last, so the chain
	// still links across it.
	type auditGap struct {
		FirstID  int64     `gorm:"primaryKey;autoIncrement:false"`
		LastID   int64     `gorm:"not null"`
		PrevHash string    `gorm:"size:64;not null"`
		LastHash string    `gorm:"size:64;not null"`
		PrunedAt time.Time `gorm:"not null"`
	}

	return &gormigrate.Migration{
		ID: "20261204_0020_audit_chain",
		Migrate: func(tx *gorm.DB) error {
			for _, column := range []string{"PrevHash", "Hash", "ContextHash", "LatencyMicros"} {
				if err := tx.Migrator().AddColumn(&auditRecord{}, column); err != nil {
					return err
				}
			}
			if err := tx.Migrator().CreateTable(&auditChainHead{}, &auditCheckpoint{}, &auditGap{}); err != nil {
				return err
			}
			head, err := linkExistingAuditRecords(tx)
			if err != nil {
				return err
			}
			return tx.Create(&auditChainHead{ID: 1, Seq: head.Seq, Hash: head.Hash}).Error
		},
		Rollback: func(tx *gorm.DB) error {
			if err := tx.Migrator().DropTable(&auditGap{}, &auditCheckpoint{}, &auditChainHead{}); err != nil {
				return err
			}
			for _, column := range []string{"LatencyMicros", "ContextHash", "Hash", "PrevHash"} {
				if err := tx.Migrator().DropColumn(&auditRecord{}, column); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// linkExistingAuditRecords sets the hash and previous hash of every record
// in ID order, a page at a time, and returns the last record's ID and
// hash. IDs that a failed transaction skipped are no problem: each record
// links to the one before it, whatever its ID.
func linkExistingAuditRecords(tx *gorm.DB) (chainHead, error) {
	// record is frozen here, so later columns do not change what this
	// migration reads.
	type record struct {
		ID             int64
		Time           time.Time
		RequestID      string
		Event          string
		ClientID       string
		Subject        string
		SubjectIssuer  string
		DeviceJKT      string
		Action         string
		Audience       string
		CatalogEntry   string
		CatalogVersion string
		Decision       string
		Reason         string
		Detail         string
		TokenID        string
		TokenExpiresAt *time.Time
		Count          int64
		DeviceTrust    string
	}

	var head chainHead
	for {
		var rows []record
		err := tx.Table("audit_records").Where("id > ?", head.Seq).Order("id").Limit(1000).Find(&rows).Error
		if err != nil {
			return chainHead{}, err
		}
		if len(rows) == 0 {
			return head, nil
		}
		for _, m := range rows {
			r := audit.Record{
				ID: m.ID, Time: m.Time, RequestID: m.RequestID, Event: audit.Event(m.Event),
				ClientID: m.ClientID, Subject: m.Subject, SubjectIssuer: m.SubjectIssuer,
				DeviceJKT: m.DeviceJKT, DeviceTrust: m.DeviceTrust, Action: m.Action, Audience: m.Audience,
				CatalogEntry: m.CatalogEntry, CatalogVersion: m.CatalogVersion,
				Decision: audit.Decision(m.Decision), Reason: m.Reason, Detail: m.Detail,
				TokenID: m.TokenID, Count: int(m.Count), PrevHash: head.Hash,
			}
			if m.TokenExpiresAt != nil {
				r.TokenExpiresAt = *m.TokenExpiresAt
			}
			hash := audit.ChainHash(&r)
			err := tx.Table("audit_records").Where("id = ?", m.ID).
				Updates(map[string]any{"prev_hash": head.Hash, "hash": hash}).Error
			if err != nil {
				return chainHead{}, err
			}
			head = chainHead{Seq: m.ID, Hash: hash}
		}
	}
}
