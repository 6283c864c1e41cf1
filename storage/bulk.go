package storage

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// maxChunk is the largest number of rows one bulk statement inserts.
const maxChunk = 64

// chunkSizes splits n rows into power-of-two chunks, largest first (13
// becomes 8, 4, 1). A batch then uses at most a handful of distinct
// statements, each prepared once and kept.
func chunkSizes(n int) []int {
	var sizes []int
	for size := maxChunk; n > 0; size /= 2 {
		for n >= size {
			sizes = append(sizes, size)
			n -= size
		}
	}
	return sizes
}

// insertStatement returns "INSERT INTO table (columns) VALUES (?, ...),
// ..." for rows rows, followed by suffix. With numbered set the
// placeholders are $1, $2, ... instead, which PostgreSQL requires when
// database/sql passes the SQL unchanged. gorm rewrites "?" itself.
func insertStatement(table string, columns []string, rows int, suffix string, numbered bool) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO "` + table + `" (`)
	for i, c := range columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + c + `"`)
	}
	b.WriteString(") VALUES ")
	n := 0
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range columns {
			if j > 0 {
				b.WriteString(", ")
			}
			n++
			if numbered {
				b.WriteString("$" + strconv.Itoa(n))
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	b.WriteString(suffix)
	return b.String()
}

// bulkInsert names one prepared statement: the INSERT into table of rows
// rows.
type bulkInsert struct {
	table string
	rows  int
}

// bulkInserts holds the group-commit writer's multi-row INSERT statements,
// prepared on the pool once per table and chunk size. database/sql then
// prepares each on a connection the first time that connection runs it,
// and reuses it inside every later transaction on the same connection, so
// SQLite parses and plans an INSERT once rather than in every batch.
//
// Only the writer goroutine uses a bulkInserts, so it has no lock.
type bulkInserts struct {
	db     *sql.DB
	driver string
	stmts  map[bulkInsert]*sql.Stmt
}

func newBulkInserts(db *sql.DB, driver string) *bulkInserts {
	return &bulkInserts{db: db, driver: driver, stmts: make(map[bulkInsert]*sql.Stmt)}
}

// stmt returns the statement that inserts rows rows into table, with
// suffix after the VALUES list, inside tx. A table has one suffix.
func (b *bulkInserts) stmt(ctx context.Context, tx *sql.Tx, table string, columns []string, rows int, suffix string) (*sql.Stmt, error) {
	key := bulkInsert{table, rows}
	s, ok := b.stmts[key]
	if !ok {
		var err error
		query := insertStatement(table, columns, rows, suffix, b.driver == DriverPostgres)
		s, err = b.db.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		b.stmts[key] = s
	}
	return tx.StmtContext(ctx, s), nil
}

// insertRows inserts rows, each a value per column, into table inside tx
// in power-of-two chunks.
func (b *bulkInserts) insertRows(ctx context.Context, tx *sql.Tx, table string, columns []string, rows [][]any) error {
	for _, size := range chunkSizes(len(rows)) {
		args := make([]any, 0, size*len(columns))
		for _, row := range rows[:size] {
			args = append(args, row...)
		}
		s, err := b.stmt(ctx, tx, table, columns, size, "")
		if err != nil {
			return err
		}
		if _, err := s.ExecContext(ctx, args...); err != nil {
			return err
		}
		rows = rows[size:]
	}
	return nil
}

// close closes every statement. The writer must have stopped.
func (b *bulkInserts) close() error {
	var errs []error
	for key, s := range b.stmts {
		errs = append(errs, s.Close())
		delete(b.stmts, key)
	}
	return errors.Join(errs...)
}

var accessTokenColumns = []string{
	"token_id", "signature", "request_id", "client_id", "subject", "scope", "audience",
	"device_jkt", "parent", "issued_at", "expires_at", "revoked_at", "session", "session_id",
}

func (m accessTokenModel) values() []any {
	return []any{
		m.TokenID, m.Signature, m.RequestID, m.ClientID, m.Subject, m.Scope, m.Audience,
		m.DeviceJKT, m.Parent, m.IssuedAt, m.ExpiresAt, m.RevokedAt, m.Session, m.SessionID,
	}
}

var auditRecordColumns = []string{
	"time", "request_id", "event", "client_id", "subject", "subject_issuer", "device_jkt",
	"action", "audience", "catalog_entry", "catalog_version", "decision", "reason", "detail",
	"token_id", "token_expires_at", "count", "device_trust",
	"authorization_details", "details_hash", "step_up_method", "approver",
	"catalog_number", "operation", "target", "value_before", "value_after",
}

func (m auditRecordModel) values() []any {
	return []any{
		m.Time, m.RequestID, m.Event, m.ClientID, m.Subject, m.SubjectIssuer, m.DeviceJKT,
		m.Action, m.Audience, m.CatalogEntry, m.CatalogVersion, m.Decision, m.Reason, m.Detail,
		m.TokenID, m.TokenExpiresAt, m.Count, m.DeviceTrust,
		m.AuthorizationDetails, m.DetailsHash, m.StepUpMethod, m.Approver,
		m.CatalogNumber, m.Operation, m.Target, m.Before, m.After,
	}
}

// rowInserter inserts rows, each a value per column, into table within a
// transaction the caller holds.
type rowInserter func(table string, columns []string, rows [][]any) error

// gormInserter returns a rowInserter that runs through tx in power-of-two
// chunks. gorm parses the statements each time, which is fine off the
// exchange's hot path; the group-commit writer uses bulkInserts.
func gormInserter(tx *gorm.DB) rowInserter {
	return func(table string, columns []string, rows [][]any) error {
		for _, size := range chunkSizes(len(rows)) {
			args := make([]any, 0, size*len(columns))
			for _, row := range rows[:size] {
				args = append(args, row...)
			}
			if err := tx.Exec(insertStatement(table, columns, size, "", false), args...).Error; err != nil {
				return err
			}
			rows = rows[size:]
		}
		return nil
	}
}

// insertRows inserts rows into table through tx; see gormInserter.
func insertRows(tx *gorm.DB, table string, columns []string, rows [][]any) error {
	return gormInserter(tx)(table, columns, rows)
}
