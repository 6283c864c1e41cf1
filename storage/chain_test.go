package storage

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/audit"
)

// chainCases run on every backend, like the suite in suite_test.go.
var chainCases = []struct {
	name string
	run  func(t *testing.T, newConfig newConfigFunc)
}{
	{"every writer links to the chain", testChainEveryWriter},
	{"verify finds a tampered record", testVerifyTampering},
	{"chain linear under concurrent stores", testChainConcurrentStores},
	{"prune then verify passes", testPruneThenVerify},
	{"verify rejects tampering after prune", testVerifyAfterPruneTampering},
	{"migration links existing records", testMigrationLinksExisting},
}

func TestChainSQLite(t *testing.T) {
	runChainCases(t, sqliteConfig("FULL"))
}

func TestChainPostgres(t *testing.T) {
	dsn := os.Getenv(postgresDSNEnv)
	if dsn == "" {
		t.Skipf("set %s to a PostgreSQL DSN to run the PostgreSQL suite", postgresDSNEnv)
	}
	runChainCases(t, postgresConfig(dsn))
}

func runChainCases(t *testing.T, newConfig newConfigFunc) {
	for _, tc := range chainCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newConfig)
		})
	}
}

// testSigner signs checkpoints with a fresh ES256 key and returns the
// public key set that verifies them.
func testSigner(t testing.TB) (CheckpointSigner, jose.JSONWebKeySet) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	opts := (&jose.SignerOptions{}).WithType(audit.CheckpointType).WithHeader("kid", "test-key")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(payload []byte) (string, error) {
		jws, err := signer.Sign(payload)
		if err != nil {
			return "", err
		}
		return jws.CompactSerialize()
	}
	keys := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "test-key", Algorithm: "ES256"}}}
	return sign, keys
}

func verifyChain(t testing.TB, s *Store, keys jose.JSONWebKeySet) *VerifyReport {
	t.Helper()
	report, err := s.VerifyAuditChain(context.Background(), VerifyOptions{Keys: keys})
	if err != nil {
		t.Fatalf("VerifyAuditChain: %v", err)
	}
	return report
}

func appendRecords(t testing.TB, s *Store, n int) {
	t.Helper()
	for i := range n {
		rec := testRecord(fmt.Sprintf("request-%d", i), audit.DecisionRefused)
		rec.Reason = "invalid_scope"
		if err := s.AppendAudit(context.Background(), rec); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
}

func exec(t testing.TB, s *Store, sql string, args ...any) {
	t.Helper()
	if err := s.db.Exec(sql, args...).Error; err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func testChainEveryWriter(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	commit(t, s, issuedWrite(0))
	commit(t, s, issuedWrite(0)) // a replay writes the replay record
	appendRecords(t, s, 1)
	if _, err := s.RevokeAccessTokens(ctx, "request-0", testClock, testRecord("revoke", audit.DecisionRevoked)); err != nil {
		t.Fatalf("RevokeAccessTokens: %v", err)
	}
	var wg sync.WaitGroup
	for i := 1; i <= 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			commit(t, s, issuedWrite(i))
		}()
	}
	wg.Wait()

	recs := allAudit(t, s)
	if len(recs) != 24 {
		t.Fatalf("got %d records, want 24", len(recs))
	}
	prev := ""
	for i, r := range recs {
		if r.ID != int64(i+1) {
			t.Errorf("record %d has ID %d, want %d", i, r.ID, i+1)
		}
		if r.PrevHash != prev {
			t.Errorf("record %d PrevHash = %q, want %q", r.ID, r.PrevHash, prev)
		}
		if got := audit.ChainHash(&r); got != r.Hash {
			t.Errorf("record %d Hash = %q, want %q", r.ID, r.Hash, got)
		}
		prev = r.Hash
	}
	if report := verifyChain(t, s, jose.JSONWebKeySet{}); report.Problem != nil {
		t.Errorf("verify an intact chain: %v", report.Problem)
	}
}

