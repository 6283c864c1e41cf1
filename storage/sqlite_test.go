package storage

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSQLiteDSN(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		synchronous string
		wantSync    string // empty when an error is expected
	}{
		{"empty synchronous defaults to FULL", "a.db", "", "FULL"},
		{"lower-case full is accepted", "a.db", "full", "FULL"},
		{"NORMAL is accepted", "a.db", "NORMAL", "NORMAL"},
		{"OFF is rejected", "a.db", "OFF", ""},
		{"empty path is rejected", "", "", ""},
		{"path with a query keeps it", "a.db?cache=private", "", "FULL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn, err := sqliteDSN(tc.path, tc.synchronous)
			if tc.wantSync == "" {
				if err == nil {
					t.Fatalf("sqliteDSN(%q, %q) = %q, want an error", tc.path, tc.synchronous, dsn)
				}
				return
			}
			if err != nil {
				t.Fatalf("sqliteDSN(%q, %q): %v", tc.path, tc.synchronous, err)
			}

			path, rawQuery, _ := strings.Cut(dsn, "?")
			if path != "file:a.db" {
				t.Errorf("path = %q, want %q", path, "file:a.db")
			}
			q, err := url.ParseQuery(rawQuery)
			if err != nil {
				t.Fatalf("parse query %q: %v", rawQuery, err)
			}
			wantPragmas := []string{"journal_mode(WAL)", "busy_timeout(5000)", "foreign_keys(1)",
				"synchronous(" + tc.wantSync + ")", "temp_store(MEMORY)"}
			if got := strings.Join(q["_pragma"], " "); got != strings.Join(wantPragmas, " ") {
				t.Errorf("pragmas = %s, want %s", got, strings.Join(wantPragmas, " "))
			}
			if got := q.Get("_txlock"); got != "immediate" {
				t.Errorf("_txlock = %q, want immediate", got)
			}
			if got := q.Get("_timefmt"); got != sqliteTimeFormat {
				t.Errorf("_timefmt = %q, want %q", got, sqliteTimeFormat)
			}
			if strings.Contains(tc.path, "?") && q.Get("cache") != "private" {
				t.Errorf("cache = %q, want the caller's private", q.Get("cache"))
			}
		})
	}
}

func TestSQLitePragmasOnEveryConnection(t *testing.T) {
	tests := []struct {
		synchronous string
		wantSync    int // SQLite's number for the mode
	}{
		{"", 2},
		{"NORMAL", 1},
	}
	for _, tc := range tests {
		t.Run("synchronous "+tc.synchronous, func(t *testing.T) {
			s := openStore(t, sqliteConfig(tc.synchronous)(t))
			sqlDB, err := s.db.DB()
			if err != nil {
				t.Fatal(err)
			}

			// Hold several connections at once so each is a separate one
			// from the pool.
			ctx := context.Background()
			var conns []*sql.Conn
			for range 3 {
				c, err := sqlDB.Conn(ctx)
				if err != nil {
					t.Fatalf("take connection: %v", err)
				}
				defer c.Close()
				conns = append(conns, c)
			}

			for i, c := range conns {
				var journal string
				var sync, foreignKeys, busy, tempStore int
				if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
					t.Fatalf("connection %d: journal_mode: %v", i, err)
				}
				if err := c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
					t.Fatalf("connection %d: synchronous: %v", i, err)
				}
				if err := c.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&foreignKeys); err != nil {
					t.Fatalf("connection %d: foreign_keys: %v", i, err)
				}
				if err := c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
					t.Fatalf("connection %d: busy_timeout: %v", i, err)
				}
				if err := c.QueryRowContext(ctx, "PRAGMA temp_store").Scan(&tempStore); err != nil {
					t.Fatalf("connection %d: temp_store: %v", i, err)
				}
				if journal != "wal" {
					t.Errorf("connection %d: journal_mode = %q, want wal", i, journal)
				}
				if sync != tc.wantSync {
					t.Errorf("connection %d: synchronous = %d, want %d", i, sync, tc.wantSync)
				}
				if foreignKeys != 1 {
					t.Errorf("connection %d: foreign_keys = %d, want 1", i, foreignKeys)
				}
				if busy != 5000 {
					t.Errorf("connection %d: busy_timeout = %d, want 5000", i, busy)
				}
				if tempStore != 2 {
					t.Errorf("connection %d: temp_store = %d, want 2 (MEMORY)", i, tempStore)
				}
			}
		})
	}
}

// TestSQLiteImmediateTransactions checks that a read-write transaction
// takes the write lock at BEGIN: while one is open, a second BEGIN
// IMMEDIATE on another connection fails at once. With a deferred BEGIN no
// lock would be held yet and the second BEGIN would succeed.
func TestSQLiteImmediateTransactions(t *testing.T) {
	s := openStore(t, sqliteConfig("")(t))
	sqlDB, err := s.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback()

	other, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatalf("take connection: %v", err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		t.Fatalf("set busy_timeout: %v", err)
	}

	_, err = other.ExecContext(ctx, "BEGIN IMMEDIATE")
	if err == nil {
		other.ExecContext(ctx, "ROLLBACK")
		t.Fatal("second BEGIN IMMEDIATE succeeded while a transaction was open, want database is locked")
	}
	if !strings.Contains(err.Error(), "locked") && !strings.Contains(err.Error(), "busy") {
		t.Errorf("second BEGIN IMMEDIATE: error = %v, want database is locked", err)
	}
}

func TestOpenRejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"unknown driver", Config{Driver: "mysql", DSN: "x"}},
		{"sqlite without a path", Config{}},
		{"postgres without a DSN", Config{Driver: DriverPostgres}},
		{"invalid synchronous", Config{DSN: filepath.Join(t.TempDir(), "a.db"), Synchronous: "EXTRA"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(context.Background(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
		})
	}
}

func TestOpenDefaultsToSQLite(t *testing.T) {
	s := openStore(t, Config{DSN: filepath.Join(t.TempDir(), "a.db")})
	if got := s.Driver(); got != DriverSQLite {
		t.Errorf("Driver() = %q, want %q", got, DriverSQLite)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestSQLiteDSNEscapesPath(t *testing.T) {
	dsn, err := sqliteDSN("dir #1/a?b.db", "")
	if err != nil {
		t.Fatalf("sqliteDSN: %v", err)
	}
	if want := "file:dir%20%231/a?b.db&"; !strings.HasPrefix(dsn, want) {
		t.Errorf("DSN = %q, want it to start with %q", dsn, want)
	}
}

// TestSQLiteTimesSortAsText checks that stored times compare in time order
// as text, which the expires_at range queries rely on: a time on a whole
// second must sort before one a fraction later.
func TestSQLiteTimesSortAsText(t *testing.T) {
	s := openStore(t, sqliteConfig("")(t))
	whole := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	for i, expires := range []time.Time{whole.Add(500 * time.Millisecond), whole, whole.Add(-time.Microsecond)} {
		w := issuedWrite(i)
		w.Token.ExpiresAt = expires
		commit(t, s, w)
	}

	var stored []string
	err := s.db.Raw(`SELECT CAST(expires_at AS TEXT) FROM access_tokens ORDER BY expires_at`).Scan(&stored).Error
	if err != nil {
		t.Fatalf("read expires_at: %v", err)
	}
	want := []string{
		"2026-12-04 10:29:59.999999Z",
		"2026-12-04 10:30:00.000000Z",
		"2026-12-04 10:30:00.500000Z",
	}
	if strings.Join(stored, " ") != strings.Join(want, " ") {
		t.Errorf("expires_at in text order = %q, want %q", stored, want)
	}
}
