package stepup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/devicebind"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// Endpoint paths, relative to the issuer's path.
const (
	PathApprovers      = "/stepup/approvers"
	PathPushChallenges = "/stepup/push/challenges"
	PathPasskeyPage    = "/stepup/passkey"
)

// ApprovalType is the typ header of an approval JWS.
const ApprovalType = "sotto-approval+jwt"

// Decisions an approval may carry.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
)

// maxFormBytes bounds the body of the step-up endpoints.
const maxFormBytes = 32 << 10

// HandleEnroll serves POST PathApprovers: an approver app enrolls its key
// for the user. The form carries id_token, a corporate ID token of a
// trusted issuer, and name; the DPoP header is a proof (RFC 9449,
// Section 4.2) signed by the approver key for this endpoint, which proves
// possession of the key being enrolled.
func (s *Service) HandleEnroll(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form, err := readForm(w, r)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	proof, err := s.verifySignedRequest(r, s.BaseURL+PathApprovers)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	subject, issuer, err := s.Identities.VerifyIdentity(ctx, form.Get("id_token"))
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.New("invalid_token", "approver_identity_invalid",
			"The id_token was rejected: send a valid ID token of a trusted corporate issuer for the approver's user."))
		return
	}
	name := strings.TrimSpace(form.Get("name"))
	if name == "" || len(name) > 64 {
		oauth.Write(w, r, s.Logger, oauth.InvalidRequest("approver_name_invalid",
			"The name parameter is missing or longer than 64 bytes: name the approver device, such as Work phone."))
		return
	}
	jwk, err := proof.Key.MarshalJSON()
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}

	now := s.Now()
	rec := audit.Record{
		Time: now.UTC(), RequestID: oauth.RequestID(ctx), Event: audit.EventStepUp,
		Subject: subject, SubjectIssuer: issuer, Decision: audit.DecisionEnrolled,
		Reason: "approver_enrolled", Detail: "An approver device was enrolled for push approval.",
		StepUpMethod: MethodPush, Approver: proof.JKT,
	}
	device := storage.ApproverDevice{JKT: proof.JKT, Subject: subject, PublicJWK: jwk, Name: name, CreatedAt: now}
	status := "pending"
	if s.Push.SelfEnrolment {
		device.ActivatedAt, status = &now, "active"
	} else {
		rec.Detail = "An approver device was enrolled for push approval; it approves nothing until an administrator activates it."
	}
	err = s.Store.EnrollApprover(ctx, device, s.proofClaim(proof), rec)
	switch {
	case errors.Is(err, storage.ErrReplay):
		oauth.Write(w, r, s.Logger, errProofReplay)
		return
	case errors.Is(err, storage.ErrApproverTaken):
		oauth.Write(w, r, s.Logger, oauth.InvalidRequest("approver_key_taken",
			"This approver key is enrolled for another user; generate a new key in the approver app."))
		return
	case err != nil:
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	s.Logger.InfoContext(ctx, "approver device enrolled", "request_id", rec.RequestID, "subject", subject,
		"approver", proof.JKT, "status", status)
	writeJSON(w, http.StatusCreated, map[string]any{"jkt": proof.JKT, "name": name, "status": status})
}

// HandlePending serves GET PathPushChallenges: the pending push
// challenges of the approver's user, each as the approver is to show it.
// The request is signed by the approver key with a DPoP proof.
func (s *Service) HandlePending(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	proof, err := s.verifySignedRequest(r, s.BaseURL+PathPushChallenges)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	device, err := s.Store.ApproverDevice(ctx, proof.JKT)
	if errors.Is(err, storage.ErrNotFound) {
		oauth.Write(w, r, s.Logger, errUnknownApprover)
		return
	}
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	if device.ActivatedAt == nil {
		oauth.Write(w, r, s.Logger, errPendingApprover)
		return
	}
	if err := s.Store.ClaimProof(ctx, s.proofClaim(proof), nil); errors.Is(err, storage.ErrReplay) {
		oauth.Write(w, r, s.Logger, errProofReplay)
		return
	} else if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}

	pending, err := s.Store.PendingPushChallenges(ctx, device.Subject, s.Now())
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	out := make([]Notification, 0, len(pending))
	for _, c := range pending {
		n := s.notification(c)
		out = append(out, n)
		if c.DeliveredAt == nil {
			s.Delivered(ctx, n, "the approver app's pull")
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"challenges": out})
}

