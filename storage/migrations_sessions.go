package storage

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrationSessions adds sessions, their refresh tokens, and the session
// lineage of access tokens.
func migrationSessions() *gormigrate.Migration {
	// A session is read by its key on every refresh and written once per
	// refresh, so it needs no index besides the key.
	type session struct {
		ID            string     `gorm:"primaryKey;size:64"`
		ClientID      string     `gorm:"size:255;not null"`
		Subject       string     `gorm:"size:255;not null"`
		SubjectIssuer string     `gorm:"not null"`
		DeviceJKT     string     `gorm:"size:255;not null"`
		Groups        []byte     `gorm:"not null"`
		ACR           string     `gorm:"column:acr;size:255;not null"`
		AMR           []byte     `gorm:"column:amr;not null"`
		AuthTime      *time.Time `gorm:"column:auth_time"`
		Parent        string     `gorm:"size:255;not null"`
		Generation    int64      `gorm:"not null"`
		CreatedAt     time.Time  `gorm:"not null"`
		RefreshedAt   time.Time  `gorm:"not null"`
		ExpiresAt     time.Time  `gorm:"not null"`
		RevokedAt     *time.Time
	}
	// A refresh token is found by the hash of the token, its key. The
	// session_id index serves the revocation of a whole session, which
	// must reach every refresh token of it.
	type refreshToken struct {
		Signature  string    `gorm:"primaryKey;size:64"`
		SessionID  string    `gorm:"size:64;not null;index"`
		Generation int64     `gorm:"not null"`
		ClientID   string    `gorm:"size:255;not null"`
		DeviceJKT  string    `gorm:"size:255;not null"`
		IssuedAt   time.Time `gorm:"not null"`
		ExpiresAt  time.Time `gorm:"not null"`
		UsedAt     *time.Time
		RevokedAt  *time.Time
	}
	// accessToken names the existing table; only the new column is
	// declared.
	type accessToken struct {
		SessionID *string `gorm:"size:64"`
	}

	return &gormigrate.Migration{
		ID: "20261204_0010_sessions",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().CreateTable(&session{}, &refreshToken{}); err != nil {
				return err
			}
			if err := tx.Migrator().AddColumn(&accessToken{}, "SessionID"); err != nil {
				return err
			}
			// Revoking a session must reach every access token derived
			// from it at once, and the table's only other index is on
			// expires_at, which would mean a scan of every live token.
			// The index is partial: tokens exchanged from a corporate ID
			// token have a NULL session_id, so the hot exchange path pays
			// no index write for them. Both SQLite and PostgreSQL use a
			// partial index WHERE x IS NOT NULL for a query on x = ?.
			return tx.Exec(`CREATE INDEX idx_access_tokens_session_id ON access_tokens (session_id) WHERE session_id IS NOT NULL`).Error
		},
		Rollback: func(tx *gorm.DB) error {
			if err := tx.Exec(`DROP INDEX idx_access_tokens_session_id`).Error; err != nil {
				return err
			}
			if err := tx.Migrator().DropColumn(&accessToken{}, "SessionID"); err != nil {
				return err
			}
			return tx.Migrator().DropTable(&refreshToken{}, &session{})
		},
	}
}
