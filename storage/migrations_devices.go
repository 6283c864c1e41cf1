package storage

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrationDevices adds the device registry and the trust level of the
// device to audit records.
func migrationDevices() *gormigrate.Migration {
	// Devices are few and written rarely, so the table is keyed by the
	// thumbprint and indexed by subject for the per-user listing.
	type device struct {
		JKT        string    `gorm:"column:jkt;primaryKey;size:64"`
		Subject    string    `gorm:"size:255;not null;index"`
		Kind       string    `gorm:"size:32;not null"`
		Name       string    `gorm:"size:255;not null"`
		Trust      string    `gorm:"size:32;not null"`
		EnrolledAt time.Time `gorm:"not null"`
		LastSeenAt time.Time `gorm:"not null"`
		RevokedAt  *time.Time
	}
	// auditRecord names the existing table; only the new column is
	// declared.
	type auditRecord struct {
		DeviceTrust string `gorm:"size:32;not null;default:''"`
	}

	return &gormigrate.Migration{
		ID: "20261204_0002_devices",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().CreateTable(&device{}); err != nil {
				return err
			}
			return tx.Migrator().AddColumn(&auditRecord{}, "DeviceTrust")
		},
		Rollback: func(tx *gorm.DB) error {
			if err := tx.Migrator().DropColumn(&auditRecord{}, "DeviceTrust"); err != nil {
				return err
			}
			return tx.Migrator().DropTable(&device{})
		},
	}
}
