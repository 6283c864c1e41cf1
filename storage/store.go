package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Driver names accepted in Config.Driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// ErrNotFound is returned when the requested row does not exist.
var ErrNotFound = errors.New("storage: not found")

// ErrClosed is returned by CommitExchange after Close has begun.
var ErrClosed = errors.New("storage: store closed")

// Config selects and configures the database.
type Config struct {
	// Driver is "sqlite" (the default when empty) or "postgres".
	Driver string
	// DSN is a file path for SQLite, or a libpq key/value string or a
	// postgres:// URL for PostgreSQL.
	DSN string
	// Synchronous is SQLite's synchronous pragma: "FULL" (the default when
	// empty) or "NORMAL". NORMAL in WAL mode may lose the last commits on a
	// power loss, so an issued token could lose its audit record.
	Synchronous string
	// Logger receives errors the store handles itself. Nil discards them.
	Logger *slog.Logger
}

// Store is a handle on the database and the group-commit writer. It is safe
// for concurrent use.
type Store struct {
	db     *gorm.DB
	driver string
	log    *slog.Logger

	exchanges  chan *exchangeItem // unbuffered: a send succeeds when the writer takes the item
	closing    chan struct{}      // closed to stop the writer
	writerDone chan struct{}      // closed when the writer has returned

	// closeMu guards closed. pending counts the CommitExchange calls that
	// passed the closed check, so Close can wait for them.
	closeMu   sync.RWMutex
	closed    bool
	pending   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	// batches and batchedItems count the writer's transactions and the
	// exchanges in them, so benchmarks can report the mean batch size.
	batches      atomic.Int64
	batchedItems atomic.Int64
}

// Open connects to the database described by cfg and starts the
// group-commit writer. It does not migrate the schema: call Migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	driver := cfg.Driver
	if driver == "" {
		driver = DriverSQLite
	}

	var dialector gorm.Dialector
	switch driver {
	case DriverSQLite:
		dsn, err := sqliteDSN(cfg.DSN, cfg.Synchronous)
		if err != nil {
			return nil, err
		}
		dialector = sqlite.Open(dsn)
	case DriverPostgres:
		if cfg.DSN == "" {
			return nil, errors.New("storage: missing postgres DSN")
		}
		dialector = postgres.Open(cfg.DSN)
	default:
		return nil, fmt.Errorf("storage: unknown driver %q: use %q or %q",
			cfg.Driver, DriverSQLite, DriverPostgres)
	}

	// gorm's own logger would print SQL with its arguments, which include
	// token signatures and session data, so it stays silent.
	db, err := gorm.Open(dialector, &gorm.Config{
		Logger: logger.Discard,
		// Statements are prepared once per connection and kept: parsing
		// SQL is a large part of an exchange's write cost otherwise.
		PrepareStmt: true,
		NowFunc:     func() time.Time { return dbTime(time.Now()) },
	})
	if err != nil {
		return nil, fmt.Errorf("storage: open %s database: %w", driver, err)
	}

	s := &Store{
		db:         db,
		driver:     driver,
		log:        log,
		exchanges:  make(chan *exchangeItem),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	if err := s.Ping(ctx); err != nil {
		s.closeDB()
		return nil, err
	}

	go s.runWriter()
	log.Info("storage: database opened", "driver", driver)
	return s, nil
}

// sqliteDSN appends the pragmas every pooled connection needs to path. The
// driver (glebarez/go-sqlite v1.21.2) runs each _pragma on every new
// connection and honours _txlock=immediate, which makes every read-write
// transaction start with BEGIN IMMEDIATE: a writer then waits for the lock
// up front (under busy_timeout) instead of failing with SQLITE_BUSY when a
// read lock cannot be upgraded.
//
// NOTE: that driver version ignores _txlock whenever _time_format is also
// set, so the DSN must not set _time_format. Times are stored in its
// default text format, which sorts correctly only because dbTime converts
// every time to UTC.
func sqliteDSN(path, synchronous string) (string, error) {
	if path == "" {
		return "", errors.New("storage: missing sqlite DSN: set a database file path")
	}

	mode := strings.ToUpper(synchronous)
	switch mode {
	case "":
		mode = "FULL"
	case "FULL", "NORMAL":
	default:
		return "", fmt.Errorf("storage: invalid sqlite synchronous %q: use FULL or NORMAL", synchronous)
	}

	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous("+mode+")")
	q.Set("_txlock", "immediate")

	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + q.Encode(), nil
}

// Driver returns the name of the database driver in use.
func (s *Store) Driver() string {
	return s.driver
}

// Ping checks that the database is reachable.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("storage: ping: %w", err)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("storage: ping %s database: %w", s.driver, err)
	}
	return nil
}

// Close stops the group-commit writer and closes the database. Exchanges
// already inside CommitExchange are committed first. Later CommitExchange
// calls return ErrClosed, and later calls of Close return the first call's
// result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()

		s.pending.Wait()
		close(s.closing)
		<-s.writerDone
		s.closeErr = s.closeDB()
		s.log.Info("storage: database closed", "driver", s.driver, "error", s.closeErr)
	})
	return s.closeErr
}

func (s *Store) closeDB() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	if err := sqlDB.Close(); err != nil {
		return fmt.Errorf("storage: close %s database: %w", s.driver, err)
	}
	return nil
}

// dbTime converts t to the form every time column stores: UTC, truncated to
// microseconds (PostgreSQL's precision), so both backends return equal
// values and SQLite's text timestamps compare in time order.
func dbTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

func dbTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}

// notFound maps gorm's missing-row error to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}
