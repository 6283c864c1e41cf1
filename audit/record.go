package audit

import (
	"encoding/json"
	"io"
	"time"
)

// Event names what happened.
type Event string

// Events written by the token endpoint and the revocation endpoint.
const (
	EventExchange   Event = "token_exchange"
	EventRevocation Event = "token_revocation"
	// EventRefresh is a refresh of a session (RFC 6749 §6).
	EventRefresh Event = "token_refresh"
	// EventAuthorization is a decision of the authorization endpoint:
	// a code issued, or consent refused (RFC 6749 §4.1.2).
	EventAuthorization Event = "authorization"
	// EventCodeRedemption is the exchange of an authorization code for a
	// session at the token endpoint (RFC 6749 §4.1.3).
	EventCodeRedemption Event = "authorization_code_redemption"
	// EventLogout is the end of a session at the logout endpoint.
	EventLogout Event = "logout"
	// Events of the device registry.
	EventDeviceEnrolment  Event = "device_enrolment"
	EventDeviceTrust      Event = "device_trust_change"
	EventDeviceRevocation Event = "device_revocation"
)

// Decision is the outcome of an event.
type Decision string

// Decisions.
const (
	DecisionIssued         Decision = "issued"
	DecisionRefused        Decision = "refused"
	DecisionStepUpRequired Decision = "step_up_required"
	DecisionRevoked        Decision = "revoked"
	DecisionEnrolled       Decision = "enrolled"
	DecisionChanged        Decision = "changed"
)

// Record is one audit record. Reason is a stable machine-readable code (an
// OAuth error code such as invalid_dpop_proof, or a finer code such as
// dpop_replay); Detail is a sentence for people that never contains a
// token, proof or secret.
type Record struct {
	ID            int64     `json:"id,omitempty"`
	Time          time.Time `json:"time"`
	RequestID     string    `json:"request_id"`
	Event         Event     `json:"event"`
	ClientID      string    `json:"client_id,omitempty"`
	Subject       string    `json:"subject,omitempty"`
	SubjectIssuer string    `json:"subject_issuer,omitempty"`
	DeviceJKT     string    `json:"device_jkt,omitempty"`
	// DeviceTrust is the trust level of the device key at the decision:
	// unregistered, registered, managed or revoked.
	DeviceTrust    string    `json:"device_trust,omitempty"`
	Action         string    `json:"action,omitempty"`
	Audience       string    `json:"audience,omitempty"`
	CatalogEntry   string    `json:"catalog_entry,omitempty"`
	CatalogVersion string    `json:"catalog_version,omitempty"`
	Decision       Decision  `json:"decision"`
	Reason         string    `json:"reason,omitempty"`
	Detail         string    `json:"detail,omitempty"`
	TokenID        string    `json:"token_id,omitempty"`
	TokenExpiresAt time.Time `json:"token_expires_at,omitzero"`
	// Count is the number of tokens a revocation ended.
	Count int `json:"count,omitempty"`
}

// WriteJSONLines writes records as JSON lines, one record a line.
func WriteJSONLines(w io.Writer, records []Record) error {
	enc := json.NewEncoder(w)
	for i := range records {
		if err := enc.Encode(&records[i]); err != nil {
			return err
		}
	}
	return nil
}
