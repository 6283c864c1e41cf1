package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// View selects what an export shows of each record, by the role that
// reads it.
type View string

// Views.
const (
	// ViewSecurity shows every field, including the chain hashes, so an
	// export can be verified outside the server.
	ViewSecurity View = "security"
	// ViewOperations shows what operating the service needs (time, event,
	// client, action, decision, reason, latency) and no subject, device
	// key, token ID or free-text detail.
	ViewOperations View = "operations"
	// ViewCompliance shows every field, with the subject and the device
	// key replaced by keyed pseudonyms, so the records of one person link
	// up without naming them.
	ViewCompliance View = "compliance"
)

// ParseView returns the view named s.
func ParseView(s string) (View, error) {
	switch v := View(s); v {
	case ViewSecurity, ViewOperations, ViewCompliance:
		return v, nil
	}
	return "", fmt.Errorf("unknown view %q: use security, operations or compliance", s)
}

// OperationsRecord is a record in the operations view.
type OperationsRecord struct {
	ID             int64     `json:"id"`
	Time           time.Time `json:"time"`
	RequestID      string    `json:"request_id"`
	Event          Event     `json:"event"`
	ClientID       string    `json:"client_id,omitempty"`
	Action         string    `json:"action,omitempty"`
	Audience       string    `json:"audience,omitempty"`
	CatalogEntry   string    `json:"catalog_entry,omitempty"`
	CatalogVersion string    `json:"catalog_version,omitempty"`
	DeviceTrust    string    `json:"device_trust,omitempty"`
	Decision       Decision  `json:"decision"`
	Reason         string    `json:"reason,omitempty"`
	LatencyMicros  int64     `json:"latency_us,omitempty"`
	Count          int       `json:"count,omitempty"`
}

// Pseudonymizer replaces identifiers with HMAC-SHA256 pseudonyms under a
// secret key: the same identifier always gets the same pseudonym, and
// without the key a pseudonym cannot be traced back or recomputed from a
// guessed identifier.
type Pseudonymizer struct {
	key []byte
}

// NewPseudonymizer returns a Pseudonymizer keyed with key, which must be
// at least 16 bytes.
func NewPseudonymizer(key []byte) (*Pseudonymizer, error) {
	if len(key) < 16 {
		return nil, fmt.Errorf("pseudonym key is %d bytes, want at least 16", len(key))
	}
	return &Pseudonymizer{key: key}, nil
}

// Pseudonym returns "p:" and the first 32 hex digits (128 bits) of the
// HMAC-SHA256 of kind, a zero byte and value, or "" for an empty value.
// The kind keeps a subject and a device key that happen to be equal from
// getting the same pseudonym.
func (p *Pseudonymizer) Pseudonym(kind, value string) string {
	if value == "" {
		return ""
	}
	mac := hmac.New(sha256.New, p.key)
	mac.Write([]byte(kind))
	mac.Write([]byte{0})
	mac.Write([]byte(value))
	return "p:" + hex.EncodeToString(mac.Sum(nil))[:32]
}

// Apply returns r as view v shows it, ready to encode as JSON. The
// compliance view needs p, and the others ignore it.
func (v View) Apply(r Record, p *Pseudonymizer) any {
	switch v {
	case ViewOperations:
		return OperationsRecord{
			ID: r.ID, Time: r.Time, RequestID: r.RequestID, Event: r.Event, ClientID: r.ClientID,
			Action: r.Action, Audience: r.Audience, CatalogEntry: r.CatalogEntry,
			CatalogVersion: r.CatalogVersion, DeviceTrust: r.DeviceTrust, Decision: r.Decision,
			Reason: r.Reason, LatencyMicros: r.LatencyMicros, Count: r.Count,
		}
	case ViewCompliance:
		r.Subject = p.Pseudonym("subject", r.Subject)
		r.DeviceJKT = p.Pseudonym("device_jkt", r.DeviceJKT)
		// The chain hashes would let a reader confirm a guessed subject
		// by recomputing a record's hash, so they stay out.
		r.PrevHash, r.Hash = "", ""
		return r
	}
	return r
}