func testVerifyTampering(t *testing.T, newConfig newConfigFunc) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, s *Store)
		kind   audit.ProblemKind
		id     int64
	}{
		{
			name: "edited detail",
			tamper: func(t *testing.T, s *Store) {
				exec(t, s, `UPDATE audit_records SET detail = 'nothing happened' WHERE id = 4`)
			},
			kind: audit.ProblemEdited, id: 4,
		},
		{
			name: "edited with its hash recomputed",
			tamper: func(t *testing.T, s *Store) {
				var m auditRecordModel
				if err := s.db.Where("id = 4").Take(&m).Error; err != nil {
					t.Fatal(err)
				}
				rec := m.toRecord()
				rec.Decision = audit.DecisionIssued
				exec(t, s, `UPDATE audit_records SET decision = ?, hash = ? WHERE id = 4`, "issued", audit.ChainHash(&rec))
			},
			kind: audit.ProblemEdited, id: 4,
		},
		{
			name:   "deleted in the middle",
			tamper: func(t *testing.T, s *Store) { exec(t, s, `DELETE FROM audit_records WHERE id IN (4, 5)`) },
			kind:   audit.ProblemDeleted, id: 4,
		},
		{
			name:   "deleted at the end",
			tamper: func(t *testing.T, s *Store) { exec(t, s, `DELETE FROM audit_records WHERE id = 8`) },
			kind:   audit.ProblemDeleted, id: 8,
		},
		{
			name:   "deleted first",
			tamper: func(t *testing.T, s *Store) { exec(t, s, `DELETE FROM audit_records WHERE id = 1`) },
			kind:   audit.ProblemDeleted, id: 1,
		},
		{
			name: "reordered by swapping IDs",
			tamper: func(t *testing.T, s *Store) {
				exec(t, s, `UPDATE audit_records SET id = -1 WHERE id = 4`)
				exec(t, s, `UPDATE audit_records SET id = 4 WHERE id = 5`)
				exec(t, s, `UPDATE audit_records SET id = 5 WHERE id = -1`)
			},
			kind: audit.ProblemReordered, id: 4,
		},
		{
			name:   "head moved back",
			tamper: func(t *testing.T, s *Store) { exec(t, s, `UPDATE audit_chain_heads SET seq = 7`) },
			kind:   audit.ProblemHead, id: 8,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, newConfig(t))
			appendRecords(t, s, 8)
			if report := verifyChain(t, s, jose.JSONWebKeySet{}); report.Problem != nil {
				t.Fatalf("verify before tampering: %v", report.Problem)
			}

			tc.tamper(t, s)
			report := verifyChain(t, s, jose.JSONWebKeySet{})
			if report.Problem == nil {
				t.Fatalf("verify after tampering found no problem")
			}
			if report.Problem.Kind != tc.kind {
				t.Errorf("problem kind = %s, want %s (%v)", report.Problem.Kind, tc.kind, report.Problem)
			}
			if report.Problem.ID != tc.id {
				t.Errorf("problem ID = %d, want %d (%v)", report.Problem.ID, tc.id, report.Problem)
			}
		})
	}
}

func testChainConcurrentStores(t *testing.T, newConfig newConfigFunc) {
	cfg := newConfig(t)
	a := openStore(t, cfg)
	b := openStore(t, cfg)

	const perWriter = 40
	var wg sync.WaitGroup
	for w, s := range []*Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				n := w*perWriter + i
				var err error
				if i%4 == 3 {
					err = s.AppendAudit(context.Background(), testRecord(fmt.Sprintf("append-%d", n), audit.DecisionRefused))
				} else {
					_, err = s.CommitExchange(context.Background(), issuedWrite(n))
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()

	recs := allAudit(t, a)
	if len(recs) != 4*perWriter {
		t.Fatalf("got %d records, want %d", len(recs), 4*perWriter)
	}
	report := verifyChain(t, b, jose.JSONWebKeySet{})
	if report.Problem != nil {
		t.Errorf("verify after concurrent writers: %v", report.Problem)
	}
	if report.Head != int64(len(recs)) {
		t.Errorf("head = %d, want %d", report.Head, len(recs))
	}
}

// seedMixed appends 12 records, of which IDs 1, 3, 5, 6, 7, 9 and 11 are
// introspections dated 40 days before testClock and the others exchanges
// dated testClock. It returns a retention that deletes the introspections.
func seedMixed(t testing.TB, s *Store) map[audit.Event]time.Duration {
	t.Helper()
	for i := range 12 {
		rec := testRecord(fmt.Sprintf("request-%d", i), audit.DecisionIssued)
		if i%2 == 0 || i == 5 {
			rec.Event, rec.Decision = audit.EventIntrospection, audit.DecisionActive
			rec.Time = testClock.Add(-40 * 24 * time.Hour)
		}
		if err := s.AppendAudit(context.Background(), rec); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	return map[audit.Event]time.Duration{audit.EventIntrospection: 30 * 24 * time.Hour}
}

func testPruneThenVerify(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()
	sign, keys := testSigner(t)
	retention := seedMixed(t, s)

	res, err := s.PruneAudit(ctx, PruneOptions{Retention: retention, Now: testClock, Sign: sign, BatchSize: 3})
	if err != nil {
		t.Fatalf("PruneAudit: %v", err)
	}
	if res.Deleted != 7 {
		t.Errorf("deleted %d records, want 7", res.Deleted)
	}
	recs := allAudit(t, s)
	if len(recs) != 5 {
		t.Fatalf("%d records left, want 5", len(recs))
	}
	for _, r := range recs {
		if r.Event != audit.EventExchange {
			t.Errorf("record %d of event %s survived the prune", r.ID, r.Event)
		}
	}

	report := verifyChain(t, s, keys)
	if report.Problem != nil {
		t.Fatalf("verify after prune: %v", report.Problem)
	}
	if report.Checkpoint == nil {
		t.Fatalf("verify after prune used no checkpoint")
	}
	// Records 1, 3, 5 to 7, 9 and 11 were deleted. With batches of 3, the
	// range 5 to 7 is merged from two batches.
	if report.Gaps != 5 {
		t.Errorf("crossed %d gaps, want 5", report.Gaps)
	}

	// Records written after the prune still verify, and a second prune
	// with nothing due changes nothing.
	appendRecords(t, s, 2)
	if _, err := s.PruneAudit(ctx, PruneOptions{Retention: retention, Now: testClock, Sign: sign}); err != nil {
		t.Fatalf("second PruneAudit: %v", err)
	}
	if report := verifyChain(t, s, keys); report.Problem != nil {
		t.Errorf("verify after a second prune: %v", report.Problem)
	}

	// A checkpoint signed by another key is rejected.
	_, otherKeys := testSigner(t)
	otherKeys.Keys[0].KeyID = "test-key"
	if report := verifyChain(t, s, otherKeys); report.Problem == nil || report.Problem.Kind != audit.ProblemCheckpoint {
		t.Errorf("verify with the wrong key: problem %v, want a checkpoint problem", report.Problem)
	}
}

func testVerifyAfterPruneTampering(t *testing.T, newConfig newConfigFunc) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, s *Store)
		kind   audit.ProblemKind
	}{
		{
			name:   "kept record deleted",
			tamper: func(t *testing.T, s *Store) { exec(t, s, `DELETE FROM audit_records WHERE id = 4`) },
			kind:   audit.ProblemDeleted,
		},
		{
			name: "deletion disguised as a gap",
			tamper: func(t *testing.T, s *Store) {
				var m auditRecordModel
				if err := s.db.Where("id = 4").Take(&m).Error; err != nil {
					t.Fatal(err)
				}
				exec(t, s, `DELETE FROM audit_records WHERE id = 4`)
				exec(t, s, `INSERT INTO audit_gaps (first_id, last_id, prev_hash, last_hash, pruned_at) VALUES (4, 4, ?, ?, ?)`,
					m.PrevHash, m.Hash, dbTime(testClock))
			},
			kind: audit.ProblemGaps,
		},
		{
			name:   "gap removed",
			tamper: func(t *testing.T, s *Store) { exec(t, s, `DELETE FROM audit_gaps WHERE first_id = 1`) },
			kind:   audit.ProblemGaps,
		},
		{
			name:   "checkpoint row rewritten",
			tamper: func(t *testing.T, s *Store) { exec(t, s, `UPDATE audit_checkpoints SET seq = 3`) },
			kind:   audit.ProblemCheckpoint,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, newConfig(t))
			sign, keys := testSigner(t)
			retention := seedMixed(t, s)
			if _, err := s.PruneAudit(context.Background(), PruneOptions{Retention: retention, Now: testClock, Sign: sign}); err != nil {
				t.Fatalf("PruneAudit: %v", err)
			}

			tc.tamper(t, s)
			report := verifyChain(t, s, keys)
			if report.Problem == nil {
				t.Fatalf("verify after tampering found no problem")
			}
			if report.Problem.Kind != tc.kind {
				t.Errorf("problem kind = %s, want %s (%v)", report.Problem.Kind, tc.kind, report.Problem)
			}
		})
	}
}

