package stepup

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// Passkey endpoint paths, relative to the issuer's path. The ceremony
// page is PathPasskeyPage, and its URL fragment carries the challenge ID,
// so the ID reaches neither server logs nor Referer headers.
const (
	PathPasskeys             = "/stepup/passkeys"
	PathPasskeyRegistrations = "/stepup/passkeys/registrations"
	PathPasskeyChallenges    = "/stepup/passkey/challenges"
	PathPasskeyStatic        = "/stepup/static"
)

// CSRFHeader carries the per-challenge token that an assertion must
// present. A custom header also makes a cross-origin POST need a CORS
// preflight, which the server never grants.
const CSRFHeader = "X-Sotto-CSRF"

// macKeySetting names the settings row of the key that signs
// registration states and CSRF tokens, shared by every replica.
const macKeySetting = "step_up.passkey_mac_key"

// maxCredentialIDBytes bounds a registered credential ID. WebAuthn Level
// 3, Section 5.1 allows up to 1023 bytes, but the audit column that names
// the approving credential holds 255 characters of base64url.
const maxCredentialIDBytes = 128

// PasskeyStore is the storage the passkey ceremonies need.
type PasskeyStore interface {
	SetSettingIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
	RegisterPasskey(ctx context.Context, p storage.Passkey, rec audit.Record) error
	Passkey(ctx context.Context, id string) (*storage.Passkey, error)
	Passkeys(ctx context.Context, subject string) ([]*storage.Passkey, error)
	RemovePasskey(ctx context.Context, subject, id string, rec audit.Record) error
	FlagPasskey(ctx context.Context, id, reason string, at time.Time, rec audit.Record) error
	ApproveWithPasskey(ctx context.Context, u storage.PasskeyUse, rec audit.Record) (bool, error)
}

// PasskeyOptions configure the WebAuthn relying party.
type PasskeyOptions struct {
	Store PasskeyStore
	// RPID is the relying party ID (WebAuthn Level 3, Section 4, RP ID),
	// the origins' host or a registrable suffix of it. IP addresses are
	// not valid RP IDs, so local development uses localhost.
	RPID          string
	RPDisplayName string
	// Origins are the exact origins accepted in clientDataJSON (WebAuthn
	// Level 3, Section 13.4.9).
	Origins []string
	// RegistrationTTL is how long a registration ceremony may take. Zero
	// means 5m.
	RegistrationTTL time.Duration
}

// passkeys is the passkey half of a Service, set by EnablePasskeys.
type passkeys struct {
	PasskeyOptions
	relyingParty *webauthn.WebAuthn
	macKey       []byte
}

// EnablePasskeys turns on registration and assertion of passkeys. It
// loads or creates the MAC key in the store.
func (s *Service) EnablePasskeys(ctx context.Context, o PasskeyOptions) error {
	if o.RegistrationTTL <= 0 {
		o.RegistrationTTL = 5 * time.Minute
	}
	if o.RPDisplayName == "" {
		o.RPDisplayName = "Sotto"
	}

	rp, err := webauthn.New(&webauthn.Config{
		RPID:          o.RPID,
		RPDisplayName: o.RPDisplayName,
		RPOrigins:     o.Origins,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementRequired,
			UserVerification: protocol.VerificationRequired,
		},
		AttestationPreference: protocol.PreferNoAttestation,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: s.ChallengeTTL, TimeoutUVD: s.ChallengeTTL},
			Registration: webauthn.TimeoutConfig{Timeout: o.RegistrationTTL, TimeoutUVD: o.RegistrationTTL},
		},
	})
	if err != nil {
		return fmt.Errorf("stepup: webauthn relying party: %w", err)
	}

	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return fmt.Errorf("stepup: passkey MAC key: %w", err)
	}
	// NOTE: the key is stored unsealed in the settings table. It only
	// signs registration states and CSRF tokens, which also need the
	// user's ID token or authenticator to be of use.
	key, err := o.Store.SetSettingIfAbsent(ctx, macKeySetting, fresh)
	if err != nil {
		return fmt.Errorf("stepup: passkey MAC key: %w", err)
	}
	if len(key) != 32 {
		return fmt.Errorf("stepup: passkey MAC key in settings has %d bytes, want 32", len(key))
	}

	s.passkeys = &passkeys{PasskeyOptions: o, relyingParty: rp, macKey: key}
	return nil
}

