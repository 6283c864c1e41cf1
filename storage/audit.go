package storage

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/sotto-auth/sotto/audit"
)

// defaultAuditLimit is the number of records AuditRecords returns when
// AuditFilter.Limit is 0.
const defaultAuditLimit = 1000

// AuditFilter selects audit records. Empty string fields match every record.
type AuditFilter struct {
	AfterID   int64  // only records with a greater ID
	Limit     int    // maximum number of records; 0 means 1000
	TokenID   string // only records with this token ID
	RequestID string // only records with this request ID
	ClientID  string // only records of this client
	Subject   string // only records of this subject
	Action    string // only records of this action
	Event     string // only records of this event
	DeviceJKT string // only records of this device key thumbprint
	// Since and Until, when not zero, keep records written at or after
	// Since and at or before Until; the time column is indexed.
	Since, Until time.Time
	// Newest returns the last Limit matching records, newest first, and
	// AfterID then works as "before this ID" when it is above 0.
	Newest bool
}

// AppendAudit links rec to the end of the audit chain under the next ID.
// rec.ID and the chain hashes are ignored.
func (s *Store) AppendAudit(ctx context.Context, rec audit.Record) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)})
	})
	if err != nil {
		return fmt.Errorf("storage: append audit record: %w", err)
	}
	return nil
}

// AuditRecords returns the records f selects in ascending ID order, with
// Record.ID set. To page through the trail, pass the last ID returned as the
// next f.AfterID.
func (s *Store) AuditRecords(ctx context.Context, f AuditFilter) ([]audit.Record, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("storage: invalid audit limit %d: use 0 for the default or a positive number", f.Limit)
	}
	limit := f.Limit
	if limit == 0 {
		limit = defaultAuditLimit
	}

	q := s.db.WithContext(ctx)
	order := "id"
	switch {
	case f.Newest && f.AfterID > 0:
		q, order = q.Where("id < ?", f.AfterID), "id DESC"
	case f.Newest:
		order = "id DESC"
	default:
		q = q.Where("id > ?", f.AfterID)
	}
	for column, value := range map[string]string{
		"token_id": f.TokenID, "request_id": f.RequestID, "client_id": f.ClientID,
		"subject": f.Subject, "action": f.Action, "event": f.Event,
	} {
		if value != "" {
			q = q.Where(column+" = ?", value)
		}
	}
	if !f.Since.IsZero() {
		q = q.Where("time >= ?", dbTime(f.Since))
	}
	if !f.Until.IsZero() {
		q = q.Where("time <= ?", dbTime(f.Until))
	}
	if f.DeviceJKT != "" {
		q = q.Where("device_jkt = ?", f.DeviceJKT)
	}

	var rows []auditRecordModel
	if err := q.Order(order).Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("storage: list audit records: %w", err)
	}

	records := make([]audit.Record, len(rows))
	for i, row := range rows {
		records[i] = row.toRecord()
	}
	return records, nil
}