func testMigrationLinksExisting(t *testing.T, newConfig newConfigFunc) {
	cfg := newConfig(t)
	s := openStore(t, cfg)
	ctx := context.Background()

	// Undo the chain migration, write records the way the previous
	// version did, with a skipped ID, and migrate again.
	exec(t, s, `DELETE FROM schema_migrations WHERE id = '20261204_0020_audit_chain'`)
	if err := migrationAuditChain().Rollback(s.db); err != nil {
		t.Fatalf("roll back the chain migration: %v", err)
	}
	for _, id := range []int64{1, 2, 4} {
		exec(t, s, `INSERT INTO audit_records (id, time, request_id, event, client_id, subject, subject_issuer,
			device_jkt, action, audience, catalog_entry, catalog_version, decision, reason, detail, token_id, count, device_trust)
			VALUES (?, ?, ?, 'token_exchange', 'assistant', 'alice', '', '', 'incident.create', '', '', '', 'refused', 'invalid_scope', '', '', 0, '')`,
			id, dbTime(testClock), fmt.Sprintf("old-%d", id))
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	appendRecords(t, s, 2)

	recs := allAudit(t, s)
	if got := len(recs); got != 5 {
		t.Fatalf("got %d records, want 5", got)
	}
	if recs[3].ID != 5 {
		t.Errorf("first record after the migration has ID %d, want 5", recs[3].ID)
	}
	if report := verifyChain(t, s, jose.JSONWebKeySet{}); report.Problem != nil {
		t.Errorf("verify a migrated chain: %v", report.Problem)
	}

	exec(t, s, `DELETE FROM audit_records WHERE id = 2`)
	report := verifyChain(t, s, jose.JSONWebKeySet{})
	if report.Problem == nil || report.Problem.Kind != audit.ProblemDeleted {
		t.Errorf("verify a migrated chain with record 2 deleted: problem %v, want deleted", report.Problem)
	}
	if report.Problem != nil && !strings.Contains(report.Problem.Message, "2") {
		t.Errorf("problem message %q does not name record 2", report.Problem.Message)
	}
}
