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
	EventExchange      Event = "token_exchange"
	EventRevocation    Event = "token_revocation"
	EventIntrospection Event = "token_introspection"
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
	// EventStepUp is a step-up event outside the token endpoint: a
	// challenge delivered, approved, denied or refused, an approver
	// enrolled, a rate limit alert.
	EventStepUp Event = "step_up"
	// EventAdmin is a call of the admin API or console, and EventAdminToken
	// the issue of an admin access token by the client_credentials grant.
	EventAdmin      Event = "admin"
	EventAdminToken Event = "admin_token"
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
	DecisionDelivered      Decision = "delivered"
	DecisionApproved       Decision = "approved"
	DecisionDenied         Decision = "denied"
	// DecisionAlert marks an event security should look at, such as a
	// user past the push rate limit.
	DecisionAlert Decision = "alert"
	// Decisions of an introspection: whether the token was shown as active.
	DecisionActive   Decision = "active"
	DecisionInactive Decision = "inactive"
)

// Events lists every event, in the order the documentation shows them.
var Events = []Event{
	EventExchange, EventRevocation, EventIntrospection,
	EventDeviceEnrolment, EventDeviceTrust, EventDeviceRevocation,
}

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
	DeviceTrust    string `json:"device_trust,omitempty"`
	Action         string `json:"action,omitempty"`
	Audience       string `json:"audience,omitempty"`
	CatalogEntry   string `json:"catalog_entry,omitempty"`
	CatalogVersion string `json:"catalog_version,omitempty"`
	// CatalogNumber is the number of the stored catalog version the
	// decision was made under; 0 before the catalog is in the database.
	CatalogNumber  int64     `json:"catalog_number,omitempty"`
	Decision       Decision  `json:"decision"`
	Reason         string    `json:"reason,omitempty"`
	Detail         string    `json:"detail,omitempty"`
	TokenID        string    `json:"token_id,omitempty"`
	TokenExpiresAt time.Time `json:"token_expires_at,omitzero"`
	// Count is the number of tokens a revocation ended.
	Count int `json:"count,omitempty"`
	// AuthorizationDetails is the canonical JSON of the accepted RFC 9396
	// details, and DetailsHash its base64url SHA-256. The catalog
	// declares every member, so they hold no secret.
	AuthorizationDetails string `json:"authorization_details,omitempty"`
	DetailsHash          string `json:"details_hash,omitempty"`
	// StepUpMethod is push or passkey for a decision made after step-up.
	StepUpMethod string `json:"step_up_method,omitempty"`
	// Approver is the thumbprint of the approver device's key or the
	// passkey credential ID that completed the step-up.
	Approver string `json:"approver,omitempty"`
	// ContextHash is the hex SHA-256 of the context the assistant sent
	// with the request (the sotto_context parameter), never the context.
	ContextHash string `json:"context_hash,omitempty"`
	// LatencyMicros is the time from the request's arrival to its
	// decision, in microseconds.
	LatencyMicros int64 `json:"latency_us,omitempty"`

	// PrevHash is the Hash of the record written before this one, empty
	// for the first record. Hash is the hex SHA-256 of the record's
	// canonical encoding (see Canonical). The store sets both.
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
	// Operation names an admin call, such as catalog.update; Target is
	// what it changed (a scope, a client_id). Before and After are the
	// JSON of the target around the change, without secrets.
	Operation string `json:"operation,omitempty"`
	Target    string `json:"target,omitempty"`
	Before    string `json:"before,omitempty"`
	After     string `json:"after,omitempty"`
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
