package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	// queries are the writer's other prepared statements, by their SQL.
	queries map[string]*sql.Stmt
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
	for key, s := range b.queries {
		errs = append(errs, s.Close())
		delete(b.queries, key)
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

// query returns the prepared statement of sql bound to tx, preparing it
// on first use. Only the writer goroutine calls it.
func (b *bulkInserts) query(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if b.queries == nil {
		b.queries = map[string]*sql.Stmt{}
	}
	s, ok := b.queries[query]
	if !ok {
		var err error
		if s, err = b.db.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		b.queries[query] = s
	}
	return tx.StmtContext(ctx, s), nil
}

// sqlChainHead is the chainHeadStore of the group-commit writer: the
// head's read and update as prepared statements, since the writer runs
// them once a batch.
type sqlChainHead struct {
	ctx     context.Context
	tx      *sql.Tx
	inserts *bulkInserts
}

func (h sqlChainHead) lock() (chainHead, error) {
	query := `SELECT "seq", "hash" FROM "audit_chain_heads" WHERE "id" = 1`
	if h.inserts.driver == DriverPostgres {
		query += " FOR UPDATE"
	}
	stmt, err := h.inserts.query(h.ctx, h.tx, query)
	if err != nil {
		return chainHead{}, fmt.Errorf("lock audit chain head: %w", err)
	}
	var head chainHead
	err = stmt.QueryRowContext(h.ctx).Scan(&head.Seq, &head.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return chainHead{}, errors.New("lock audit chain head: the audit_chain_heads row is missing: " +
			"run sotto migrate, or restore the row from a backup if it was deleted")
	}
	if err != nil {
		return chainHead{}, fmt.Errorf("lock audit chain head: %w", err)
	}
	return head, nil
}

func (h sqlChainHead) move(head chainHead) error {
	query := moveChainHeadSQL
	if h.inserts.driver == DriverPostgres {
		query = `UPDATE "audit_chain_heads" SET "seq" = $1, "hash" = $2 WHERE "id" = 1`
	}
	stmt, err := h.inserts.query(h.ctx, h.tx, query)
	if err != nil {
		return err
	}
	_, err = stmt.ExecContext(h.ctx, head.Seq, head.Hash)
	return err
}