// HandleDecision serves POST PathPushChallenges/{id} with the form
// parameter approval: a JWS signed by an enrolled approver key over the
// challenge ID, the decision and the chosen number.
func (s *Service) HandleDecision(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	form, err := readForm(w, r)
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	approval, device, err := s.verifyApproval(ctx, form.Get("approval"))
	if err != nil {
		oauth.Write(w, r, s.Logger, err)
		return
	}
	if approval.ChallengeID != id {
		oauth.Write(w, r, s.Logger, oauth.InvalidRequest("approval_challenge_mismatch",
			"The approval names another challenge_id than the URL; sign the challenge_id of the challenge you decide."))
		return
	}

	c, err := s.Store.StepUpChallenge(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		oauth.Write(w, r, s.Logger, &oauth.Error{Code: "invalid_request", Reason: "approval_challenge_unknown",
			Status: http.StatusNotFound, Description: "No step-up challenge has this ID; it may have been mistyped."})
		return
	}
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	now := s.Now()
	refuse := func(e *oauth.Error) {
		rec := challengeRecord(c, now, audit.DecisionRefused, e.Reason, e.Description)
		rec.StepUpMethod, rec.Approver = MethodPush, device.JKT
		if err := s.Store.AppendAudit(ctx, rec); err != nil {
			s.Logger.ErrorContext(ctx, "refused approval not recorded", "request_id", c.RequestID, "error", err)
		}
		s.Logger.InfoContext(ctx, "push approval refused", "request_id", c.RequestID, "reason", e.Reason, "approver", device.JKT)
		oauth.Write(w, r, s.Logger, e)
	}

	if device.Subject != c.Subject {
		refuse(&oauth.Error{Code: CodeAccessDenied, Reason: "approval_wrong_device", Status: http.StatusForbidden,
			Description: "The approval is signed by an approver device of another user; only the user's own devices may decide."})
		return
	}
	if !slices.Contains(c.Methods, MethodPush) {
		refuse(oauth.InvalidRequest("approval_push_not_offered",
			"This challenge does not offer push approval; complete it with a passkey."))
		return
	}
	if !now.Before(c.ExpiresAt) {
		refuse(oauth.New(CodeExpiredToken, "approval_expired",
			"The step-up challenge expired before the decision arrived; the assistant must ask again."))
		return
	}
	if c.Status != storage.ChallengePending {
		refuse(oauth.InvalidRequest("approval_already_decided",
			"The step-up challenge was already decided; a decision cannot be changed."))
		return
	}

	status, reason, detail := storage.ChallengeDenied, "push_denied", "The user denied the push challenge."
	if approval.Decision == DecisionApprove {
		status, reason, detail = storage.ChallengeApproved, "push_approved", "The user approved the push challenge with the matching number."
		if approval.Number != c.SpokenNumber {
			// A wrong number denies the challenge, so guessing among the
			// three numbers gets one try.
			reason, detail = "push_wrong_number", "The approval named a number the assistant did not speak, so the challenge is denied."
			status = storage.ChallengeDenied
		}
	}
	decision := audit.DecisionApproved
	if status == storage.ChallengeDenied {
		decision = audit.DecisionDenied
	}
	rec := challengeRecord(c, now, decision, reason, detail)
	rec.StepUpMethod, rec.Approver = MethodPush, device.JKT
	decided, err := s.Store.DecideStepUpChallenge(ctx, c.ID, status, MethodPush, device.JKT, now, rec)
	if err != nil {
		oauth.Write(w, r, s.Logger, oauth.ServerError(err))
		return
	}
	if !decided {
		refuse(oauth.InvalidRequest("approval_already_decided",
			"The step-up challenge was already decided or has expired; a decision cannot be changed."))
		return
	}
	s.Logger.InfoContext(ctx, "push challenge decided", "request_id", c.RequestID, "status", status, "reason", reason, "approver", device.JKT)
	if status == storage.ChallengeDenied {
		s.checkLockout(ctx, c)
	}
	if reason == "push_wrong_number" {
		oauth.Write(w, r, s.Logger, oauth.New(CodeAccessDenied, reason,
			"The number does not match the one the assistant spoke, so the challenge is denied; ask the assistant again."))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"challenge_id": c.ID, "status": status})
}

// checkLockout records an alert when a denial locks push for the user.
func (s *Service) checkLockout(ctx context.Context, c *storage.StepUpChallenge) {
	n, err := s.Store.CountPushDenials(ctx, c.Subject, s.Now().Add(-s.Push.Lockout))
	if err != nil || n < s.Push.MaxDenials {
		return
	}
	s.alert(ctx, Binding{
		RequestID: c.RequestID, Subject: c.Subject, SubjectIssuer: c.SubjectIssuer, ClientID: c.ClientID,
		DeviceJKT: c.DeviceJKT, Action: c.Action, Audience: c.Audience, DetailsHash: c.DetailsHash, DetailsJSON: c.DetailsJSON,
	}, "push_locked", fmt.Sprintf("Push is locked for the user after %d denied challenges within %s.", n, s.Push.Lockout))
}

// approvalClaims are the members of an approval JWS; any other member is
// refused.
type approvalClaims struct {
	ChallengeID string `json:"challenge_id"`
	Decision    string `json:"decision"`
	Number      int    `json:"number"`
	IssuedAt    int64  `json:"iat"`
}

