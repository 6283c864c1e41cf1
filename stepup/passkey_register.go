package stepup

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// PasskeyInfo is a registered passkey as its owner lists it. It holds no
// key material.
type PasskeyInfo struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	AAGUID         string     `json:"aaguid,omitempty"`
	BackupEligible bool       `json:"backup_eligible"`
	CreatedAt      time.Time  `json:"created_at"`
	LastUsedAt     *time.Time `json:"last_used_at,omitempty"`
	FlaggedAt      *time.Time `json:"flagged_at,omitempty"`
}

func passkeyInfo(p *storage.Passkey) PasskeyInfo {
	return PasskeyInfo{ID: p.ID, Name: p.Name, AAGUID: p.AAGUID, BackupEligible: p.BackupEligible,
		CreatedAt: p.CreatedAt, LastUsedAt: p.LastUsedAt, FlaggedAt: p.FlaggedAt}
}

// HandlePasskeyRegistrationOptions serves POST PathPasskeyRegistrations:
// the PublicKeyCredentialCreationOptions (WebAuthn Level 3, Section 5.4)
// for the user of the bearer ID token, and a signed state that the
// registration must return. The options ask for a discoverable
// credential with user verification and exclude the user's passkeys.
func (s *Service) HandlePasskeyRegistrationOptions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := s.passkeys
	if p == nil {
		oauth.Write(w, r, s.Logger, errPasskeysDisabled)
		return
	}
	if r.Method != http.MethodPost {
		oauth.Write(w, r, s.Logger, &oauth.Error{Code: "invalid_request", Reason: "method", Status: http.StatusMethodNotAllowed,
			Description: "This endpoint accepts POST only."})
		return
	}
	subject, _, err := s.bearerIdentity(r)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	existing, err := p.Store.Passkeys(ctx, subject)
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	var exclude []protocol.CredentialDescriptor
	for _, k := range existing {
		id, err := base64.RawURLEncoding.DecodeString(k.ID)
		if err == nil {
			exclude = append(exclude, protocol.CredentialDescriptor{Type: protocol.PublicKeyCredentialType, CredentialID: id})
		}
	}

	user := passkeyUser{handle: p.userHandle(subject), name: subject}
	creation, session, err := p.relyingParty.BeginRegistration(user,
		webauthn.WithExclusions(exclude),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
	)
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(fmt.Errorf("passkey creation options: %w", err)))
		return
	}
	expires := s.Now().Add(p.RegistrationTTL).Unix()
	writeJSON(w, http.StatusOK, map[string]any{
		"publicKey": creation.Response,
		"state":     p.registrationState(subject, session.Challenge, expires),
	})
}

// registrationState signs the subject, the WebAuthn challenge and the
// expiry of a registration, so the server needs no session row.
func (p *passkeys) registrationState(subject, challenge string, expires int64) string {
	payload := strings.Join([]string{challenge, strconv.FormatInt(expires, 10)}, ".")
	return payload + "." + p.mac("registration", subject, payload)
}

// openRegistrationState returns the challenge of state if it was signed
// for subject and has not expired.
func (p *passkeys) openRegistrationState(subject, state string, now time.Time) (string, error) {
	parts := strings.Split(state, ".")
	invalid := oauth.InvalidRequest("passkey_state_invalid",
		"The state is not one this server issued to this user; request new registration options.")
	if len(parts) != 3 {
		return "", invalid
	}
	payload := parts[0] + "." + parts[1]
	if subtle.ConstantTimeCompare([]byte(parts[2]), []byte(p.mac("registration", subject, payload))) != 1 {
		return "", invalid
	}
	expires, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !now.Before(time.Unix(expires, 0)) {
		return "", oauth.New(CodeExpiredToken, "passkey_state_expired",
			"The registration options expired; request new ones and create the passkey again.")
	}
	return parts[0], nil
}

// registrationRequest is the body of POST PathPasskeys.
type registrationRequest struct {
	State      string          `json:"state"`
	Name       string          `json:"name"`
	Credential json.RawMessage `json:"credential"`
}

// HandlePasskeys serves PathPasskeys: GET lists the passkeys of the
// bearer ID token's user, POST registers one.
func (s *Service) HandlePasskeys(w http.ResponseWriter, r *http.Request) {
	if s.passkeys == nil {
		oauth.Write(w, r, s.Logger, errPasskeysDisabled)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.listPasskeys(w, r)
	case http.MethodPost:
		s.registerPasskey(w, r)
	default:
		oauth.Write(w, r, s.Logger, &oauth.Error{Code: "invalid_request", Reason: "method", Status: http.StatusMethodNotAllowed,
			Description: "This endpoint accepts GET and POST only."})
	}
}

