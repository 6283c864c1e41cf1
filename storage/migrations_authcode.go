package storage

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrationAuthCode adds authorization codes and the pending requests of
// the browser login: pushed authorization requests, login states and
// logout states.
func migrationAuthCode() *gormigrate.Migration {
	// A code is found by the hash of the code, its key. session_id is set
	// at the first redemption, so a second one can revoke that session.
	type authorizationCode struct {
		Signature     string     `gorm:"primaryKey;size:64"`
		ClientID      string     `gorm:"size:255;not null"`
		RedirectURI   string     `gorm:"not null"`
		CodeChallenge string     `gorm:"size:128;not null"`
		DPoPJKT       string     `gorm:"column:dpop_jkt;size:255;not null"`
		Subject       string     `gorm:"size:255;not null"`
		SubjectIssuer string     `gorm:"not null"`
		Groups        []byte     `gorm:"not null"`
		ACR           string     `gorm:"column:acr;size:255;not null"`
		AMR           []byte     `gorm:"column:amr;not null"`
		AuthTime      *time.Time `gorm:"column:auth_time"`
		LoginID       string     `gorm:"size:64;not null"`
		IssuedAt      time.Time  `gorm:"not null"`
		ExpiresAt     time.Time  `gorm:"not null"`
		UsedAt        *time.Time
		SessionID     *string `gorm:"size:64"`
	}
	// A pending request is read by its key only, a few times during one
	// sign-in.
	type pendingRequest struct {
		ID        string    `gorm:"primaryKey;size:64"`
		Kind      string    `gorm:"size:32;not null"`
		ClientID  string    `gorm:"size:255;not null"`
		Data      []byte    `gorm:"not null"`
		ExpiresAt time.Time `gorm:"not null"`
	}
	return &gormigrate.Migration{
		ID: "20261204_0050_authcode",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().CreateTable(&authorizationCode{}, &pendingRequest{})
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable(&pendingRequest{}, &authorizationCode{})
		},
	}
}
