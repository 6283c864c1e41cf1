package storage

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrationStepUp adds the step-up tables and the audit columns that name
// the authorization details and the step-up of a decision.
func migrationStepUp() *gormigrate.Migration {
	// Challenges are read by id and counted per subject over a recent
	// window (push rate limits), so (subject, created_at) is indexed.
	type stepUpChallenge struct {
		ID            string     `gorm:"primaryKey;size:64"`
		RequestID     string     `gorm:"size:255;not null"`
		Subject       string     `gorm:"size:255;not null;index:idx_step_up_subject_created,priority:1"`
		SubjectIssuer string     `gorm:"not null"`
		ClientID      string     `gorm:"size:255;not null"`
		DeviceJKT     string     `gorm:"size:255;not null"`
		Action        string     `gorm:"size:255;not null"`
		Description   string     `gorm:"not null"`
		Audience      string     `gorm:"not null"`
		DetailsHash   string     `gorm:"size:64;not null"`
		DetailsJSON   []byte     `gorm:"column:details_json"`
		Methods       string     `gorm:"size:64;not null"`
		SpokenNumber  int        `gorm:"not null"`
		Numbers       string     `gorm:"size:64;not null"`
		Interval      int        `gorm:"not null"`
		Status        string     `gorm:"size:16;not null"`
		Method        string     `gorm:"size:16;not null"`
		Approver      string     `gorm:"size:255;not null"`
		CreatedAt     time.Time  `gorm:"not null;index:idx_step_up_subject_created,priority:2"`
		ExpiresAt     time.Time  `gorm:"not null"`
		DecidedAt     *time.Time `gorm:""`
		LastPolledAt  *time.Time `gorm:""`
		DeliveredAt   *time.Time `gorm:""`
		UsedAt        *time.Time `gorm:""`
		TokenID       string     `gorm:"size:64;not null"`
	}
	type approverDevice struct {
		JKT       string    `gorm:"column:jkt;primaryKey;size:64"`
		Subject   string    `gorm:"size:255;not null;index"`
		PublicJWK []byte    `gorm:"not null"`
		Name      string    `gorm:"size:255;not null"`
		CreatedAt time.Time `gorm:"not null"`
	}
	auditColumns := []string{
		`ALTER TABLE audit_records ADD COLUMN authorization_details TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE audit_records ADD COLUMN details_hash VARCHAR(64) NOT NULL DEFAULT ''`,
		`ALTER TABLE audit_records ADD COLUMN step_up_method VARCHAR(16) NOT NULL DEFAULT ''`,
		`ALTER TABLE audit_records ADD COLUMN approver VARCHAR(255) NOT NULL DEFAULT ''`,
	}

	return &gormigrate.Migration{
		ID: "20261204_0003_step_up",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().CreateTable(&stepUpChallenge{}, &approverDevice{}); err != nil {
				return err
			}
			for _, stmt := range auditColumns {
				if err := tx.Exec(stmt).Error; err != nil {
					return err
				}
			}
			return nil
		},
		Rollback: func(tx *gorm.DB) error {
			for _, col := range []string{"authorization_details", "details_hash", "step_up_method", "approver"} {
				if err := tx.Migrator().DropColumn("audit_records", col); err != nil {
					return err
				}
			}
			return tx.Migrator().DropTable(&approverDevice{}, &stepUpChallenge{})
		},
	}
}
