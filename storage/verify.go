package storage

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"gorm.io/gorm"

	"github.com/sotto-auth/sotto/audit"
)

// verifyPage is the number of records VerifyAuditChain reads per query.
const verifyPage = 1000

// VerifyOptions configure VerifyAuditChain.
type VerifyOptions struct {
	// Keys verify the latest checkpoint. Empty means the public keys of
	// every signing key stored in the database. Keys from outside the
	// database, such as a saved copy of the JWKS, also catch a forged key
	// row.
	Keys jose.JSONWebKeySet
}

// VerifyReport is the result of VerifyAuditChain.
type VerifyReport struct {
	Records int64 // records read
	Gaps    int64 // deleted ranges crossed
	Head    int64 // ID of the last record according to the chain head
	// Checkpoint is the verified payload of the latest checkpoint, nil
	// when there is none.
	Checkpoint *audit.Checkpoint
	// Problem is the first inconsistency found, nil when the chain is
	// intact.
	Problem *audit.ChainProblem
}

// VerifyAuditChain walks the audit chain in ID order, a page at a time,
// and reports the first record that was edited, deleted or moved since it
// was written, and any checkpoint that does not match. The error reports
// a failed read, and a broken chain is a Problem in the report.
func (s *Store) VerifyAuditChain(ctx context.Context, o VerifyOptions) (*VerifyReport, error) {
	db := s.db.WithContext(ctx)
	report := &VerifyReport{}

	var heads []chainHead
	if err := db.Raw(`SELECT "seq", "hash" FROM "audit_chain_heads" WHERE "id" = 1`).Scan(&heads).Error; err != nil {
		return nil, fmt.Errorf("storage: verify audit chain: read head: %w", err)
	}
	if len(heads) != 1 {
		report.Problem = &audit.ChainProblem{Kind: audit.ProblemHead, Message: "the chain head row is missing"}
		return report, nil
	}
	head := heads[0]
	report.Head = head.Seq

	checkpoint, problem, err := s.verifyLatestCheckpoint(db, o.Keys)
	if err != nil {
		return nil, err
	}
	report.Checkpoint = checkpoint
	if problem != nil {
		report.Problem = problem
		return report, nil
	}
	if problem, err := checkGapDigest(db, checkpoint); err != nil || problem != nil {
		report.Problem = problem
		return report, err
	}

	walker := audit.NewChainWalker(checkpoint)
	gaps := &gapCursor{db: db}
	after := int64(0)
	for {
		var rows []auditRecordModel
		if err := db.Where("id > ?", after).Order("id").Limit(verifyPage).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("storage: verify audit chain: read records after %d: %w", after, err)
		}
		for i := range rows {
			if p, err := crossGaps(walker, gaps, rows[i].ID); err != nil || p != nil {
				report.Problem, report.Gaps = p, walker.Gaps()
				return report, err
			}
			rec := rows[i].toRecord()
			report.Records++
			if p := walker.Next(&rec); p != nil {
				report.Problem = p
				report.Gaps = walker.Gaps()
				return report, nil
			}
		}
		if len(rows) < verifyPage {
			break
		}
		after = rows[len(rows)-1].ID
	}
	if p, err := crossGaps(walker, gaps, head.Seq+1); err != nil || p != nil {
		report.Problem, report.Gaps = p, walker.Gaps()
		return report, err
	}
	report.Gaps = walker.Gaps()
	report.Problem = walker.End(head.Seq, head.Hash)
	return report, nil
}

// crossGaps feeds the walker every gap that starts before the record
// with ID next.
func crossGaps(w *audit.ChainWalker, gaps *gapCursor, next int64) (*audit.ChainProblem, error) {
	for {
		g, ok, err := gaps.peek()
		if err != nil || !ok || g.FirstID >= next {
			return nil, err
		}
		if p := w.Gap(g); p != nil {
			return p, nil
		}
		gaps.advance()
	}
}

