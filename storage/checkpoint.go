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

// CheckpointSigner signs the JSON of an audit.Checkpoint and returns the
// compact JWS. authz.Keyring.SignAuditCheckpoint is one.
type CheckpointSigner func(payload []byte) (string, error)

// AuditCheckpoint is a stored signed checkpoint.
type AuditCheckpoint struct {
	ID        int64
	Seq       int64
	Hash      string
	CreatedAt time.Time
	JWS       string
}

type auditCheckpointModel struct {
	ID        int64 `gorm:"primaryKey;autoIncrement"`
	Seq       int64
	Hash      string
	CreatedAt time.Time
	JWS       string `gorm:"column:jws"`
}

func (auditCheckpointModel) TableName() string { return "audit_checkpoints" }

type auditGapModel struct {
	FirstID  int64 `gorm:"primaryKey;autoIncrement:false"`
	LastID   int64
	PrevHash string
	LastHash string
	PrunedAt time.Time
}

func (auditGapModel) TableName() string { return "audit_gaps" }

// gapPage is the number of gaps read per query when a digest is computed.
const gapPage = 5000

// WriteAuditCheckpoint signs the current chain head and the digest of the
// deleted ranges with sign, and stores the checkpoint. When the latest
// checkpoint already names the current head, it writes nothing and
// returns that one, so replicas that checkpoint on a timer do not pile up
// copies.
func (s *Store) WriteAuditCheckpoint(ctx context.Context, sign CheckpointSigner, issuer string, now time.Time) (*AuditCheckpoint, error) {
	var out *AuditCheckpoint
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		head, err := lockChainHead(tx)
		if err != nil {
			return err
		}
		latest, err := latestCheckpoint(tx)
		if err != nil {
			return err
		}
		if latest != nil && latest.Seq == head.Seq && latest.Hash == head.Hash {
			out = latest
			return nil
		}
		out, err = insertCheckpoint(tx, sign, issuer, head, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: write audit checkpoint: %w", err)
	}
	return out, nil
}

// LatestAuditCheckpoint returns the newest checkpoint, or ErrNotFound.
func (s *Store) LatestAuditCheckpoint(ctx context.Context) (*AuditCheckpoint, error) {
	c, err := latestCheckpoint(s.db.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("storage: read audit checkpoint: %w", err)
	}
	if c == nil {
		return nil, fmt.Errorf("storage: read audit checkpoint: %w", ErrNotFound)
	}
	return c, nil
}

func latestCheckpoint(tx *gorm.DB) (*AuditCheckpoint, error) {
	var row auditCheckpointModel
	err := tx.Order("id DESC").Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &AuditCheckpoint{ID: row.ID, Seq: row.Seq, Hash: row.Hash, CreatedAt: row.CreatedAt.UTC(), JWS: row.JWS}, nil
}

// insertCheckpoint signs head and the digest of every gap, inside tx,
// which must hold the chain head lock so no record or gap changes
// meanwhile.
func insertCheckpoint(tx *gorm.DB, sign CheckpointSigner, issuer string, head chainHead, now time.Time) (*AuditCheckpoint, error) {
	digest, err := gapDigest(tx)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(audit.Checkpoint{
		Chain: audit.ChainVersion, Seq: head.Seq, Hash: head.Hash,
		Gaps: digest.Count(), GapsHash: digest.Sum(), IssuedAt: now.Unix(), Issuer: issuer,
	})
	if err != nil {
		return nil, err
	}
	jws, err := sign(payload)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	row := auditCheckpointModel{Seq: head.Seq, Hash: head.Hash, CreatedAt: dbTime(now), JWS: jws}
	if err := tx.Create(&row).Error; err != nil {
		return nil, fmt.Errorf("insert checkpoint: %w", err)
	}
	return &AuditCheckpoint{ID: row.ID, Seq: row.Seq, Hash: row.Hash, CreatedAt: row.CreatedAt, JWS: row.JWS}, nil
}

// gapDigest reads every gap in FirstID order, a page at a time.
func gapDigest(tx *gorm.DB) (*audit.GapDigest, error) {
	d := audit.NewGapDigest()
	err := eachGap(tx, func(g audit.Gap) error {
		d.Add(g)
		return nil
	})
	return d, err
}

// eachGap calls fn for every gap in FirstID order, reading a page at a
// time.
func eachGap(tx *gorm.DB, fn func(audit.Gap) error) error {
	after := int64(0)
	for {
		var rows []auditGapModel
		if err := tx.Where("first_id > ?", after).Order("first_id").Limit(gapPage).Find(&rows).Error; err != nil {
			return fmt.Errorf("read audit gaps: %w", err)
		}
		for _, r := range rows {
			if err := fn(audit.Gap{FirstID: r.FirstID, LastID: r.LastID, PrevHash: r.PrevHash, LastHash: r.LastHash}); err != nil {
				return err
			}
		}
		if len(rows) < gapPage {
			return nil
		}
		after = rows[len(rows)-1].FirstID
	}
}
