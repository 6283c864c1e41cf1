package storage

import (
	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrationApproverActivation adds approver_devices.activated_at. An
// approver device enrolled with the user's ID token alone waits for an
// administrator, since an assistant holds that token too; devices
// enrolled before this migration count as activated at enrolment.
func migrationApproverActivation() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "20261204_0060_approver_activation",
		Migrate: func(tx *gorm.DB) error {
			columnType := "TIMESTAMPTZ"
			if tx.Dialector.Name() != DriverPostgres {
				columnType = "DATETIME"
			}
			if err := tx.Exec(`ALTER TABLE approver_devices ADD COLUMN activated_at ` + columnType).Error; err != nil {
				return err
			}
			return tx.Exec(`UPDATE approver_devices SET activated_at = created_at`).Error
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropColumn("approver_devices", "activated_at")
		},
	}
}
