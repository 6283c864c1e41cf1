package storage

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrationAdmin adds the catalog versions, the clients managed through
// the admin API, the revision counters replicas poll, and the audit
// columns of admin calls.
func migrationAdmin() *gormigrate.Migration {
	// A catalog version is written once and never changed. Actions is the
	// whole catalog as JSON, so any version can be made live again.
	type catalogVersion struct {
		Number    int64     `gorm:"primaryKey;autoIncrement:false"`
		CreatedAt time.Time `gorm:"not null"`
		ClientID  string    `gorm:"size:255;not null"`
		Comment   string    `gorm:"not null"`
		Actions   []byte    `gorm:"not null"`
		Diff      []byte    `gorm:"not null"`
	}
	type adminClient struct {
		ClientID   string    `gorm:"primaryKey;size:255"`
		Settings   []byte    `gorm:"not null"`
		SecretHash []byte    `gorm:"not null"`
		Revision   int64     `gorm:"not null"`
		CreatedAt  time.Time `gorm:"not null"`
		UpdatedAt  time.Time `gorm:"not null"`
		DisabledAt *time.Time
	}
	// A revision is a counter that every change of its subject increments
	// in the change's transaction. Replicas poll the two rows to notice a
	// change, and the catalog write compares and increments its row in one
	// UPDATE, which is the version precondition.
	type revision struct {
		Name  string `gorm:"primaryKey;size:64"`
		Value int64  `gorm:"not null"`
	}
	type auditRecord struct {
		CatalogNumber int64  `gorm:"not null;default:0"`
		Operation     string `gorm:"size:64;not null;default:''"`
		Target        string `gorm:"size:255;not null;default:''"`
		Before        string `gorm:"column:value_before;not null;default:''"`
		After         string `gorm:"column:value_after;not null;default:''"`
	}
	columns := []string{"CatalogNumber", "Operation", "Target", "Before", "After"}

	return &gormigrate.Migration{
		ID: "20261204_0040_admin",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().CreateTable(&catalogVersion{}, &adminClient{}, &revision{}); err != nil {
				return err
			}
			if err := tx.Create(&[]revision{{Name: revisionCatalog}, {Name: revisionClients}}).Error; err != nil {
				return err
			}
			for _, c := range columns {
				if err := tx.Migrator().AddColumn(&auditRecord{}, c); err != nil {
					return err
				}
			}
			return nil
		},
		Rollback: func(tx *gorm.DB) error {
			for _, c := range columns {
				if err := tx.Migrator().DropColumn(&auditRecord{}, c); err != nil {
					return err
				}
			}
			return tx.Migrator().DropTable(&revision{}, &adminClient{}, &catalogVersion{})
		},
	}
}
