package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/sotto-auth/sotto/audit"
)

// postgresDSNEnv names the environment variable with the DSN of a
// PostgreSQL database the tests may create schemas in. Without it the
// PostgreSQL runs are skipped.
const postgresDSNEnv = "SOTTO_TEST_POSTGRES_DSN"

// newConfigFunc returns the Config of a fresh, empty database. Opening the
// same Config again reaches the same database.
type newConfigFunc func(t testing.TB) Config

// suiteCases is the conformance suite every backend must pass.
var suiteCases = []struct {
	name string
	run  func(t *testing.T, newConfig newConfigFunc)
}{
	{"migrate twice is a no-op", testMigrateTwice},
	{"signing keys rotate and list newest first", testSigningKeys},
	{"deleting retired signing keys", testDeleteRetiredSigningKeys},
	{"setting missing and set once", testSettings},
	{"setting race returns one value", testSettingRace},
	{"access token lookups", testAccessTokenLookups},
	{"revoke counts and audits", testRevoke},
	{"exchange issues token and audit", testExchangeIssued},
	{"exchange replay writes replay audit only", testExchangeReplay},
	{"exchange refusal writes audit only", testExchangeRefusal},
	{"exchange without proof", testExchangeWithoutProof},
	{"exchange concurrent distinct proofs", testExchangeConcurrentDistinct},
	{"exchange concurrent same proof", testExchangeConcurrentSameProof},
	{"exchange batch isolates a failing item", testExchangeBatchIsolatesFailure},
	{"exchange batch replays a repeated proof", testExchangeBatchRepeatedProof},
	{"exchange with ended context", testExchangeEndedContext},
	{"close commits pending exchanges", testCloseCommitsPending},
	{"data persists across reopen", testPersistAcrossReopen},
	{"expired proof claims are deleted", testDeleteExpiredProofClaims},
	{"audit records filter and page", testAuditFilter},
	{"step-up challenge lifecycle", testChallengeLifecycle},
	{"replayed proof creates no challenge", testChallengeReplayedProofCreatesNothing},
	{"push challenge and denial counts", testPushCounts},
	{"session create and read", testSessionCreateAndRead},
	{"session rotate then reuse revokes", testSessionRotateAndReuse},
	{"session rotate of expired token", testSessionRotateExpired},
	{"code redeem then reuse revokes", testCodeRedeemThenReuse},
	{"code concurrent redemption", testCodeConcurrentRedemption},
	{"pending request taken once", testPendingRequestTakenOnce},
	{"session concurrent rotation", testSessionConcurrentRotation},
	{"session revoke counts", testRevokeSessionCounts},
	{"device revocation ends its sessions", testRevokeDeviceEndsSessions},
	{"device standing for the exchange", testDeviceStanding},
	{"passkey register, approve, flag, remove", testPasskeyLifecycle},
	{"catalog versions compare and swap", testCatalogVersions},
	{"clients import once", testClientsImportOnce},
	{"revoke tokens by attribute", testRevokeWhere},
}

func runSuite(t *testing.T, newConfig newConfigFunc) {
	for _, tc := range suiteCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newConfig)
		})
	}
}

func TestSQLite(t *testing.T) {
	runSuite(t, sqliteConfig("FULL"))
}

func TestPostgres(t *testing.T) {
	dsn := os.Getenv(postgresDSNEnv)
	if dsn == "" {
		t.Skipf("set %s to a PostgreSQL DSN to run the PostgreSQL suite", postgresDSNEnv)
	}
	runSuite(t, postgresConfig(dsn))
}

// sqliteConfig returns a newConfigFunc that puts each database in a file of
// its own in the test's temporary directory.
func sqliteConfig(synchronous string) newConfigFunc {
	return func(t testing.TB) Config {
		return Config{
			Driver:      DriverSQLite,
			DSN:         filepath.Join(t.TempDir(), "sotto.db"),
			Synchronous: synchronous,
		}
	}
}

