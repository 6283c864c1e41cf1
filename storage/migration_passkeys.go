package storage

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrationPasskeys adds the passkey credentials of WebAuthn step-up.
func migrationPasskeys() *gormigrate.Migration {
	// A credential is found by its ID at every assertion and listed per
	// subject, so subject is indexed. The ID is the base64url credential
	// ID, which WebAuthn Level 3, Section 5.1 bounds at 1023 bytes raw.
	type passkeyCredential struct {
		ID                string     `gorm:"primaryKey;size:1400"`
		Subject           string     `gorm:"size:255;not null;index"`
		UserHandle        []byte     `gorm:"not null"`
		PublicKey         []byte     `gorm:"not null"`
		SignCount         int64      `gorm:"not null"`
		AAGUID            string     `gorm:"column:aaguid;size:36;not null"`
		UserPresent       bool       `gorm:"not null"`
		UserVerified      bool       `gorm:"not null"`
		BackupEligible    bool       `gorm:"not null"`
		BackupState       bool       `gorm:"not null"`
		AttestationFormat string     `gorm:"size:32;not null"`
		Transports        string     `gorm:"size:255;not null"`
		Name              string     `gorm:"size:255;not null"`
		CreatedAt         time.Time  `gorm:"not null"`
		LastUsedAt        *time.Time `gorm:""`
		FlaggedAt         *time.Time `gorm:""`
		FlagReason        string     `gorm:"size:64;not null"`
	}

	return &gormigrate.Migration{
		ID: "20261204_0030_passkeys",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().CreateTable(&passkeyCredential{})
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable(&passkeyCredential{})
		},
	}
}
