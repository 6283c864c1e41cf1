package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/sotto-auth/sotto/audit"
)

// ProofClaim records that a DPoP proof (RFC 9449) was used, so a second use
// of the same proof is detected as a replay. The proof's jti is unique per
// key, so the claim is keyed by the pair.
type ProofClaim struct {
	JKT       string    // JWK thumbprint (RFC 7638) of the proof's key
	JTI       string    // jti claim of the proof
	ExpiresAt time.Time // after this time the proof is too old to be accepted, and the claim can go
}

// ExchangeWrite is everything one token-exchange decision writes. The whole
// write is committed in one transaction, so no token is stored without its
// audit record.
type ExchangeWrite struct {
	// Proof is claimed first. Nil means there is no proof to claim.
	Proof *ProofClaim
	// Token is the issued token. Nil means a rejected request, for which
	// only Audit is written.
	Token *AccessToken
	// Audit is written when the proof claim is new or Proof is nil.
	Audit audit.Record
	// ReplayAudit is written instead of Audit, and Token is not written,
	// when the proof was already claimed.
	ReplayAudit audit.Record
	// Challenge is a step-up challenge to create. Nil creates none.
	Challenge *StepUpChallenge
	// ConsumeChallenge marks an approved step-up challenge used by Token.
	// When the challenge is no longer unused, Token is not written and
	// SpentAudit is written instead of Audit.
	ConsumeChallenge *ChallengeUse
	SpentAudit       audit.Record
}

// ExchangeResult is the outcome of CommitExchange.
type ExchangeResult struct {
	// Replayed reports that the proof had already been claimed, so only
	// ReplayAudit was written.
	Replayed bool
	// ChallengeSpent reports that ConsumeChallenge found the challenge
	// already used (or not approved), so only SpentAudit was written.
	ChallengeSpent bool
}

// CommitExchange writes w through the group-commit writer and returns once
// the transaction that contains it has committed. If ctx ends before the
// writer takes w, CommitExchange returns ctx.Err() and writes nothing. Once
// the writer has taken w, it commits w even if ctx ends.
func (s *Store) CommitExchange(ctx context.Context, w ExchangeWrite) (ExchangeResult, error) {
	if err := ctx.Err(); err != nil {
		return ExchangeResult{}, err
	}

	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ExchangeResult{}, ErrClosed
	}
	s.pending.Add(1)
	s.closeMu.RUnlock()
	defer s.pending.Done()

	item := &exchangeItem{write: w, done: make(chan exchangeOutcome, 1)}
	select {
	case s.exchanges <- item:
	case <-ctx.Done():
		return ExchangeResult{}, ctx.Err()
	}

	out := <-item.done
	return out.result, out.err
}

