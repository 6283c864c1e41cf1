package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	sqlitedriver "github.com/ncruces/go-sqlite3/driver"
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

	inserts    *bulkInserts       // the writer's prepared statements
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

	// standingStmt is the prepared device lookup of DeviceStanding.
	standingOnce sync.Once
	standingStmt *sql.Stmt
	standingErr  error
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
	var sqlitePool *sql.DB // closed here if gorm cannot start on it
	switch driver {
	case DriverSQLite:
		dsn, err := sqliteDSN(cfg.DSN, cfg.Synchronous)
		if err != nil {
			return nil, err
		}
		// ncruces/go-sqlite3 keeps each prepared statement compiled, so
		// a statement run again is not parsed again. gorm reaches it
		// through the glebarez dialector given this pool as Conn: that
		// dialector's own driver is linked in but opens no connection.
		sqlitePool, err = sqlitedriver.Open(dsn)
		if err != nil {
			return nil, fmt.Errorf("storage: open sqlite database: %w", err)
		}
		// database/sql keeps only 2 idle connections by default, and
		// opening an SQLite connection runs every pragma again.
		sqlitePool.SetMaxIdleConns(sqliteMaxIdleConns)
		dialector = &sqlite.Dialector{Conn: sqlitePool}
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
		if sqlitePool != nil {
			sqlitePool.Close()
		}
		return nil, fmt.Errorf("storage: open %s database: %w", driver, err)
	}

	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("storage: open %s database: %w", driver, err)
	}
	s := &Store{
		db:         db,
		driver:     driver,
		log:        log,
		inserts:    newBulkInserts(sqlDB, driver),
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

// sqliteMaxIdleConns is the number of idle SQLite connections the pool
// keeps open for reuse.
const sqliteMaxIdleConns = 16

// sqliteTimeFormat is the layout of every time stored in SQLite. dbTime
// converts each time to UTC with microseconds, so every stored time has
// the same width and ends in "Z", and times compare in order as text.
// SQLite's own date functions read this layout too.
//
// NOTE: a time stored in any other layout does not read back as a time,
// so an SQLite file written with an earlier layout must be recreated.
const sqliteTimeFormat = "2006-01-02 15:04:05.000000Z07:00"

// sqliteDSN turns path into a "file:" URI with the settings every pooled
// connection needs. The driver (ncruces/go-sqlite3 v0.37.0) reads the query
// only from a "file:" URI, runs each _pragma on every new connection, and
// with _txlock=immediate starts every read-write transaction with BEGIN
// IMMEDIATE: a writer then waits for the lock up front (under
// busy_timeout) instead of failing with SQLITE_BUSY when a read lock
// cannot be upgraded. temp_store(MEMORY) keeps temporary files in memory,
// among them the statement journal of a multi-row INSERT. That journal
// only ever serves to undo one statement, so durability is unchanged.
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
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Set("_txlock", "immediate")
	q.Set("_timefmt", sqliteTimeFormat)

	// The path is escaped, since a "#" or "%" in it would change the
	// URI's meaning. Whatever follows the first "?" is a query the caller
	// appended, and is kept as it is.
	name, query, hasQuery := strings.Cut(path, "?")
	uri := "file:" + (&url.URL{Path: name}).EscapedPath() + "?"
	if hasQuery {
		uri += query + "&"
	}
	return uri + q.Encode(), nil
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
		s.inserts.close()
		if s.standingStmt != nil {
			s.standingStmt.Close()
		}
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