// postgresConfig returns a newConfigFunc that creates a schema with a random
// name for each database, selects it through search_path, and drops it when
// the test ends, so parallel packages and reruns never share tables.
func postgresConfig(baseDSN string) newConfigFunc {
	return func(t testing.TB) Config {
		t.Helper()

		admin, err := gorm.Open(postgres.Open(baseDSN), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			t.Fatalf("connect to %s: %v", postgresDSNEnv, err)
		}
		schema := "sotto_test_" + randomHex(t, 8)
		if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
			t.Fatalf("create schema %s: %v", schema, err)
		}
		t.Cleanup(func() {
			if err := admin.Exec("DROP SCHEMA " + schema + " CASCADE").Error; err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
			}
			if sqlDB, err := admin.DB(); err == nil {
				sqlDB.Close()
			}
		})

		return Config{Driver: DriverPostgres, DSN: withSearchPath(baseDSN, schema)}
	}
}

// withSearchPath adds search_path=schema to a postgres:// URL or a
// key/value DSN.
func withSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " search_path=" + schema
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("read random bytes: %v", err)
	}
	return hex.EncodeToString(b)
}

// openStore opens and migrates the database of cfg and closes it when the
// test ends.
func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Driver, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// testClock is the fixed time the tests start from. Its nanoseconds and its
// zone check that the store truncates to microseconds and converts to UTC.
var testClock = time.Date(2026, 12, 4, 10, 30, 0, 123456789, time.FixedZone("CET", 3600))

// stored is t as the store returns it.
func stored(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

func testToken(i int) *AccessToken {
	return &AccessToken{
		Signature: fmt.Sprintf("%064x", i+1),
		TokenID:   fmt.Sprintf("jti-%d", i),
		RequestID: fmt.Sprintf("request-%d", i),
		ClientID:  "assistant",
		Subject:   "alice@example.com",
		Scope:     "incident.create",
		Audience:  "https://itsm.example.com",
		DeviceJKT: "device-jkt",
		Parent:    "session-1",
		IssuedAt:  testClock,
		ExpiresAt: testClock.Add(5 * time.Minute),
		Session:   []byte(`{"acr":"phr"}`),
	}
}

func testRecord(requestID string, d audit.Decision) audit.Record {
	return audit.Record{
		Time:      testClock,
		RequestID: requestID,
		Event:     audit.EventExchange,
		ClientID:  "assistant",
		Subject:   "alice@example.com",
		DeviceJKT: "device-jkt",
		Action:    "incident.create",
		Decision:  d,
	}
}

// issuedWrite is the write of an issued token i with a proof of its own.
func issuedWrite(i int) ExchangeWrite {
	tok := testToken(i)
	rec := testRecord(tok.RequestID, audit.DecisionIssued)
	rec.TokenID = tok.TokenID
	rec.TokenExpiresAt = tok.ExpiresAt

	replay := testRecord(tok.RequestID, audit.DecisionRefused)
	replay.Reason = "dpop_replay"

	return ExchangeWrite{
		Proof: &ProofClaim{
			JKT:       "device-jkt",
			JTI:       fmt.Sprintf("proof-%d", i),
			ExpiresAt: testClock.Add(time.Minute),
		},
		Token:       tok,
		Audit:       rec,
		ReplayAudit: replay,
	}
}

func commit(t testing.TB, s *Store, w ExchangeWrite) ExchangeResult {
	t.Helper()
	res, err := s.CommitExchange(context.Background(), w)
	if err != nil {
		t.Fatalf("CommitExchange: %v", err)
	}
	return res
}

func allAudit(t testing.TB, s *Store) []audit.Record {
	t.Helper()
	recs, err := s.AuditRecords(context.Background(), AuditFilter{Limit: 100000})
	if err != nil {
		t.Fatalf("AuditRecords: %v", err)
	}
	return recs
}

func countRows(t testing.TB, s *Store, model any) int64 {
	t.Helper()
	var n int64
	if err := s.db.Model(model).Count(&n).Error; err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return n
}

// logCapture is a slog.Handler that keeps the records it handles.
type logCapture struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *logCapture) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logCapture) WithGroup(string) slog.Handler      { return h }