// DeleteExpiredProofClaims deletes the proof claims that expired before now
// and returns how many it deleted.
func (s *Store) DeleteExpiredProofClaims(ctx context.Context, now time.Time) (int64, error) {
	res := s.db.WithContext(ctx).
		Where("id < ?", proofClaimPrefix(now)).
		Delete(&proofClaimModel{})
	if res.Error != nil {
		return 0, fmt.Errorf("storage: delete expired proof claims: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// maxBatch is the maximum number of exchanges committed in one transaction.
const maxBatch = 256

type exchangeItem struct {
	write ExchangeWrite
	done  chan exchangeOutcome // room for the one outcome, so the writer never waits on the caller
}

type exchangeOutcome struct {
	result ExchangeResult
	err    error
}

// runWriter is the group-commit writer. The exchanges channel is
// unbuffered, so while one batch commits the next callers wait in
// CommitExchange, and the writer then takes all of them, up to maxBatch, as
// the next batch.
func (s *Store) runWriter() {
	defer close(s.writerDone)

	batch := make([]*exchangeItem, 0, maxBatch)
	for {
		select {
		case item := <-s.exchanges:
			batch = append(batch[:0], item)
		case <-s.closing:
			return
		}

	collect:
		for len(batch) < maxBatch {
			select {
			case item := <-s.exchanges:
				batch = append(batch, item)
			default:
				break collect
			}
		}

		s.batches.Add(1)
		s.batchedItems.Add(int64(len(batch)))
		s.commitBatch(batch)
		clear(batch)
	}
}

// commitBatch commits items in one transaction and sends each caller its
// outcome. If that transaction fails, it retries each item in a transaction
// of its own, so one bad item fails alone.
func (s *Store) commitBatch(items []*exchangeItem) {
	// The callers' contexts no longer apply: a taken item is committed.
	db := s.db.WithContext(context.Background())

	writes := make([]ExchangeWrite, len(items))
	for i, item := range items {
		writes[i] = item.write
	}
	var results []ExchangeResult
	batchErr := db.Transaction(func(tx *gorm.DB) error {
		var err error
		results, err = writeExchanges(tx, writes)
		return err
	})
	if batchErr == nil {
		for i, item := range items {
			item.done <- exchangeOutcome{result: results[i]}
		}
		return
	}
	if len(items) == 1 {
		s.log.Error("storage: exchange commit failed", "items", 1, "error", batchErr)
		items[0].done <- exchangeOutcome{err: fmt.Errorf("storage: commit exchange: %w", batchErr)}
		return
	}

	failed := 0
	for i, item := range items {
		var r []ExchangeResult
		itemErr := db.Transaction(func(tx *gorm.DB) error {
			var err error
			r, err = writeExchanges(tx, writes[i:i+1])
			return err
		})
		out := exchangeOutcome{err: itemErr}
		if itemErr != nil {
			failed++
			out.err = fmt.Errorf("storage: commit exchange: %w", itemErr)
		} else {
			out.result = r[0]
		}
		item.done <- out
	}
	s.log.Error("storage: exchange batch commit failed, so each item was retried alone",
		"items", len(items), "failed_items", failed, "error", batchErr)
}

// writeExchanges writes ws inside tx with one statement per table, since
// a statement costs far more than a row. The proof claims are inserted
// with ON CONFLICT DO NOTHING RETURNING id, so a replay shows as an id that
// was not returned. That holds across replicas, and a second use of one
// proof within the batch is a replay too.
func writeExchanges(tx *gorm.DB, ws []ExchangeWrite) ([]ExchangeResult, error) {
	results := make([]ExchangeResult, len(ws))
	claimIDs := make([]string, len(ws))
	var claims []proofClaimModel
	seen := make(map[string]bool, len(ws))
	for i, w := range ws {
		if w.Proof == nil {
			continue
		}
		id := proofClaimID(w.Proof.JKT, w.Proof.JTI, w.Proof.ExpiresAt)
		claimIDs[i] = id
		if seen[id] {
			results[i].Replayed = true
			continue
		}
		seen[id] = true
		claims = append(claims, proofClaimModel{ID: id, ExpiresAt: dbTime(w.Proof.ExpiresAt)})
	}

	inserted, err := insertProofClaims(tx, claims)
	if err != nil {
		return nil, fmt.Errorf("claim proofs: %w", err)
	}

	for i := range ws {
		if claimIDs[i] != "" && !results[i].Replayed && !inserted[claimIDs[i]] {
			results[i].Replayed = true
		}
	}
	if err := writeChallenges(tx, ws, results); err != nil {
		return nil, err
	}

	var tokens [][]any
	var audits []auditRecordModel
	for i, w := range ws {
		if results[i].Replayed {
			audits = append(audits, auditRecordToModel(w.ReplayAudit))
			continue
		}
		if results[i].ChallengeSpent {
			audits = append(audits, auditRecordToModel(w.SpentAudit))
			continue
		}
		if w.Token != nil {
			tokens = append(tokens, accessTokenToModel(*w.Token).values())
		}
		audits = append(audits, auditRecordToModel(w.Audit))
	}

	if err := insertRows(tx, "access_tokens", accessTokenColumns, tokens); err != nil {
		return nil, fmt.Errorf("insert access tokens: %w", err)
	}
	if err := appendAuditRows(tx, audits); err != nil {
		return nil, fmt.Errorf("append audit records: %w", err)
	}
	return results, nil
}

// insertProofClaims inserts claims in a few statements and returns the ids
// it inserted; an id already present is left alone and not returned.
func insertProofClaims(tx *gorm.DB, claims []proofClaimModel) (map[string]bool, error) {
	inserted := make(map[string]bool, len(claims))
	if len(claims) == 0 {
		return inserted, nil
	}
	columns := []string{"id", "expires_at"}
	for _, size := range chunkSizes(len(claims)) {
		args := make([]any, 0, 2*size)
		for _, c := range claims[:size] {
			args = append(args, c.ID, c.ExpiresAt)
		}
		var ids []string
		query := insertStatement("proof_claims", columns, size, ` ON CONFLICT ("id") DO NOTHING RETURNING "id"`)
		if err := tx.Raw(query, args...).Scan(&ids).Error; err != nil {
			return nil, err
		}
		for _, id := range ids {
			inserted[id] = true
		}
		claims = claims[size:]
	}
	return inserted, nil
}

// proofClaimID is the claim's expiry in Unix seconds, zero-padded so ids
// sort by time, then the hex SHA-256 of jkt, a zero byte and jti. The
// expiry prefix makes inserts append at the end of the index and lets
// expired claims go by a range delete; the same proof always has the same
// expiry, so a replay still has the same id. The zero byte keeps distinct
// pairs from joining into the same string.
func proofClaimID(jkt, jti string, expiresAt time.Time) string {
	sum := sha256.Sum256([]byte(jkt + "\x00" + jti))
	return proofClaimPrefix(expiresAt) + hex.EncodeToString(sum[:])
}

// proofClaimPrefix returns the id prefix of claims expiring at t; every
// claim that expired before t sorts before it.
func proofClaimPrefix(t time.Time) string {
	return fmt.Sprintf("%012d.", t.Unix())
}
