package storage

import (
	"context"
	"fmt"

	"gorm.io/gorm/clause"
)

// Setting returns the value stored under key, or ErrNotFound.
func (s *Store) Setting(ctx context.Context, key string) ([]byte, error) {
	var row settingModel
	// "key" is a keyword in both dialects, so gorm quotes the column.
	err := s.db.WithContext(ctx).
		Where(clause.Eq{Column: clause.Column{Name: "key"}, Value: key}).
		Take(&row).Error
	if err != nil {
		return nil, fmt.Errorf("storage: read setting %q: %w", key, notFound(err))
	}
	return row.Value, nil
}

// SetSettingIfAbsent stores value under key unless key already has a value,
// then returns the stored value. The insert does nothing on conflict, so
// replicas racing to create the same setting all get the winner's value.
func (s *Store) SetSettingIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error) {
	if value == nil {
		value = []byte{} // the column is NOT NULL
	}
	row := settingModel{Key: key, Value: value}
	err := s.db.WithContext(ctx).
		Clauses(clause.OnConflict{DoNothing: true}).
		Create(&row).Error
	if err != nil {
		return nil, fmt.Errorf("storage: insert setting %q: %w", key, err)
	}
	return s.Setting(ctx, key)
}
