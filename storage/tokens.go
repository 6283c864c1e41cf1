package storage

import (
	"context"
	"crypto/subtle"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/sotto-auth/sotto/audit"
)

// AccessToken is the stored record of an issued access token. It never
// contains the token itself.
type AccessToken struct {
	TokenID   string // jti claim, a UUIDv7; primary key
	Signature string // hex SHA-256 of the whole JWT
	RequestID string // grant family ID (fosite's request ID)
	ClientID  string
	Subject   string
	Scope     string
	Audience  string
	DeviceJKT string // JWK thumbprint (RFC 7638) the token is bound to
	Parent    string // ID of the subject token or session it came from
	IssuedAt  time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
	Session   []byte // JSON, opaque to storage
	// SessionID is the session the token belongs to or was exchanged
	// from, or "" for a token exchanged from a corporate ID token.
	SessionID string
}

// AccessToken returns the token whose jti is tokenID and whose JWT hashes
// to signature, or ErrNotFound. Looking up by the jti keeps the table
// keyed by a value that grows with time, and the signature check, in
// constant time, makes sure the caller holds the token itself rather than
// a forgery that copies its jti.
func (s *Store) AccessToken(ctx context.Context, tokenID, signature string) (*AccessToken, error) {
	tok, err := s.AccessTokenByID(ctx, tokenID)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(tok.Signature), []byte(signature)) != 1 {
		return nil, fmt.Errorf("storage: read access token %q: %w", tokenID, ErrNotFound)
	}
	return tok, nil
}

// AccessTokenByID returns the token whose jti is tokenID, or ErrNotFound.
func (s *Store) AccessTokenByID(ctx context.Context, tokenID string) (*AccessToken, error) {
	var row accessTokenModel
	err := s.db.WithContext(ctx).Where("token_id = ?", tokenID).Take(&row).Error
	if err != nil {
		return nil, fmt.Errorf("storage: read access token %q: %w", tokenID, notFound(err))
	}
	return row.toAccessToken(), nil
}

// RevokeAccessTokens marks every unrevoked, unexpired token of the grant
// family requestID revoked at at, and appends rec with rec.Count set to the number
// of tokens it revoked, in one transaction. It returns that number, which is
// 0 when the family has no unrevoked token left.
func (s *Store) RevokeAccessTokens(ctx context.Context, requestID string, at time.Time, rec audit.Record) (int64, error) {
	var count int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&accessTokenModel{}).
			Where("expires_at > ? AND request_id = ? AND revoked_at IS NULL", dbTime(at), requestID).
			Update("revoked_at", dbTime(at))
		if res.Error != nil {
			return fmt.Errorf("update tokens: %w", res.Error)
		}
		count = res.RowsAffected

		rec.Count = int(count)
		if err := appendAuditRows(tx, []auditRecordModel{auditRecordToModel(rec)}); err != nil {
			return fmt.Errorf("append audit record: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: revoke access tokens of request %q: %w", requestID, err)
	}
	return count, nil
}
