package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/sotto-auth/sotto/audit"
)

// defaultPruneBatch is the number of records one prune transaction
// deletes when PruneOptions.BatchSize is 0. The transaction holds the
// chain head lock, so exchanges wait for it: a small batch keeps that wait
// short.
const defaultPruneBatch = 2000

// PruneOptions select the audit records PruneAudit deletes.
type PruneOptions struct {
	// Retention is how long records of each event are kept. An event that
	// is missing, or has zero, is kept forever.
	Retention map[audit.Event]time.Duration
	// Now is the time the retention periods count back from.
	Now time.Time
	// Sign signs the checkpoint each transaction writes, and Issuer goes
	// into it.
	Sign   CheckpointSigner
	Issuer string
	// BatchSize is the number of records deleted per transaction, or 0
	// for 2000.
	BatchSize int
}

// PruneResult reports what PruneAudit did.
type PruneResult struct {
	Deleted     int64
	Checkpoints int
}

// PruneAudit deletes the audit records older than their event's
// retention. Each transaction locks the chain head, deletes up to
// BatchSize records and stores the deleted ranges as gaps, merged with
// adjacent ones. It then signs a checkpoint of the head and of every gap
// in the same transaction, so no deleted range goes unsigned. Before the
// first deletion it writes a checkpoint of the chain as it was.
func (s *Store) PruneAudit(ctx context.Context, o PruneOptions) (PruneResult, error) {
	var res PruneResult
	if o.Sign == nil {
		return res, errors.New("storage: prune audit: missing checkpoint signer")
	}
	if _, err := s.WriteAuditCheckpoint(ctx, o.Sign, o.Issuer, o.Now); err != nil {
		return res, err
	}
	cond, args := retentionCondition(o.Retention, o.Now)
	if cond == "" {
		return res, nil
	}
	batch := o.BatchSize
	if batch <= 0 {
		batch = defaultPruneBatch
	}

	for {
		var deleted int
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var err error
			deleted, err = pruneBatch(tx, o, cond, args, batch)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("storage: prune audit records: %w", err)
		}
		if deleted == 0 {
			return res, nil
		}
		res.Deleted += int64(deleted)
		res.Checkpoints++
		s.log.Info("storage: audit records pruned", "deleted", deleted)
	}
}

// retentionCondition returns the WHERE clause that selects records past
// their retention, or "" when every event is kept forever. Events are
// sorted, so the statement text is the same on every run.
func retentionCondition(retention map[audit.Event]time.Duration, now time.Time) (string, []any) {
	events := make([]string, 0, len(retention))
	for e, d := range retention {
		if d > 0 {
			events = append(events, string(e))
		}
	}
	sort.Strings(events)
	var parts []string
	var args []any
	for _, e := range events {
		parts = append(parts, `("event" = ? AND "time" < ?)`)
		args = append(args, e, dbTime(now.Add(-retention[audit.Event(e)])))
	}
	if len(parts) == 0 {
		return "", nil
	}
	return "(" + strings.Join(parts, " OR ") + ")", args
}

type prunedRow struct {
	ID       int64
	PrevHash string
	Hash     string
}

// pruneBatch deletes up to batch due records inside tx and returns how
// many it deleted.
func pruneBatch(tx *gorm.DB, o PruneOptions, cond string, args []any, batch int) (int, error) {
	head, err := lockChainHead(tx)
	if err != nil {
		return 0, err
	}
	var rows []prunedRow
	err = tx.Table("audit_records").Select("id", "prev_hash", "hash").
		Where(`"id" <= ?`, head.Seq).Where(cond, args...).
		Order("id").Limit(batch).Scan(&rows).Error
	if err != nil {
		return 0, fmt.Errorf("select due records: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}

	for _, run := range consecutiveRuns(rows) {
		if err := recordGap(tx, run, o.Now); err != nil {
			return 0, err
		}
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	for len(ids) > 0 {
		n := min(len(ids), 500)
		if err := tx.Exec(`DELETE FROM "audit_records" WHERE "id" IN ?`, ids[:n]).Error; err != nil {
			return 0, fmt.Errorf("delete records: %w", err)
		}
		ids = ids[n:]
	}
	if _, err := insertCheckpoint(tx, o.Sign, o.Issuer, head, o.Now); err != nil {
		return 0, err
	}
	return len(rows), nil
}

// consecutiveRuns splits rows, in ID order, into runs of consecutive IDs
// and returns each as a gap.
func consecutiveRuns(rows []prunedRow) []audit.Gap {
	var runs []audit.Gap
	for _, r := range rows {
		if n := len(runs); n > 0 && runs[n-1].LastID+1 == r.ID {
			runs[n-1].LastID, runs[n-1].LastHash = r.ID, r.Hash
			continue
		}
		runs = append(runs, audit.Gap{FirstID: r.ID, LastID: r.ID, PrevHash: r.PrevHash, LastHash: r.Hash})
	}
	return runs
}

// recordGap stores run as a gap, merged with the gaps that end just
// before it or start just after it, so the gap table stays as short as
// the deletions allow.
func recordGap(tx *gorm.DB, run audit.Gap, now time.Time) error {
	merged := run
	var before auditGapModel
	err := tx.Where("first_id < ?", run.FirstID).Order("first_id DESC").Take(&before).Error
	switch {
	case err == nil && before.LastID+1 == run.FirstID:
		merged.FirstID, merged.PrevHash = before.FirstID, before.PrevHash
		if err := tx.Delete(&auditGapModel{}, "first_id = ?", before.FirstID).Error; err != nil {
			return fmt.Errorf("merge gap: %w", err)
		}
	case err != nil && !errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("read gap: %w", err)
	}

	var after auditGapModel
	err = tx.Where("first_id = ?", run.LastID+1).Take(&after).Error
	switch {
	case err == nil:
		merged.LastID, merged.LastHash = after.LastID, after.LastHash
		if err := tx.Delete(&auditGapModel{}, "first_id = ?", after.FirstID).Error; err != nil {
			return fmt.Errorf("merge gap: %w", err)
		}
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("read gap: %w", err)
	}

	row := auditGapModel{
		FirstID: merged.FirstID, LastID: merged.LastID,
		PrevHash: merged.PrevHash, LastHash: merged.LastHash, PrunedAt: dbTime(now),
	}
	if err := tx.Create(&row).Error; err != nil {
		return fmt.Errorf("insert gap: %w", err)
	}
	return nil
}