// verifyApproval parses and verifies an approval JWS: typ, alg, the kid
// naming an enrolled approver key, the signature by that key, and the
// members.
func (s *Service) verifyApproval(ctx context.Context, raw string) (*approvalClaims, *storage.ApproverDevice, error) {
	invalid := func(reason, description string) error {
		return oauth.InvalidRequest(reason, description)
	}
	if raw == "" || len(raw) > 8<<10 {
		return nil, nil, invalid("approval_missing", "The approval parameter is missing or too large: send the compact JWS signed by the approver key.")
	}
	jws, err := jose.ParseSigned(raw, devicebind.DefaultAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, nil, invalid("approval_malformed", "The approval is not a compact JWS with one signature by an allowed algorithm (ES256, ES384, EdDSA, RS256, PS256).")
	}
	header := jws.Signatures[0].Protected
	if typ, _ := header.ExtraHeaders[jose.HeaderType].(string); typ != ApprovalType {
		return nil, nil, invalid("approval_type", "The approval JWS must have typ "+ApprovalType+".")
	}
	device, err := s.Store.ApproverDevice(ctx, header.KeyID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, errUnknownApprover
	}
	if err != nil {
		return nil, nil, oauth.ServerError(err)
	}
	if device.ActivatedAt == nil {
		return nil, nil, errPendingApprover
	}
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(device.PublicJWK); err != nil {
		return nil, nil, oauth.ServerError(fmt.Errorf("stored approver key: %w", err))
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, nil, &oauth.Error{Code: CodeAccessDenied, Reason: "approval_signature", Status: http.StatusForbidden,
			Description: "The approval signature does not verify with the approver key its kid names; sign with the enrolled key."}
	}

	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var claims approvalClaims
	if err := dec.Decode(&claims); err != nil || dec.More() {
		return nil, nil, invalid("approval_claims", "The approval payload must be a JSON object with exactly challenge_id, decision, number and iat.")
	}
	var members map[string]json.RawMessage
	_ = json.Unmarshal(payload, &members)
	for _, m := range []string{"challenge_id", "decision", "number", "iat"} {
		if _, ok := members[m]; !ok {
			return nil, nil, invalid("approval_claims", "The approval payload is missing "+m+"; send challenge_id, decision, number and iat.")
		}
	}
	if claims.Decision != DecisionApprove && claims.Decision != DecisionDeny {
		return nil, nil, invalid("approval_decision", "The approval decision must be approve or deny.")
	}
	window := s.DPoP.Window
	if window <= 0 {
		window = time.Minute
	}
	if d := s.Now().Sub(time.Unix(claims.IssuedAt, 0)); d > window || d < -window {
		return nil, nil, invalid("approval_iat", "The approval iat is not within the server's clock window; sign a fresh approval.")
	}
	return &claims, device, nil
}

// verifySignedRequest checks the DPoP header of an approver request for
// uri (RFC 9449, Section 4.3).
func (s *Service) verifySignedRequest(r *http.Request, uri string) (*devicebind.Proof, error) {
	proof, err := s.DPoP.Verify(devicebind.Request{Headers: r.Header.Values("DPoP"), Method: r.Method, URI: uri})
	if errors.Is(err, devicebind.ErrMissing) {
		return nil, oauth.New(oauth.CodeInvalidDPoPProof, "dpop_missing",
			"Sign the request with the approver key: send one DPoP header (RFC 9449, Section 4) for this URL.")
	}
	var pe *devicebind.Error
	if errors.As(err, &pe) {
		return nil, oauth.New(oauth.CodeInvalidDPoPProof, "dpop_"+pe.Check, pe.Description)
	}
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	return proof, nil
}

func (s *Service) proofClaim(p *devicebind.Proof) storage.ProofClaim {
	window := s.DPoP.Window
	if window <= 0 {
		window = time.Minute
	}
	return storage.ProofClaim{JKT: p.JKT, JTI: p.JTI, ExpiresAt: p.IssuedAt.Add(window + time.Minute).UTC()}
}

var (
	errProofReplay = oauth.New(oauth.CodeInvalidDPoPProof, "dpop_replay",
		"The DPoP proof was already used: sign a new proof with a fresh jti for every request (RFC 9449, Section 11.1).")
	errUnknownApprover = &oauth.Error{Code: "invalid_token", Reason: "approver_unknown", Status: http.StatusUnauthorized,
		Description: "The key is not an enrolled approver device; enroll it first."}
	// errPendingApprover refuses a device that enrolled with the user's ID
	// token alone: an assistant holds that token too, so the device must
	// not approve until an administrator vouches for it.
	errPendingApprover = &oauth.Error{Code: CodeAccessDenied, Reason: "approver_pending", Status: http.StatusForbidden,
		Description: "This approver device is enrolled but not active yet; ask an identity administrator to activate it."}
)

// readForm reads an application/x-www-form-urlencoded body of at most
// maxFormBytes, with no parameter repeated.
func readForm(w http.ResponseWriter, r *http.Request) (form, error) {
	if r.Method != http.MethodPost {
		return nil, &oauth.Error{Code: "invalid_request", Reason: "method", Status: http.StatusMethodNotAllowed,
			Description: "This endpoint accepts POST only."}
	}
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, oauth.InvalidRequest("content_type", "Send the parameters as application/x-www-form-urlencoded.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		return nil, oauth.InvalidRequest("body_too_large", fmt.Sprintf("The body is larger than %d bytes.", maxFormBytes))
	}
	values, err := parseQuery(string(body))
	if err != nil {
		return nil, err
	}
	return values, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func jsonEncode(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