// verifyLatestCheckpoint verifies the signature of the newest checkpoint
// and that its row matches its payload.
func (s *Store) verifyLatestCheckpoint(db *gorm.DB, keys jose.JSONWebKeySet) (*audit.Checkpoint, *audit.ChainProblem, error) {
	stored, err := latestCheckpoint(db)
	if err != nil {
		return nil, nil, fmt.Errorf("storage: verify audit chain: read checkpoint: %w", err)
	}
	if stored == nil {
		return nil, nil, nil
	}
	if len(keys.Keys) == 0 {
		if keys, err = s.storedPublicKeys(db); err != nil {
			return nil, nil, err
		}
	}
	c, err := audit.VerifyCheckpoint(stored.JWS, keys)
	if err != nil {
		return nil, &audit.ChainProblem{ID: stored.Seq, Kind: audit.ProblemCheckpoint,
			Message: fmt.Sprintf("checkpoint %d is not valid: %v", stored.ID, err)}, nil
	}
	if c.Seq != stored.Seq || c.Hash != stored.Hash {
		return nil, &audit.ChainProblem{ID: stored.Seq, Kind: audit.ProblemCheckpoint,
			Message: fmt.Sprintf("checkpoint %d: its row names record %d, but its signed payload names record %d", stored.ID, stored.Seq, c.Seq)}, nil
	}
	return c, nil, nil
}

// storedPublicKeys returns the public keys of every stored signing key,
// retired ones included, since an old checkpoint may be signed by one.
func (s *Store) storedPublicKeys(db *gorm.DB) (jose.JSONWebKeySet, error) {
	var rows []signingKeyModel
	if err := db.Find(&rows).Error; err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("storage: verify audit chain: read signing keys: %w", err)
	}
	var set jose.JSONWebKeySet
	for _, r := range rows {
		var k jose.JSONWebKey
		if err := json.Unmarshal(r.PublicJWK, &k); err != nil {
			return set, fmt.Errorf("storage: verify audit chain: public key %s: %w", r.KID, err)
		}
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// checkGapDigest compares the gaps in the database with the ones the
// checkpoint signed. Without a checkpoint there must be no gap, since
// every retention run signs one.
func checkGapDigest(db *gorm.DB, c *audit.Checkpoint) (*audit.ChainProblem, error) {
	digest, err := gapDigest(db)
	if err != nil {
		return nil, fmt.Errorf("storage: verify audit chain: %w", err)
	}
	switch {
	case c == nil && digest.Count() > 0:
		return &audit.ChainProblem{Kind: audit.ProblemGaps, Message: fmt.Sprintf(
			"%d deleted ranges are recorded, but no checkpoint signs them", digest.Count())}, nil
	case c != nil && (c.Gaps != digest.Count() || c.GapsHash != digest.Sum()):
		return &audit.ChainProblem{ID: c.Seq, Kind: audit.ProblemGaps, Message: fmt.Sprintf(
			"the %d deleted ranges recorded differ from the %d the latest checkpoint signed", digest.Count(), c.Gaps)}, nil
	}
	return nil, nil
}

// gapCursor reads the gaps in FirstID order, a page at a time.
type gapCursor struct {
	db    *gorm.DB
	page  []audit.Gap
	after int64
	done  bool
}

func (c *gapCursor) peek() (audit.Gap, bool, error) {
	if len(c.page) == 0 && !c.done {
		var rows []auditGapModel
		if err := c.db.Where("first_id > ?", c.after).Order("first_id").Limit(gapPage).Find(&rows).Error; err != nil {
			return audit.Gap{}, false, fmt.Errorf("storage: verify audit chain: read gaps: %w", err)
		}
		for _, r := range rows {
			c.page = append(c.page, audit.Gap{FirstID: r.FirstID, LastID: r.LastID, PrevHash: r.PrevHash, LastHash: r.LastHash})
		}
		if len(rows) < gapPage {
			c.done = true
		}
		if len(rows) > 0 {
			c.after = rows[len(rows)-1].FirstID
		}
	}
	if len(c.page) == 0 {
		return audit.Gap{}, false, nil
	}
	return c.page[0], true, nil
}

func (c *gapCursor) advance() { c.page = c.page[1:] }
