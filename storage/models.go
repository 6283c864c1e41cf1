package storage

import (
	"time"

	"github.com/sotto-auth/sotto/audit"
)

// The live gorm models. Migrations declare their own frozen copies, so a
// change here needs a new migration in migrations.go.

type signingKeyModel struct {
	KID           string `gorm:"column:kid;primaryKey"`
	Algorithm     string `gorm:"not null"`
	PublicJWK     []byte `gorm:"not null"`
	PrivateSealed []byte `gorm:"not null"`
	CreatedAt     time.Time
	RetiredAt     *time.Time
}

func (signingKeyModel) TableName() string { return "signing_keys" }

type settingModel struct {
	Key   string `gorm:"primaryKey"`
	Value []byte
}

func (settingModel) TableName() string { return "settings" }

type accessTokenModel struct {
	TokenID   string `gorm:"primaryKey"`
	Signature string
	RequestID string
	ClientID  string
	Subject   string
	Scope     string
	Audience  string
	DeviceJKT string
	Parent    string
	IssuedAt  time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
	Session   []byte
	SessionID *string
}

func (accessTokenModel) TableName() string { return "access_tokens" }

type proofClaimModel struct {
	ID        string `gorm:"primaryKey"`
	ExpiresAt time.Time
}

func (proofClaimModel) TableName() string { return "proof_claims" }

type auditRecordModel struct {
	ID             int64 `gorm:"primaryKey;autoIncrement"`
	Time           time.Time
	RequestID      string
	Event          string
	ClientID       string
	Subject        string
	SubjectIssuer  string
	DeviceJKT      string
	Action         string
	Audience       string
	CatalogEntry   string
	CatalogVersion string
	Decision       string
	Reason         string
	Detail         string
	TokenID        string
	TokenExpiresAt *time.Time
	Count          int64
	DeviceTrust    string

	AuthorizationDetails string
	DetailsHash          string
	StepUpMethod         string
	Approver             string
	ContextHash          string
	LatencyMicros        int64 `gorm:"column:latency_us"`
	PrevHash             string
	Hash                 string

	CatalogNumber int64
	Operation     string
	Target        string
	Before        string `gorm:"column:value_before"`
	After         string `gorm:"column:value_after"`
}

func (auditRecordModel) TableName() string { return "audit_records" }

func signingKeyToModel(k SigningKey) signingKeyModel {
	return signingKeyModel{
		KID:           k.KID,
		Algorithm:     k.Algorithm,
		PublicJWK:     k.PublicJWK,
		PrivateSealed: k.PrivateSealed,
		CreatedAt:     dbTime(k.CreatedAt),
		RetiredAt:     dbTimePtr(k.RetiredAt),
	}
}

func (m signingKeyModel) toSigningKey() SigningKey {
	return SigningKey{
		KID:           m.KID,
		Algorithm:     m.Algorithm,
		PublicJWK:     m.PublicJWK,
		PrivateSealed: m.PrivateSealed,
		CreatedAt:     m.CreatedAt.UTC(),
		RetiredAt:     utcPtr(m.RetiredAt),
	}
}

func accessTokenToModel(t AccessToken) accessTokenModel {
	return accessTokenModel{
		Signature: t.Signature,
		TokenID:   t.TokenID,
		RequestID: t.RequestID,
		ClientID:  t.ClientID,
		Subject:   t.Subject,
		Scope:     t.Scope,
		Audience:  t.Audience,
		DeviceJKT: t.DeviceJKT,
		Parent:    t.Parent,
		IssuedAt:  dbTime(t.IssuedAt),
		ExpiresAt: dbTime(t.ExpiresAt),
		RevokedAt: dbTimePtr(t.RevokedAt),
		Session:   t.Session,
		SessionID: nullString(t.SessionID),
	}
}

func (m accessTokenModel) toAccessToken() *AccessToken {
	return &AccessToken{
		Signature: m.Signature,
		TokenID:   m.TokenID,
		RequestID: m.RequestID,
		ClientID:  m.ClientID,
		Subject:   m.Subject,
		Scope:     m.Scope,
		Audience:  m.Audience,
		DeviceJKT: m.DeviceJKT,
		Parent:    m.Parent,
		IssuedAt:  m.IssuedAt.UTC(),
		ExpiresAt: m.ExpiresAt.UTC(),
		RevokedAt: utcPtr(m.RevokedAt),
		Session:   m.Session,
		SessionID: stringOf(m.SessionID),
	}
}

// auditRecordToModel leaves ID and the chain hashes empty: appendAuditRows
// sets them when it links the record to the chain.
func auditRecordToModel(r audit.Record) auditRecordModel {
	m := auditRecordModel{
		Time:           dbTime(r.Time),
		RequestID:      r.RequestID,
		Event:          string(r.Event),
		ClientID:       r.ClientID,
		Subject:        r.Subject,
		SubjectIssuer:  r.SubjectIssuer,
		DeviceJKT:      r.DeviceJKT,
		Action:         r.Action,
		Audience:       r.Audience,
		CatalogEntry:   r.CatalogEntry,
		CatalogVersion: r.CatalogVersion,
		Decision:       string(r.Decision),
		Reason:         r.Reason,
		Detail:         r.Detail,
		TokenID:        r.TokenID,
		Count:          int64(r.Count),
		DeviceTrust:    r.DeviceTrust,

		AuthorizationDetails: r.AuthorizationDetails,
		DetailsHash:          r.DetailsHash,
		StepUpMethod:         r.StepUpMethod,
		Approver:             r.Approver,
		ContextHash:          r.ContextHash,
		LatencyMicros:        r.LatencyMicros,

		CatalogNumber: r.CatalogNumber,
		Operation:     r.Operation,
		Target:        r.Target,
		Before:        r.Before,
		After:         r.After,
	}
	if !r.TokenExpiresAt.IsZero() {
		t := dbTime(r.TokenExpiresAt)
		m.TokenExpiresAt = &t
	}
	return m
}

func (m auditRecordModel) toRecord() audit.Record {
	r := audit.Record{
		ID:             m.ID,
		Time:           m.Time.UTC(),
		RequestID:      m.RequestID,
		Event:          audit.Event(m.Event),
		ClientID:       m.ClientID,
		Subject:        m.Subject,
		SubjectIssuer:  m.SubjectIssuer,
		DeviceJKT:      m.DeviceJKT,
		Action:         m.Action,
		Audience:       m.Audience,
		CatalogEntry:   m.CatalogEntry,
		CatalogVersion: m.CatalogVersion,
		Decision:       audit.Decision(m.Decision),
		Reason:         m.Reason,
		Detail:         m.Detail,
		TokenID:        m.TokenID,
		Count:          int(m.Count),
		DeviceTrust:    m.DeviceTrust,

		AuthorizationDetails: m.AuthorizationDetails,
		DetailsHash:          m.DetailsHash,
		StepUpMethod:         m.StepUpMethod,
		Approver:             m.Approver,
		ContextHash:          m.ContextHash,
		LatencyMicros:        m.LatencyMicros,
		PrevHash:             m.PrevHash,
		Hash:                 m.Hash,

		CatalogNumber: m.CatalogNumber,
		Operation:     m.Operation,
		Target:        m.Target,
		Before:        m.Before,
		After:         m.After,
	}
	if m.TokenExpiresAt != nil {
		r.TokenExpiresAt = m.TokenExpiresAt.UTC()
	}
	return r
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}
