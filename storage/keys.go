package storage

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// SigningKey is one token-signing key. The caller seals the private key
// before storing it, so storage receives only ciphertext.
type SigningKey struct {
	KID           string
	Algorithm     string
	PublicJWK     []byte // JSON Web Key (RFC 7517) of the public key
	PrivateSealed []byte // ciphertext, opaque to storage
	CreatedAt     time.Time
	RetiredAt     *time.Time // nil for the current signing key
}

// SigningKeys returns every stored key, newest first.
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	var rows []signingKeyModel
	err := s.db.WithContext(ctx).
		Order("created_at DESC").
		Order("kid").
		Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("storage: list signing keys: %w", err)
	}

	keys := make([]SigningKey, len(rows))
	for i, row := range rows {
		keys[i] = row.toSigningKey()
	}
	return keys, nil
}

// AddSigningKey retires every current key at now and stores k, in one
// transaction. A zero k.CreatedAt is set to now.
func (s *Store) AddSigningKey(ctx context.Context, k SigningKey, now time.Time) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = now
	}
	row := signingKeyToModel(k)
	retiredAt := dbTime(now)

	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Model(&signingKeyModel{}).
			Where("retired_at IS NULL").
			Update("retired_at", retiredAt).Error
		if err != nil {
			return fmt.Errorf("retire current keys: %w", err)
		}
		return tx.Create(&row).Error
	})
	if err != nil {
		return fmt.Errorf("storage: add signing key %q: %w", k.KID, err)
	}
	return nil
}

// DeleteSigningKeysRetiredBefore deletes every key retired before t and
// returns how many it deleted. The current key is never deleted.
func (s *Store) DeleteSigningKeysRetiredBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.db.WithContext(ctx).
		Where("retired_at IS NOT NULL AND retired_at < ?", dbTime(t)).
		Delete(&signingKeyModel{})
	if res.Error != nil {
		return 0, fmt.Errorf("storage: delete retired signing keys: %w", res.Error)
	}
	return res.RowsAffected, nil
}
