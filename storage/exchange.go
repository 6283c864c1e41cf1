package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
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
		s.gather(&batch)

		s.batches.Add(1)
		s.batchedItems.Add(int64(len(batch)))
		s.commitBatch(batch)
		clear(batch)
	}
}

// gatherWait is how long the writer waits for more exchanges when a batch
// has fewer than gatherMin: a transaction's fixed cost (its fsync above
// all) is then shared by more exchanges, for at most a millisecond more
// latency. With 16 clients it raised the load tool's rate by about a
// fifth (docs/benchmarks.md); 300 µs helped less, and 2 ms with a minimum
// of 16 no more.
const gatherWait = time.Millisecond

// gatherMin is the batch size from which the writer commits at once.
const gatherMin = 12

// gather adds to a small batch the exchanges that arrive within
// gatherWait.
func (s *Store) gather(batch *[]*exchangeItem) {
	if len(*batch) >= gatherMin {
		return
	}
	timer := time.NewTimer(gatherWait)
	defer timer.Stop()
	for len(*batch) < maxBatch {
		select {
		case item := <-s.exchanges:
			*batch = append(*batch, item)
		case <-timer.C:
			return
		}
	}
}

// commitBatch commits items in one transaction and sends each caller its
// outcome. If that transaction fails, it retries each item in a transaction
// of its own, so one bad item fails alone.
func (s *Store) commitBatch(items []*exchangeItem) {
	// The callers' contexts no longer apply: a taken item is committed.
	ctx := context.Background()

	writes := make([]ExchangeWrite, len(items))
	for i, item := range items {
		writes[i] = item.write
	}
	results, batchErr := s.commitWrites(ctx, writes)
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
		r, itemErr := s.commitWrites(ctx, writes[i:i+1])
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

// commitWrites writes ws in one transaction and commits it. The hot
// inserts run through database/sql rather than gorm, so that their
// prepared statements are reused from batch to batch: gorm v1.31 prepares
// a statement first run inside a transaction again in every later one.
func (s *Store) commitWrites(ctx context.Context, ws []ExchangeWrite) ([]ExchangeResult, error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	// The step-up writes, rare and varied, go through gorm inside the
	// same transaction, the way gorm's own Begin binds a session to one.
	gormTx := s.db.Session(&gorm.Session{NewDB: true, Context: ctx})
	gormTx.Statement.ConnPool = tx

	results, err := writeExchanges(ctx, tx, gormTx, s.inserts, ws)
	if err != nil {
		// The write's error is the one to report: SQLite has already
		// undone the transaction itself after some errors, and then the
		// rollback fails too.
		_ = tx.Rollback()
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return results, nil
}

// writeExchanges writes ws inside tx with one statement per table, since
// a statement costs far more than a row. gormTx runs inside tx too. The
// proof claims are inserted with ON CONFLICT DO NOTHING RETURNING id, so a
// replay shows as an id that was not returned. That holds across replicas,
// and a second use of one proof within the batch is a replay too.
func writeExchanges(ctx context.Context, tx *sql.Tx, gormTx *gorm.DB, inserts *bulkInserts, ws []ExchangeWrite) ([]ExchangeResult, error) {
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

	inserted, err := inserts.insertProofClaims(ctx, tx, claims)
	if err != nil {
		return nil, fmt.Errorf("claim proofs: %w", err)
	}

	for i := range ws {
		if claimIDs[i] != "" && !results[i].Replayed && !inserted[claimIDs[i]] {
			results[i].Replayed = true
		}
	}
	if err := writeChallenges(gormTx, ws, results); err != nil {
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

	if err := inserts.insertRows(ctx, tx, "access_tokens", accessTokenColumns, tokens); err != nil {
		return nil, fmt.Errorf("insert access tokens: %w", err)
	}
	insert := func(table string, columns []string, rows [][]any) error {
		return inserts.insertRows(ctx, tx, table, columns, rows)
	}
	if err := appendAuditRowsWith(sqlChainHead{ctx, tx, inserts}, insert, audits); err != nil {
		return nil, fmt.Errorf("append audit records: %w", err)
	}
	return results, nil
}

// proofClaimColumns are the columns a proof claim insert writes, and
// proofClaimConflict follows its VALUES list.
var proofClaimColumns = []string{"id", "expires_at"}

const proofClaimConflict = ` ON CONFLICT ("id") DO NOTHING RETURNING "id"`

// insertProofClaims inserts claims through gorm in a few statements and
// returns the ids it inserted. An id already present is left alone and
// not returned. The group-commit writer uses bulkInserts.insertProofClaims.
func insertProofClaims(tx *gorm.DB, claims []proofClaimModel) (map[string]bool, error) {
	inserted := make(map[string]bool, len(claims))
	for _, size := range chunkSizes(len(claims)) {
		var ids []string
		query := insertStatement("proof_claims", proofClaimColumns, size, proofClaimConflict, false)
		if err := tx.Raw(query, proofClaimArgs(claims[:size])...).Scan(&ids).Error; err != nil {
			return nil, err
		}
		for _, id := range ids {
			inserted[id] = true
		}
		claims = claims[size:]
	}
	return inserted, nil
}

// insertProofClaims inserts claims inside tx with prepared statements and
// returns the ids it inserted. An id already present is left alone and
// not returned.
func (b *bulkInserts) insertProofClaims(ctx context.Context, tx *sql.Tx, claims []proofClaimModel) (map[string]bool, error) {
	inserted := make(map[string]bool, len(claims))
	for _, size := range chunkSizes(len(claims)) {
		stmt, err := b.stmt(ctx, tx, "proof_claims", proofClaimColumns, size, proofClaimConflict)
		if err != nil {
			return nil, err
		}
		if err := scanInsertedIDs(ctx, stmt, proofClaimArgs(claims[:size]), inserted); err != nil {
			return nil, err
		}
		claims = claims[size:]
	}
	return inserted, nil
}

func proofClaimArgs(claims []proofClaimModel) []any {
	args := make([]any, 0, 2*len(claims))
	for _, c := range claims {
		args = append(args, c.ID, c.ExpiresAt)
	}
	return args
}

// scanInsertedIDs runs stmt with args and adds each id it returns to
// inserted.
func scanInsertedIDs(ctx context.Context, stmt *sql.Stmt, args []any, inserted map[string]bool) error {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		inserted[id] = true
	}
	return rows.Err()
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
