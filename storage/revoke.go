package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/sotto-auth/sotto/audit"
)

// TokenFilter selects live access tokens by one or more attributes. Empty
// fields match every token; at least one field must be set.
type TokenFilter struct {
	Subject   string
	Parent    string // the subject token or session the tokens came from
	DeviceJKT string
	ClientID  string
	Scope     string // the action
}

func (f TokenFilter) empty() bool {
	return f.Subject == "" && f.Parent == "" && f.DeviceJKT == "" && f.ClientID == "" && f.Scope == ""
}

// RevokeTokensWhere marks every unrevoked token that f selects and that
// has not expired at at revoked at at. It also ends the sessions f
// selects with their refresh tokens. It appends rec with rec.Count set to
// the number of tokens it ended, all in one transaction. The search runs
// within the expires_at index range of live tokens, the one index of the
// table, and filters that range by f.
func (s *Store) RevokeTokensWhere(ctx context.Context, f TokenFilter, at time.Time, rec audit.Record) (int64, error) {
	if f.empty() {
		return 0, errors.New("storage: revoke tokens: the filter selects every token; set at least one attribute")
	}
	var count int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		n, err := revokeSessionsWhere(tx, f, dbTime(at))
		if err != nil {
			return err
		}
		count = n
		q := tx.Model(&accessTokenModel{}).Where("expires_at > ? AND revoked_at IS NULL", dbTime(at))
		for column, value := range map[string]string{
			"subject": f.Subject, "parent": f.Parent, "device_jkt": f.DeviceJKT,
			"client_id": f.ClientID, "scope": f.Scope,
		} {
			if value != "" {
				q = q.Where(column+" = ?", value)
			}
		}
		res := q.Update("revoked_at", dbTime(at))
		if res.Error != nil {
			return fmt.Errorf("update tokens: %w", res.Error)
		}
		count += res.RowsAffected
		rec.Count = int(count)
		return appendAudit(tx, rec)
	})
	if err != nil {
		return 0, fmt.Errorf("storage: revoke tokens: %w", err)
	}
	return count, nil
}

// sessionScope is the scope of session access tokens, the one action
// filter that selects sessions too.
const sessionScope = "sotto:session"

// revokeSessionsWhere ends every live session whose subject, client and
// device key match f, with its refresh tokens and the access tokens of
// it or exchanged from it, and returns how many tokens it ended. A
// refresh token belongs to the session's user, client and key, so a
// revocation by those attributes must reach it, or the session would
// mint new tokens right after. A filter by parent or by an action other
// than sotto:session selects single tokens and ends no session.
func revokeSessionsWhere(tx *gorm.DB, f TokenFilter, at time.Time) (int64, error) {
	if f.Parent != "" || (f.Scope != "" && f.Scope != sessionScope) {
		return 0, nil
	}
	q := tx.Model(&sessionModel{}).Where("revoked_at IS NULL AND expires_at > ?", at)
	for column, value := range map[string]string{
		"subject": f.Subject, "client_id": f.ClientID, "device_jkt": f.DeviceJKT,
	} {
		if value != "" {
			q = q.Where(column+" = ?", value)
		}
	}
	var ids []string
	if err := q.Pluck("id", &ids).Error; err != nil {
		return 0, fmt.Errorf("read sessions: %w", err)
	}
	var count int64
	for _, id := range ids {
		n, err := revokeSession(tx, id, at)
		if err != nil {
			return 0, err
		}
		count += n
	}
	return count, nil
}
