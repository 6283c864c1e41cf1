package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/sotto-auth/sotto/audit"
)

// ErrExists is returned when a row to create already exists.
var ErrExists = errors.New("storage: already exists")

// ClientRecord is an OAuth client managed through the admin API. Settings
// is JSON that storage does not interpret; SecretHash is a bcrypt hash,
// empty for a public client.
type ClientRecord struct {
	ClientID   string
	Settings   []byte
	SecretHash []byte
	Revision   int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	DisabledAt *time.Time
}

type clientModel struct {
	ClientID   string `gorm:"primaryKey"`
	Settings   []byte
	SecretHash []byte
	Revision   int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	DisabledAt *time.Time
}

func (clientModel) TableName() string { return "admin_clients" }

func (m clientModel) toRecord() ClientRecord {
	return ClientRecord{
		ClientID: m.ClientID, Settings: m.Settings, SecretHash: m.SecretHash, Revision: m.Revision,
		CreatedAt: m.CreatedAt.UTC(), UpdatedAt: m.UpdatedAt.UTC(), DisabledAt: utcPtr(m.DisabledAt),
	}
}

// Clients returns every stored client, ordered by client_id.
func (s *Store) Clients(ctx context.Context) ([]ClientRecord, error) {
	var rows []clientModel
	if err := s.db.WithContext(ctx).Order("client_id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("storage: list clients: %w", err)
	}
	out := make([]ClientRecord, len(rows))
	for i, r := range rows {
		out[i] = r.toRecord()
	}
	return out, nil
}

// Client returns the stored client id, or ErrNotFound.
func (s *Store) Client(ctx context.Context, id string) (*ClientRecord, error) {
	var row clientModel
	if err := s.db.WithContext(ctx).Where("client_id = ?", id).Take(&row).Error; err != nil {
		return nil, fmt.Errorf("storage: read client %q: %w", id, notFound(err))
	}
	r := row.toRecord()
	return &r, nil
}

// CreateClients inserts clients and appends rec in one transaction. With
// onlyIfEmpty it inserts nothing, and returns false, when any client is
// already stored, which is how the clients file is imported once. A
// client_id already stored is ErrExists.
func (s *Store) CreateClients(ctx context.Context, clients []ClientRecord, onlyIfEmpty bool, rec audit.Record) (bool, error) {
	created := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		revision, err := nextRevision(tx, revisionClients)
		if err != nil {
			return err
		}
		if onlyIfEmpty {
			var n int64
			if err := tx.Model(&clientModel{}).Count(&n).Error; err != nil {
				return fmt.Errorf("count clients: %w", err)
			}
			if n > 0 {
				return errNothingToDo
			}
		}
		for _, c := range clients {
			row := clientRow(c, revision)
			res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row)
			if res.Error != nil {
				return fmt.Errorf("insert client %q: %w", c.ClientID, res.Error)
			}
			if res.RowsAffected == 0 {
				return fmt.Errorf("insert client %q: %w", c.ClientID, ErrExists)
			}
		}
		created = true
		return appendAudit(tx, rec)
	})
	if errors.Is(err, errNothingToDo) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: create clients: %w", err)
	}
	return created, nil
}

// UpdateClient replaces the stored client c.ClientID with c and appends
// rec in one transaction, or returns ErrNotFound.
func (s *Store) UpdateClient(ctx context.Context, c ClientRecord, rec audit.Record) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		revision, err := nextRevision(tx, revisionClients)
		if err != nil {
			return err
		}
		res := tx.Model(&clientModel{}).Where("client_id = ?", c.ClientID).Updates(map[string]any{
			"settings":    c.Settings,
			"secret_hash": nonNilBytes(c.SecretHash),
			"revision":    revision,
			"updated_at":  dbTime(c.UpdatedAt),
			"disabled_at": dbTimePtr(c.DisabledAt),
		})
		if res.Error != nil {
			return fmt.Errorf("update client: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return appendAudit(tx, rec)
	})
	if err != nil {
		return fmt.Errorf("storage: update client %q: %w", c.ClientID, err)
	}
	return nil
}

var errNothingToDo = errors.New("nothing to do")

// nextRevision increments the revision counter name and returns its new
// value. The UPDATE locks the row until the transaction ends, so writers
// of one kind are serialized on PostgreSQL as well.
func nextRevision(tx *gorm.DB, name string) (int64, error) {
	if err := tx.Model(&revisionModel{}).Where("name = ?", name).
		Update("value", gorm.Expr("value + 1")).Error; err != nil {
		return 0, fmt.Errorf("increment %s revision: %w", name, err)
	}
	var row revisionModel
	if err := tx.Where("name = ?", name).Take(&row).Error; err != nil {
		return 0, fmt.Errorf("read %s revision: %w", name, err)
	}
	return row.Value, nil
}

func clientRow(c ClientRecord, revision int64) clientModel {
	return clientModel{
		ClientID: c.ClientID, Settings: c.Settings, SecretHash: nonNilBytes(c.SecretHash), Revision: revision,
		CreatedAt: dbTime(c.CreatedAt), UpdatedAt: dbTime(c.UpdatedAt), DisabledAt: dbTimePtr(c.DisabledAt),
	}
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