func (s *Service) listPasskeys(w http.ResponseWriter, r *http.Request) {
	subject, _, err := s.bearerIdentity(r)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	list, err := s.passkeys.Store.Passkeys(r.Context(), subject)
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	out := make([]PasskeyInfo, 0, len(list))
	for _, k := range list {
		out = append(out, passkeyInfo(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"passkeys": out})
}

// registerPasskey verifies a registration as WebAuthn Level 3, Section
// 7.1 describes, with user verification required, and stores the
// credential record.
func (s *Service) registerPasskey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := s.passkeys
	if err := p.checkRequestOrigin(r); err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	var req registrationRequest
	if _, err := readJSON(w, r, &req); err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	subject, issuer, err := s.bearerIdentity(r)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	now := s.Now()
	challenge, err := p.openRegistrationState(subject, req.State, now)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || len(name) > 64 {
		oauth.Write(w, r, s.Logger, oauth.InvalidRequest("passkey_name_invalid",
			"The name member is missing or longer than 64 bytes: name the passkey, such as Work laptop."))
		return
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(req.Credential)
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.InvalidRequest("passkey_registration_malformed",
			"The credential member is not a PublicKeyCredential with an AuthenticatorAttestationResponse (WebAuthn Level 3, Section 5.2.1)."))
		return
	}

	handle := p.userHandle(subject)
	session := webauthn.SessionData{
		Challenge:        challenge,
		RelyingPartyID:   p.RPID,
		UserID:           handle,
		UserVerification: protocol.VerificationRequired,
		CredParams:       webauthn.CredentialParametersDefault(),
	}
	// The library checks type, challenge, origin, rpIdHash, UP, UV (the
	// session requires it), the algorithm and the attestation statement.
	cred, err := p.relyingParty.CreateCredential(passkeyUser{handle: handle, name: subject}, session, parsed)
	if err != nil {
		s.Logger.InfoContext(ctx, "passkey registration failed verification", "subject", subject, "error", libraryDetail(err))
		oauth.Write(w, r, s.Logger, deniedPasskey("passkey_registration_invalid",
			"The registration does not verify (WebAuthn Level 3, Section 7.1): create the passkey on this server's page, with user verification."))
		return
	}
	if len(cred.ID) > maxCredentialIDBytes {
		oauth.Write(w, r, s.Logger, oauth.InvalidRequest("passkey_id_too_long", fmt.Sprintf(
			"The credential ID is longer than %d bytes; use another authenticator.", maxCredentialIDBytes)))
		return
	}

	var transports []string
	for _, t := range cred.Transport {
		transports = append(transports, string(t))
	}
	record := storage.Passkey{
		ID: base64.RawURLEncoding.EncodeToString(cred.ID), Subject: subject, UserHandle: handle,
		PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount, AAGUID: formatUUID(cred.Authenticator.AAGUID),
		UserPresent: cred.Flags.UserPresent, UserVerified: cred.Flags.UserVerified,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		AttestationFormat: cred.AttestationFormat, Transports: transports, Name: name, CreatedAt: now,
	}
	rec := audit.Record{
		Time: now.UTC(), RequestID: oauth.RequestID(ctx), Event: audit.EventStepUp,
		Subject: subject, SubjectIssuer: issuer, Decision: audit.DecisionEnrolled,
		Reason: "passkey_registered", Detail: "A passkey was registered for step-up.",
		StepUpMethod: MethodPasskey, Approver: record.ID,
	}
	err = p.Store.RegisterPasskey(ctx, record, rec)
	if errors.Is(err, storage.ErrPasskeyTaken) {
		oauth.Write(w, r, s.Logger, oauth.InvalidRequest("passkey_taken",
			"This credential is already registered; it cannot be registered again (WebAuthn Level 3, Section 7.1)."))
		return
	}
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	s.Logger.InfoContext(ctx, "passkey registered", "request_id", rec.RequestID, "subject", subject, "credential", record.ID)
	stored := record
	writeJSON(w, http.StatusCreated, passkeyInfo(&stored))
}

// HandlePasskeyRemove serves DELETE PathPasskeys/{id}: the bearer ID
// token's user removes one of their passkeys.
func (s *Service) HandlePasskeyRemove(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	p := s.passkeys
	if p == nil {
		oauth.Write(w, r, s.Logger, errPasskeysDisabled)
		return
	}
	if r.Method != http.MethodDelete {
		oauth.Write(w, r, s.Logger, &oauth.Error{Code: "invalid_request", Reason: "method", Status: http.StatusMethodNotAllowed,
			Description: "This endpoint accepts DELETE only."})
		return
	}
	subject, issuer, err := s.bearerIdentity(r)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	errNotFound := &oauth.Error{Code: "invalid_request", Reason: "passkey_not_found", Status: http.StatusNotFound,
		Description: "The user has no passkey with this ID; list the passkeys to find it."}
	if len(id) > 255 {
		oauth.Write(w, r, s.Logger, errNotFound)
		return
	}
	now := s.Now()
	rec := audit.Record{
		Time: now.UTC(), RequestID: oauth.RequestID(ctx), Event: audit.EventStepUp,
		Subject: subject, SubjectIssuer: issuer, Decision: audit.DecisionRevoked,
		Reason: "passkey_removed", Detail: "The user removed a passkey.",
		StepUpMethod: MethodPasskey, Approver: id,
	}
	err = p.Store.RemovePasskey(ctx, subject, id, rec)
	if errors.Is(err, storage.ErrNotFound) {
		oauth.Write(w, r, s.Logger, errNotFound)
		return
	}
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	s.Logger.InfoContext(ctx, "passkey removed", "request_id", rec.RequestID, "subject", subject, "credential", id)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
