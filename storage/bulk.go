package storage

import (
	"strings"

	"gorm.io/gorm"
)

// maxChunk is the largest number of rows one bulk statement inserts.
const maxChunk = 64

// chunkSizes splits n rows into power-of-two chunks, largest first (13
// becomes 8, 4, 1). A batch then uses at most a handful of distinct
// statements, and each is parsed and prepared once per connection rather
// than once per batch.
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
// ..." for rows rows, followed by suffix.
func insertStatement(table string, columns []string, rows int, suffix string) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO "` + table + `" (`)
	for i, c := range columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + c + `"`)
	}
	b.WriteString(") VALUES ")
	placeholders := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(placeholders)
	}
	b.WriteString(suffix)
	return b.String()
}

// insertRows inserts rows, each a value per column, in power-of-two
// chunks.
func insertRows(tx *gorm.DB, table string, columns []string, rows [][]any) error {
	for _, size := range chunkSizes(len(rows)) {
		args := make([]any, 0, size*len(columns))
		for _, row := range rows[:size] {
			args = append(args, row...)
		}
		if err := tx.Exec(insertStatement(table, columns, size, ""), args...).Error; err != nil {
			return err
		}
		rows = rows[size:]
	}
	return nil
}

var accessTokenColumns = []string{
	"token_id", "signature", "request_id", "client_id", "subject", "scope", "audience",
	"device_jkt", "parent", "issued_at", "expires_at", "revoked_at", "session",
}

func (m accessTokenModel) values() []any {
	return []any{
		m.TokenID, m.Signature, m.RequestID, m.ClientID, m.Subject, m.Scope, m.Audience,
		m.DeviceJKT, m.Parent, m.IssuedAt, m.ExpiresAt, m.RevokedAt, m.Session,
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
