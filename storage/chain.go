package storage

import (
	"fmt"

	"gorm.io/gorm"

	"github.com/sotto-auth/sotto/audit"
)

// chainHead is the sequence number (the ID) and the hash of the last
// audit record.
type chainHead struct {
	Seq  int64
	Hash string
}

// auditChainColumns are the columns appendAuditRows inserts: the record's
// own and the chain's.
var auditChainColumns = append(append([]string{"id"}, auditRecordColumns...),
	"context_hash", "latency_us", "prev_hash", "hash")

// appendAuditRows links rows to the end of the audit chain and inserts
// them, inside tx. It locks the chain head, gives the rows the next IDs in
// order, sets each row's previous hash and hash, inserts them and moves
// the head, so the chain stays linear however many transactions or
// replicas append at once. That costs one read and one update of the head
// per call, whatever the number of rows.
//
// The head lock is held until tx ends, so a transaction should call this
// as its last write. With SQLite every write transaction already holds the
// database's write lock (BEGIN IMMEDIATE), and PostgreSQL takes a row lock
// with SELECT ... FOR UPDATE.
func appendAuditRows(tx *gorm.DB, rows []auditRecordModel) error {
	return appendAuditRowsWith(gormChainHead{tx}, gormInserter(tx), rows)
}

// chainHeadStore reads and locks the chain head, and moves it, inside the
// caller's transaction.
type chainHeadStore interface {
	lock() (chainHead, error)
	move(head chainHead) error
}

// gormChainHead is the chainHeadStore of a gorm transaction.
type gormChainHead struct{ tx *gorm.DB }

func (g gormChainHead) lock() (chainHead, error) { return lockChainHead(g.tx) }

func (g gormChainHead) move(head chainHead) error {
	return g.tx.Exec(moveChainHeadSQL, head.Seq, head.Hash).Error
}

// moveChainHeadSQL moves the head; gorm and database/sql both bind "?"
// for SQLite, and the writer's prepared statement numbers it for
// PostgreSQL.
const moveChainHeadSQL = `UPDATE "audit_chain_heads" SET "seq" = ?, "hash" = ? WHERE "id" = 1`

// appendAuditRowsWith is appendAuditRows with the rows inserted by
// insert, which must write inside tx's transaction. The group-commit
// writer passes its prepared statements.
func appendAuditRowsWith(heads chainHeadStore, insert rowInserter, rows []auditRecordModel) error {
	if len(rows) == 0 {
		return nil
	}
	head, err := heads.lock()
	if err != nil {
		return err
	}

	values := make([][]any, len(rows))
	for i := range rows {
		row := &rows[i]
		head.Seq++
		row.ID, row.PrevHash = head.Seq, head.Hash
		rec := row.toRecord()
		row.Hash = audit.ChainHash(&rec)
		head.Hash = row.Hash
		values[i] = append(append([]any{row.ID}, row.values()...),
			row.ContextHash, row.LatencyMicros, row.PrevHash, row.Hash)
	}
	if err := insert("audit_records", auditChainColumns, values); err != nil {
		return err
	}

	if err := heads.move(head); err != nil {
		return fmt.Errorf("move audit chain head: %w", err)
	}
	return nil
}

// lockChainHead reads the chain head and, on PostgreSQL, locks its row
// until tx ends. SQLite has no row locks and needs none, since a write
// transaction there excludes every other writer.
func lockChainHead(tx *gorm.DB) (chainHead, error) {
	query := `SELECT "seq", "hash" FROM "audit_chain_heads" WHERE "id" = 1`
	if tx.Dialector.Name() == DriverPostgres {
		query += " FOR UPDATE"
	}
	var heads []chainHead
	if err := tx.Raw(query).Scan(&heads).Error; err != nil {
		return chainHead{}, fmt.Errorf("lock audit chain head: %w", err)
	}
	if len(heads) != 1 {
		return chainHead{}, fmt.Errorf("lock audit chain head: the audit_chain_heads row is missing: " +
			"run sotto migrate, or restore the row from a backup if it was deleted")
	}
	return heads[0], nil
}