// assertionChallenge returns the WebAuthn challenge of step-up challenge
// c: SHA-256 over a label, the challenge ID and every binding field. The
// challenge ID carries 256 random bits, so the result is as unpredictable
// as WebAuthn Level 3, Section 13.4.3 asks, and an assertion signed for
// one challenge never verifies for another.
func assertionChallenge(c *storage.StepUpChallenge) []byte {
	h := sha256.New()
	h.Write([]byte("sotto passkey step-up v1"))
	for _, f := range []string{c.ID, c.Subject, c.ClientID, c.DeviceJKT, c.Action, c.Audience, c.DetailsHash} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// mac returns the base64url HMAC-SHA256 of the labelled parts.
func (p *passkeys) mac(label string, parts ...string) string {
	m := hmac.New(sha256.New, p.macKey)
	m.Write([]byte(label))
	for _, part := range parts {
		m.Write([]byte{0})
		m.Write([]byte(part))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfToken returns the token the passkey page sends with the assertion
// for challenge id.
func (p *passkeys) csrfToken(id string) string { return p.mac("csrf", id) }

// userHandle returns the WebAuthn user handle of subject (WebAuthn Level
// 3, Section 14.6.1): an HMAC of the subject, so the handle stored on an
// authenticator names no one without the server's key.
func (p *passkeys) userHandle(subject string) []byte {
	m := hmac.New(sha256.New, p.macKey)
	m.Write([]byte("user handle"))
	m.Write([]byte{0})
	m.Write([]byte(subject))
	return m.Sum(nil)
}

// passkeyUser adapts a subject and its credentials to webauthn.User.
type passkeyUser struct {
	handle      []byte
	name        string
	credentials []webauthn.Credential
}

func (u passkeyUser) WebAuthnID() []byte                         { return u.handle }
func (u passkeyUser) WebAuthnName() string                       { return u.name }
func (u passkeyUser) WebAuthnDisplayName() string                { return u.name }
func (u passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.credentials }

// libraryCredential converts a stored passkey to the library's record.
func libraryCredential(p *storage.Passkey) (webauthn.Credential, error) {
	id, err := base64.RawURLEncoding.DecodeString(p.ID)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("stored credential ID: %w", err)
	}
	var transports []protocol.AuthenticatorTransport
	for _, t := range p.Transports {
		transports = append(transports, protocol.AuthenticatorTransport(t))
	}
	var aaguid []byte
	if p.AAGUID != "" {
		if aaguid, err = parseUUID(p.AAGUID); err != nil {
			return webauthn.Credential{}, err
		}
	}
	return webauthn.Credential{
		ID:                id,
		PublicKey:         p.PublicKey,
		AttestationFormat: p.AttestationFormat,
		Transport:         transports,
		Flags: webauthn.CredentialFlags{
			UserPresent: p.UserPresent, UserVerified: p.UserVerified,
			BackupEligible: p.BackupEligible, BackupState: p.BackupState,
		},
		Authenticator: webauthn.Authenticator{AAGUID: aaguid, SignCount: p.SignCount},
	}, nil
}

func parseUUID(s string) ([]byte, error) {
	hex := strings.ReplaceAll(s, "-", "")
	if len(hex) != 32 {
		return nil, fmt.Errorf("stored AAGUID %q is not a UUID", s)
	}
	out := make([]byte, 16)
	for i := range out {
		var b byte
		if _, err := fmt.Sscanf(hex[2*i:2*i+2], "%02x", &b); err != nil {
			return nil, fmt.Errorf("stored AAGUID %q is not a UUID", s)
		}
		out[i] = b
	}
	return out, nil
}

func formatUUID(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// passkeyAMR returns the RFC 8176 amr values of an assertion by p with
// user verification: a proof of possession of a hardware key (hwk), or
// of a software key (swk) for a backup-eligible, synced passkey (WebAuthn
// Level 3, Section 6.1.3); user presence (user); and, because user
// verification adds a PIN or biometric to the key, mfa.
func passkeyAMR(p *storage.Passkey) []string {
	key := "hwk"
	if p != nil && p.BackupEligible {
		key = "swk"
	}
	return []string{key, "mfa", "user"}
}

// bearerIdentity authenticates a passkey management request by the
// corporate ID token in its Authorization header (RFC 6750, Section 2.1).
func (s *Service) bearerIdentity(r *http.Request) (subject, issuer string, err error) {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return "", "", &oauth.Error{Code: "invalid_token", Reason: "passkey_identity_missing", Status: http.StatusUnauthorized,
			Header:      http.Header{"WWW-Authenticate": {`Bearer realm="sotto"`}},
			Description: "Send the corporate ID token of a trusted issuer as Authorization: Bearer (RFC 6750, Section 2.1)."}
	}
	subject, issuer, err = s.Identities.VerifyIdentity(r.Context(), strings.TrimSpace(token))
	if err != nil {
		return "", "", &oauth.Error{Code: "invalid_token", Reason: "passkey_identity_invalid", Status: http.StatusUnauthorized,
			Header:      http.Header{"WWW-Authenticate": {`Bearer realm="sotto", error="invalid_token"`}},
			Description: "The ID token was rejected: send a valid, unexpired ID token of a trusted corporate issuer."}
	}
	return subject, issuer, nil
}

// errPasskeysDisabled is sent when EnablePasskeys was not called.
var errPasskeysDisabled = &oauth.Error{Code: "invalid_request", Reason: "passkeys_disabled", Status: http.StatusNotFound,
	Description: "Passkeys are not enabled on this server; use another step-up method."}

// readJSON reads a JSON body of at most maxFormBytes into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) ([]byte, error) {
	if r.Method != http.MethodPost {
		return nil, &oauth.Error{Code: "invalid_request", Reason: "method", Status: http.StatusMethodNotAllowed,
			Description: "This endpoint accepts POST only."}
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return nil, oauth.InvalidRequest("content_type", "Send the body as application/json.")
	}
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return nil, oauth.InvalidRequest("json_malformed", "The body is not a valid JSON object of the documented members.")
		}
	}
	return body, nil
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := readAllLimited(w, r)
	if err != nil {
		return nil, oauth.InvalidRequest("body_too_large", fmt.Sprintf("The body is larger than %d bytes.", maxFormBytes))
	}
	return body, nil
}

// checkRequestOrigin rejects a browser request whose Origin header is not one of
// the relying party's origins. Native clients send no Origin header.
func (p *passkeys) checkRequestOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	for _, o := range p.Origins {
		if strings.EqualFold(o, origin) {
			return nil
		}
	}
	return &oauth.Error{Code: CodeAccessDenied, Reason: "passkey_request_origin", Status: http.StatusForbidden,
		Description: "The request comes from a page of another origin; open the passkey page of this server."}
}

// checkCSRF compares the CSRF header of r with the token of challenge id
// in constant time.
func (p *passkeys) checkCSRF(r *http.Request, id string) error {
	got := r.Header.Get(CSRFHeader)
	want := p.csrfToken(id)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return &oauth.Error{Code: CodeAccessDenied, Reason: "passkey_csrf", Status: http.StatusForbidden,
			Description: "The " + CSRFHeader + " header is missing or wrong; send the csrf_token of the options response."}
	}
	return nil
}
