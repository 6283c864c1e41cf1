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

// Names of the revision counters.
const (
	revisionCatalog = "catalog"
	revisionClients = "clients"
)

// ErrVersionMismatch is returned by AddCatalogVersion when the live
// catalog version is not the one the caller based its change on.
var ErrVersionMismatch = errors.New("storage: catalog version mismatch")

// CatalogVersion is one stored version of the scope catalog. Actions and
// Diff are JSON that storage does not interpret.
type CatalogVersion struct {
	Number    int64
	CreatedAt time.Time
	// ClientID is the admin client that made the change, or a name such
	// as "catalog_file" for an import.
	ClientID string
	Comment  string
	Actions  []byte
	Diff     []byte
}

type catalogVersionModel struct {
	Number    int64 `gorm:"primaryKey;autoIncrement:false"`
	CreatedAt time.Time
	ClientID  string
	Comment   string
	Actions   []byte
	Diff      []byte
}

func (catalogVersionModel) TableName() string { return "catalog_versions" }

type revisionModel struct {
	Name  string `gorm:"primaryKey"`
	Value int64
}

func (revisionModel) TableName() string { return "revisions" }

func (m catalogVersionModel) toVersion() *CatalogVersion {
	return &CatalogVersion{
		Number: m.Number, CreatedAt: m.CreatedAt.UTC(), ClientID: m.ClientID,
		Comment: m.Comment, Actions: m.Actions, Diff: m.Diff,
	}
}

// Revisions returns the current catalog version number and the clients
// revision. Replicas poll them to notice a change made elsewhere.
func (s *Store) Revisions(ctx context.Context) (catalog, clients int64, err error) {
	var rows []revisionModel
	if err := s.db.WithContext(ctx).Find(&rows).Error; err != nil {
		return 0, 0, fmt.Errorf("storage: read revisions: %w", err)
	}
	for _, r := range rows {
		switch r.Name {
		case revisionCatalog:
			catalog = r.Value
		case revisionClients:
			clients = r.Value
		}
	}
	return catalog, clients, nil
}

// AddCatalogVersion stores v as the version after expected and appends
// rec, in one transaction, and returns the new number. The revision
// counter is compared with expected and incremented in one UPDATE, so of
// two writers that based their change on the same version exactly one
// succeeds. The other gets ErrVersionMismatch and writes nothing.
func (s *Store) AddCatalogVersion(ctx context.Context, expected int64, v CatalogVersion, rec audit.Record) (int64, error) {
	number := expected + 1
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&revisionModel{}).
			Where("name = ? AND value = ?", revisionCatalog, expected).
			Update("value", number)
		if res.Error != nil {
			return fmt.Errorf("increment catalog revision: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return ErrVersionMismatch
		}
		row := catalogVersionModel{
			Number: number, CreatedAt: dbTime(v.CreatedAt), ClientID: v.ClientID,
			Comment: v.Comment, Actions: v.Actions, Diff: v.Diff,
		}
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("insert catalog version: %w", err)
		}
		rec.CatalogNumber = number
		return appendAudit(tx, rec)
	})
	if errors.Is(err, ErrVersionMismatch) {
		return 0, fmt.Errorf("storage: add catalog version after %d: %w", expected, ErrVersionMismatch)
	}
	if err != nil {
		return 0, fmt.Errorf("storage: add catalog version after %d: %w", expected, err)
	}
	return number, nil
}

// CatalogVersion returns the version number, or ErrNotFound.
func (s *Store) CatalogVersion(ctx context.Context, number int64) (*CatalogVersion, error) {
	var row catalogVersionModel
	if err := s.db.WithContext(ctx).Where("number = ?", number).Take(&row).Error; err != nil {
		return nil, fmt.Errorf("storage: read catalog version %d: %w", number, notFound(err))
	}
	return row.toVersion(), nil
}

// LatestCatalogVersion returns the newest version, or ErrNotFound when
// the catalog was never stored.
func (s *Store) LatestCatalogVersion(ctx context.Context) (*CatalogVersion, error) {
	var row catalogVersionModel
	err := s.db.WithContext(ctx).Order(clause.OrderByColumn{Column: clause.Column{Name: "number"}, Desc: true}).
		Take(&row).Error
	if err != nil {
		return nil, fmt.Errorf("storage: read latest catalog version: %w", notFound(err))
	}
	return row.toVersion(), nil
}

// CatalogVersions returns up to limit versions below before (0 for the
// newest), newest first, without their Actions.
func (s *Store) CatalogVersions(ctx context.Context, before int64, limit int) ([]CatalogVersion, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := s.db.WithContext(ctx).Omit("actions")
	if before > 0 {
		q = q.Where("number < ?", before)
	}
	var rows []catalogVersionModel
	if err := q.Order("number DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("storage: list catalog versions: %w", err)
	}
	out := make([]CatalogVersion, len(rows))
	for i, r := range rows {
		out[i] = *r.toVersion()
	}
	return out, nil
}
