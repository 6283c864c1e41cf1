package stepup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// PasskeyChallenge is the view of a step-up challenge that the passkey
// page and native clients show before approval. It names the action in
// words and the request it is bound to.
type PasskeyChallenge struct {
	ChallengeID          string          `json:"challenge_id"`
	Action               string          `json:"action"`
	Description          string          `json:"description"`
	Audience             string          `json:"audience"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	ClientID             string          `json:"client_id"`
	DeviceJKT            string          `json:"device_jkt"`
	Text                 string          `json:"text"`
	ExpiresAt            string          `json:"expires_at"`
}

// HandlePasskeyOptions serves GET PathPasskeyChallenges/{id}/options: the
// PublicKeyCredentialRequestOptions of the challenge (WebAuthn Level 3,
// Section 5.5), what is being approved, and the CSRF token the assertion
// must carry.
func (s *Service) HandlePasskeyOptions(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	p := s.passkeys
	if p == nil {
		oauth.Write(w, r, s.Logger, errPasskeysDisabled)
		return
	}
	c, err := s.passkeyChallenge(ctx, id)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	now := s.Now()
	if !now.Before(c.ExpiresAt) {
		oauth.Write(w, r, s.Logger, errPasskeyExpired)
		return
	}
	if c.Status != storage.ChallengePending {
		oauth.Write(w, r, s.Logger, errPasskeyDecided)
		return
	}

	// The options list no credential IDs because passkeys are
	// discoverable (WebAuthn Level 3, Section 6.2.2), so a holder of the
	// challenge ID learns nothing about the user's passkeys (Section
	// 14.6.3).
	assertion, _, err := p.relyingParty.BeginDiscoverableLogin(
		webauthn.WithChallenge(assertionChallenge(c)),
		webauthn.WithUserVerification(protocol.VerificationRequired),
	)
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(fmt.Errorf("passkey request options: %w", err)))
		return
	}
	// The timeout is what is left of the challenge, in milliseconds.
	assertion.Response.Timeout = int(c.ExpiresAt.Sub(now).Milliseconds())
	writeJSON(w, http.StatusOK, map[string]any{
		"publicKey":     assertion.Response,
		"challenge":     s.passkeyView(c),
		"csrf_token":    p.csrfToken(c.ID),
		"assertion_url": s.BaseURL + PathPasskeyChallenges + "/" + c.ID + "/assertion",
	})
}

// HandlePasskeyAssertion serves POST PathPasskeyChallenges/{id}/assertion
// with the PublicKeyCredential as JSON (WebAuthn Level 3, Section 5.1) and
// the CSRF token in CSRFHeader. It verifies the assertion as WebAuthn
// Level 3, Section 7.2 describes and approves the challenge.
func (s *Service) HandlePasskeyAssertion(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	p := s.passkeys
	if p == nil {
		oauth.Write(w, r, s.Logger, errPasskeysDisabled)
		return
	}
	if err := p.checkRequestOrigin(r); err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	body, err := readJSON(w, r, nil)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	c, err := s.passkeyChallenge(ctx, id)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	if err := p.checkCSRF(r, c.ID); err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}

	now := s.Now()
	approver := ""
	reject := func(e *oauth.Error) {
		rec := challengeRecord(c, now, audit.DecisionRefused, e.Reason, e.Description)
		rec.StepUpMethod, rec.Approver = MethodPasskey, approver
		if err := s.Store.AppendAudit(ctx, rec); err != nil {
			s.Logger.ErrorContext(ctx, "refused passkey assertion not recorded", "request_id", c.RequestID, "error", err)
		}
		s.Logger.InfoContext(ctx, "passkey assertion refused", "request_id", c.RequestID, "reason", e.Reason, "credential", approver)
		oauth.Write(w, r, s.Logger, e)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		reject(oauth.InvalidRequest("passkey_assertion_malformed",
			"The body is not a PublicKeyCredential with an AuthenticatorAssertionResponse (WebAuthn Level 3, Section 5.2.2)."))
		return
	}
	approver = base64.RawURLEncoding.EncodeToString(parsed.RawID)
	if len(approver) > 255 {
		approver = approver[:255]
	}

	if !now.Before(c.ExpiresAt) {
		reject(errPasskeyExpired)
		return
	}
	// A decided challenge is never decided again, so an assertion is
	// used at most once. ApproveWithPasskey enforces it for concurrent
	// assertions too.
	if c.Status != storage.ChallengePending {
		reject(errPasskeyDecided)
		return
	}

	// Section 7.2, step 6: the credential record of credential.rawId,
	// owned by the user the challenge is for.
	cred, err := p.Store.Passkey(ctx, base64.RawURLEncoding.EncodeToString(parsed.RawID))
	if errors.Is(err, storage.ErrNotFound) {
		reject(deniedPasskey("passkey_unknown",
			"The passkey is not registered here, or was removed; register a passkey, then approve again."))
		return
	}
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	if cred.Subject != c.Subject {
		reject(deniedPasskey("passkey_wrong_user",
			"The passkey belongs to another user; approve with a passkey of the user who asked the assistant."))
		return
	}
	if h := parsed.Response.UserHandle; len(h) > 0 && !bytes.Equal(h, cred.UserHandle) {
		reject(deniedPasskey("passkey_user_handle",
			"The assertion's userHandle does not match the passkey's user (WebAuthn Level 3, Section 7.2, step 6)."))
		return
	}
	if cred.FlaggedAt != nil {
		reject(deniedPasskey("passkey_flagged",
			"The passkey was flagged as possibly cloned and cannot be used; remove it and register a new one."))
		return
	}

	if e := p.checkAssertion(c, parsed); e != nil {
		reject(e)
		return
	}

	// Steps 17 to 21, among them the signature over authData and the
	// hash of clientDataJSON, by the library on the record found above.
	record, err := libraryCredential(cred)
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	user := passkeyUser{handle: cred.UserHandle, name: cred.Subject, credentials: []webauthn.Credential{record}}
	session := webauthn.SessionData{
		Challenge:        base64.RawURLEncoding.EncodeToString(assertionChallenge(c)),
		RelyingPartyID:   p.RPID,
		UserID:           cred.UserHandle,
		UserVerification: protocol.VerificationRequired,
	}
	if _, err := p.relyingParty.ValidateLogin(user, session, parsed); err != nil {
		s.Logger.InfoContext(ctx, "passkey assertion failed verification", "request_id", c.RequestID, "error", libraryDetail(err))
		reject(deniedPasskey("passkey_assertion_invalid",
			"The assertion does not verify with the registered passkey (WebAuthn Level 3, Section 7.2); approve again on the page."))
		return
	}

	// Step 22: a counter that does not grow signals a cloned
	// authenticator. Sotto refuses the assertion and flags the
	// credential, after the signature proved the assertion came from the
	// credential's key.
	count := parsed.Response.AuthenticatorData.Counter
	if (count != 0 || cred.SignCount != 0) && count <= cred.SignCount {
		detail := fmt.Sprintf("The passkey's signature counter went from %d to %d, so the credential may be cloned; it is flagged.",
			cred.SignCount, count)
		rec := challengeRecord(c, now, audit.DecisionAlert, "passkey_counter_regression", detail)
		rec.StepUpMethod, rec.Approver = MethodPasskey, cred.ID
		if err := p.Store.FlagPasskey(ctx, cred.ID, "counter_regression", now, rec); err != nil {
			oauth.Write(w, r, s.Logger, oauth.ServerError(err))
			return
		}
		s.Logger.WarnContext(ctx, "passkey flagged: sign counter regression", "request_id", c.RequestID,
			"subject", c.Subject, "credential", cred.ID)
		oauth.Write(w, r, s.Logger, deniedPasskey("passkey_counter_regression",
			"The passkey's signature counter did not increase, so it may be cloned (WebAuthn Level 3, Section 7.2, step 22); it is now blocked, register a new passkey."))
		return
	}

	rec := challengeRecord(c, now, audit.DecisionApproved, "passkey_approved",
		"The user approved the step-up challenge with a passkey and user verification.")
	rec.StepUpMethod, rec.Approver = MethodPasskey, cred.ID
	approved, err := p.Store.ApproveWithPasskey(ctx, storage.PasskeyUse{
		ChallengeID: c.ID, CredentialID: cred.ID, OldSignCount: cred.SignCount, NewSignCount: count, At: now,
	}, rec)
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	if !approved {
		reject(errPasskeyDecided)
		return
	}
	s.Logger.InfoContext(ctx, "step-up challenge approved with a passkey", "request_id", c.RequestID,
		"subject", c.Subject, "credential", cred.ID)
	writeJSON(w, http.StatusOK, map[string]any{"challenge_id": c.ID, "status": storage.ChallengeApproved})
}

// checkAssertion runs the steps of WebAuthn Level 3, Section 7.2 that
// Sotto checks itself before the library, so each failure gets its own
// reason and description.
func (p *passkeys) checkAssertion(c *storage.StepUpChallenge, parsed *protocol.ParsedCredentialAssertionData) *oauth.Error {
	cd := parsed.Response.CollectedClientData
	ad := parsed.Response.AuthenticatorData
	// Step 10: C.type is webauthn.get.
	if cd.Type != protocol.AssertCeremony {
		return deniedPasskey("passkey_client_data_type", "The clientDataJSON type is not webauthn.get (WebAuthn Level 3, Section 7.2, step 10).")
	}
	// Step 11: C.challenge is the challenge derived from this step-up
	// challenge, so an assertion for another challenge fails here.
	want := base64.RawURLEncoding.EncodeToString(assertionChallenge(c))
	if strings.TrimRight(cd.Challenge, "=") != want {
		return deniedPasskey("passkey_challenge_mismatch",
			"The assertion was made for another challenge (WebAuthn Level 3, Section 7.2, step 11); approve on the page of this challenge.")
	}
	// Step 12: C.origin is one of the configured origins, compared
	// exactly (Section 13.4.9).
	if !slices.Contains(p.Origins, cd.Origin) {
		return deniedPasskey("passkey_origin",
			"The assertion was made on a page of another origin (WebAuthn Level 3, Section 7.2, step 12); open the passkey page of this server.")
	}
	// Step 13: Sotto's pages are never framed by another origin.
	if cd.CrossOrigin || cd.TopOrigin != "" {
		return deniedPasskey("passkey_cross_origin",
			"The assertion was made in a cross-origin frame (WebAuthn Level 3, Section 7.2, step 13); open the passkey page directly.")
	}
	// Step 14: rpIdHash is SHA-256 of the RP ID.
	rpIDHash := sha256.Sum256([]byte(p.RPID))
	if !bytes.Equal(ad.RPIDHash, rpIDHash[:]) {
		return deniedPasskey("passkey_rp_id",
			"The authenticator data is for another relying party ID (WebAuthn Level 3, Section 7.2, step 14).")
	}
	// Step 15: user present.
	if !ad.Flags.HasUserPresent() {
		return deniedPasskey("passkey_user_presence",
			"The authenticator did not confirm user presence (WebAuthn Level 3, Section 7.2, step 15); touch the authenticator when asked.")
	}
	// Step 16: step-up requires user verification.
	if !ad.Flags.HasUserVerified() {
		return deniedPasskey("passkey_user_verification",
			"The authenticator did not verify the user (UV flag not set, WebAuthn Level 3, Section 7.2, step 16); unlock the passkey with its PIN or biometric.")
	}
	return nil
}

// passkeyChallenge loads challenge id and checks that it offers passkeys.
func (s *Service) passkeyChallenge(ctx context.Context, id string) (*storage.StepUpChallenge, error) {
	if len(id) > 128 {
		return nil, errPasskeyUnknown
	}
	c, err := s.Store.StepUpChallenge(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errPasskeyUnknown
	}
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	if !slices.Contains(c.Methods, MethodPasskey) {
		return nil, oauth.InvalidRequest("passkey_not_offered",
			"This challenge does not offer passkey approval; complete it with push approval.")
	}
	return c, nil
}

func (s *Service) passkeyView(c *storage.StepUpChallenge) PasskeyChallenge {
	return PasskeyChallenge{
		ChallengeID: c.ID, Action: c.Action, Description: c.Description, Audience: c.Audience,
		AuthorizationDetails: json.RawMessage(c.DetailsJSON), ClientID: c.ClientID, DeviceJKT: c.DeviceJKT,
		Text: passkeyText(c), ExpiresAt: c.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"),
	}
}

// passkeyText is the sentence the passkey page shows before approval.
func passkeyText(c *storage.StepUpChallenge) string {
	text := approvalText(c)
	cut := strings.Index(text, " Approve only")
	if cut > 0 {
		text = text[:cut]
	}
	return text + " Approve only if you asked the assistant for this just now."
}

// libraryDetail returns the library's reason for a failed verification,
// for the log. It holds no part of the assertion.
func libraryDetail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Type + ": " + pe.Details
	}
	return err.Error()
}

func deniedPasskey(reason, description string) *oauth.Error {
	return &oauth.Error{Code: CodeAccessDenied, Reason: reason, Status: http.StatusForbidden, Description: description}
}

var (
	errPasskeyUnknown = &oauth.Error{Code: "invalid_request", Reason: "passkey_challenge_unknown", Status: http.StatusNotFound,
		Description: "No step-up challenge has this ID; open the passkey_url of a current challenge."}
	errPasskeyExpired = oauth.New(CodeExpiredToken, "passkey_challenge_expired",
		"The step-up challenge expired; ask the assistant again for a new one.")
	errPasskeyDecided = oauth.InvalidRequest("passkey_challenge_decided",
		"The step-up challenge was already approved or denied; an assertion is accepted once.")
)

func readAllLimited(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
}
