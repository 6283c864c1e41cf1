package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrationTable is the table in which gormigrate records applied migration
// IDs.
const migrationTable = "schema_migrations"

// migrationLockKey is the PostgreSQL advisory lock that serializes Migrate
// across replicas starting at once. SQLite serializes it through the
// immediate write transaction instead.
const migrationLockKey = 0x736f74746f // "sotto"

// Migrate applies, in one transaction, every migration not yet recorded in
// the database. Running it again applies nothing.
func (s *Store) Migrate(ctx context.Context) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if s.driver == DriverPostgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", migrationLockKey).Error; err != nil {
				return fmt.Errorf("take migration lock: %w", err)
			}
		}

		// The transaction belongs to this function, so gormigrate must not
		// open its own.
		m := gormigrate.New(tx, &gormigrate.Options{
			TableName:                 migrationTable,
			IDColumnName:              "id",
			IDColumnSize:              255,
			ValidateUnknownMigrations: true,
		}, migrations())
		return m.Migrate()
	})
	if err != nil {
		return fmt.Errorf("storage: migrate %s database: %w", s.driver, err)
	}
	s.log.Info("storage: schema migrated", "driver", s.driver, "latest", migrations()[len(migrations())-1].ID)
	return nil
}

// migrations lists every schema version in order. Each migration declares
// the models it creates as frozen copies, so that editing the live models in
// models.go never changes what an old migration does. A schema change is a
// new migration appended here.
func migrations() []*gormigrate.Migration {
	return []*gormigrate.Migration{
		migrationInitial(),
		migrationDevices(),
		migrationStepUp(),
		migrationSessions(),
		migrationPasskeys(),
		migrationAdmin(),
		migrationAuthCode(),
		migrationApproverActivation(),
		migrationAuditChain(),
	}
}

func migrationInitial() *gormigrate.Migration {
	// The type names map to the table names through gorm's default naming
	// (signingKey → signing_keys).
	type signingKey struct {
		KID           string     `gorm:"column:kid;primaryKey;size:255"`
		Algorithm     string     `gorm:"size:32;not null"`
		PublicJWK     []byte     `gorm:"not null"`
		PrivateSealed []byte     `gorm:"not null"`
		CreatedAt     time.Time  `gorm:"not null;index"`
		RetiredAt     *time.Time `gorm:"index"`
	}
	type setting struct {
		Key   string `gorm:"primaryKey;size:255"`
		Value []byte `gorm:"not null"`
	}
	// Every index costs a page write per insert, and a random key dirties
	// a different page each time, so the hot tables are keyed by values
	// that grow with time: token_id is a UUIDv7, and a proof claim's id
	// starts with its expiry. The live tokens, the only ones a revocation
	// by family, subject or device has to reach, are found through the
	// expires_at range.
	type accessToken struct {
		TokenID   string    `gorm:"primaryKey;size:64"`
		Signature string    `gorm:"size:64;not null"`
		RequestID string    `gorm:"size:255;not null"`
		ClientID  string    `gorm:"size:255;not null"`
		Subject   string    `gorm:"size:255;not null"`
		Scope     string    `gorm:"not null"`
		Audience  string    `gorm:"not null"`
		DeviceJKT string    `gorm:"size:255;not null"`
		Parent    string    `gorm:"size:255;not null"`
		IssuedAt  time.Time `gorm:"not null"`
		ExpiresAt time.Time `gorm:"not null;index"`
		RevokedAt *time.Time
		Session   []byte
	}
	type proofClaim struct {
		ID        string    `gorm:"primaryKey;size:96"`
		ExpiresAt time.Time `gorm:"not null"`
	}
	type auditRecord struct {
		ID             int64     `gorm:"primaryKey;autoIncrement"`
		Time           time.Time `gorm:"not null;index"`
		RequestID      string    `gorm:"size:255;not null"`
		Event          string    `gorm:"size:64;not null"`
		ClientID       string    `gorm:"size:255;not null"`
		Subject        string    `gorm:"size:255;not null"`
		SubjectIssuer  string    `gorm:"not null"`
		DeviceJKT      string    `gorm:"size:255;not null"`
		Action         string    `gorm:"size:255;not null"`
		Audience       string    `gorm:"not null"`
		CatalogEntry   string    `gorm:"size:255;not null"`
		CatalogVersion string    `gorm:"size:255;not null"`
		Decision       string    `gorm:"size:64;not null"`
		Reason         string    `gorm:"size:255;not null"`
		Detail         string    `gorm:"not null"`
		TokenID        string    `gorm:"size:255;not null;index"`
		TokenExpiresAt *time.Time
		Count          int64 `gorm:"not null"`
	}

	return &gormigrate.Migration{
		ID: "20261204_0001_initial",
		Migrate: func(tx *gorm.DB) error {
			err := tx.Migrator().CreateTable(&signingKey{}, &setting{}, &accessToken{}, &auditRecord{})
			if err != nil {
				return err
			}
			// In SQLite a table with a text primary key is a rowid table
			// plus an index on that key. WITHOUT ROWID keeps a proof
			// claim, a short row, in its key's own b-tree, so each claim
			// writes one tree rather than two. An access token is too
			// long a row for that: a WITHOUT ROWID tree repeats whole
			// rows in its interior pages.
			claims := tx
			if tx.Dialector.Name() == DriverSQLite {
				claims = tx.Set("gorm:table_options", "WITHOUT ROWID")
			}
			return claims.Migrator().CreateTable(&proofClaim{})
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable(
				&auditRecord{}, &proofClaim{}, &accessToken{}, &setting{}, &signingKey{})
		},
	}
}
