package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/devicebind"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// Token exchange identifiers of RFC 8693 §2.1 and §3.
const (
	GrantType            = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)

// Client is a registered client, as the exchange uses it.
type Client interface {
	fosite.Client
	// DPoPRequired reports whether every grant of the client needs a DPoP
	// proof. A token exchange needs one whatever this returns.
	DPoPRequired() bool
}

// NonceClient is a Client that may require server-provided DPoP nonces.
// A Client without this method never needs one.
type NonceClient interface {
	// DPoPNonceRequired reports whether the client's proofs must carry a
	// nonce from the server's DPoP-Nonce header (RFC 9449, Section 8).
	DPoPNonceRequired() bool
}

// Signer signs the payload of an action token as an RFC 9068 JWT with the
// server's current signing key.
type Signer interface {
	SignAccessToken(payload []byte) (string, error)
}

// Store is the storage the exchange needs.
type Store interface {
	CommitExchange(ctx context.Context, w storage.ExchangeWrite) (storage.ExchangeResult, error)
	AccessToken(ctx context.Context, tokenID, signature string) (*storage.AccessToken, error)
}

// Options configure a Handler. Every field but Logger and Now is required.
type Options struct {
	Issuer   string
	TokenURL string // the DPoP htu of the token endpoint
	MaxTTL   time.Duration
	Catalog  *Catalog
	Subjects *SubjectVerifier
	DPoP     *devicebind.Verifier
	// Nonces issues and checks DPoP nonces for the clients that require
	// them. Nil makes such clients' exchanges fail with server_error.
	Nonces *devicebind.Nonces
	// Devices is the device registry. Nil treats every key as unenrolled.
	Devices DeviceStore
	Signer  Signer
	Store   Store
	// StepUp runs step-up challenges. Nil refuses every action that needs
	// step-up with insufficient_user_authentication and no challenge.
	StepUp StepUp
	// StrongACRValues lists, per trusted issuer, the acr values that
	// satisfy step-up on their own when auth_time is within max_age.
	StrongACRValues map[string][]string
	Logger          *slog.Logger
	Now             func() time.Time

	// Sessions holds the session lifetimes, and SessionStore stores
	// sessions. A nil SessionStore makes session requests fail with
	// server_error.
	Sessions     SessionPolicy
	SessionStore SessionStore
}

// Handler is the fosite.TokenEndpointHandler of the token exchange grant.
type Handler struct {
	Options
	seen lastSeen
	// live is the catalog exchanges use. SetCatalog swaps it, so the
	// exchange reads it without a lock.
	live atomic.Pointer[Catalog]
}

var _ fosite.TokenEndpointHandler = (*Handler)(nil)

// NewHandler returns a Handler.
func NewHandler(o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{Options: o}
	h.live.Store(o.Catalog)
	return h
}

// CurrentCatalog returns the catalog new exchanges are decided under.
func (h *Handler) CurrentCatalog() *Catalog { return h.live.Load() }

// SetCatalog makes c the catalog of every exchange that starts from now
// on. Exchanges in flight finish under the catalog they started with.
func (h *Handler) SetCatalog(c *Catalog) { h.live.Store(c) }

// DisabledClient is a Client whose kill switch may be on.
type DisabledClient interface {
	Disabled() bool
}

// grantClient returns the requesting client after the checks every grant
// makes first, and records it in attempt. RFC 6749 §5.2: the client may
// use the grant, and unauthorized_client also answers a client that did
// authenticate but whose use of every grant an administrator took away.
func grantClient(ar fosite.AccessRequester, attempt *Attempt, grant, grantName string) (Client, error) {
	client, ok := ar.GetClient().(Client)
	if !ok {
		return nil, oauth.ServerError(fmt.Errorf("client %T does not implement exchange.Client", ar.GetClient()))
	}
	attempt.ClientID = client.GetID()
	if !slices.Contains(client.GetGrantTypes(), grant) {
		return nil, oauth.New("unauthorized_client", "grant_not_allowed",
			"The client is not registered for the "+grantName+" grant; add it to the client's grant_types.")
	}
	if IsDisabled(client) {
		return nil, errClientDisabled
	}
	return client, nil
}

// IsDisabled reports whether client's kill switch is on.
func IsDisabled(client any) bool {
	dc, ok := client.(DisabledClient)
	return ok && dc.Disabled()
}

// CanSkipClientAuth implements fosite.TokenEndpointHandler: every client,
// public ones included, identifies itself.
func (h *Handler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (h *Handler) CanHandleTokenEndpointRequest(_ context.Context, ar fosite.AccessRequester) bool {
	return ar.GetGrantTypes().ExactOne(GrantType)
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler. It
// runs every check of the exchange in the order that decides the error
// when several fail: client grant, DPoP proof, subject token, scope,
// target, then policy.
func (h *Handler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	attempt := attemptFrom(ctx)
	attempt.catalog = h.live.Load()
	now := h.Now()
	form := ar.GetRequestForm()

	client, err := grantClient(ar, attempt, GrantType, "token exchange")
	if err != nil {
		return err
	}

	proof, err := h.verifyProof(ctx, client)
	if err != nil {
		return err
	}
	attempt.Proof = proof

	subject, err := h.verifySubject(ctx, form)
	if err != nil {
		return err
	}
	attempt.Subject = subject

	if requestsSession(form) {
		return h.grantSession(ctx, ar, client, proof, subject, now)
	}

	action, err := h.lookupAction(attempt.catalog, form)
	if err != nil {
		return err
	}
	attempt.Action = action

	audience, err := selectTarget(form, action)
	if err != nil {
		return err
	}
	attempt.Audience = audience

	details, err := parseDetails(form.Get("authorization_details"), action)
	if err != nil {
		return err
	}
	attempt.Details = details

	// The kill switch comes first among the policy checks: a disabled action
	// is rejected for every client and subject.
	if action.Disabled {
		return actionDisabled(action)
	}

	// Device policy before the groups: a revoked key is rejected for every subject.
	trust, err := h.deviceTrust(ctx, proof.JKT, subject.ID)
	if err != nil {
		return oauth.ServerError(fmt.Errorf("read device: %w", err))
	}
	attempt.DeviceTrust = trust
	if e := checkDevice(trust, action); e != nil {
		return e
	}

	if e := decide(subject, action); e != nil {
		return e
	}
	completion, err := h.requireStepUp(ctx, form, attempt)
	if err != nil {
		return err
	}
	attempt.completion = completion

	exp := lifetime(now, action, h.MaxTTL, subject.ExpiresAt)
	if exp-now.Unix() < 1 {
		return oauth.InvalidRequest("subject_expiring",
			"The subject_token expires within a second; obtain a fresh one from the identity provider.")
	}

	claims := &Claims{
		Issuer:         h.Issuer,
		Subject:        subject.ID,
		Audience:       audience,
		Expiry:         exp,
		IssuedAt:       now.Unix(),
		ID:             newTokenID(),
		ClientID:       client.GetID(),
		Scope:          action.Scope,
		ACR:            subject.ACR,
		AMR:            subject.AMR,
		Confirmation:   Confirmation{JKT: proof.JKT},
		Parent:         subject.TokenID,
		SubjectIssuer:  subject.Issuer,
		CatalogEntry:   action.Version,
		SessionID:      subject.SessionID,
		CatalogVersion: attempt.catalog.Number,
	}
	if !subject.AuthTime.IsZero() {
		claims.AuthTime = subject.AuthTime.Unix()
	}
	if completion != nil {
		claims.ACR, claims.AMR, claims.AuthTime = completion.ACR, completion.AMR, completion.AuthTime.Unix()
	}
	if details != nil {
		claims.AuthorizationDetails = details.JSON
	}
	attempt.claims = claims

	if s, ok := ar.GetSession().(*Session); ok {
		s.Claims = *claims
		s.SetExpiresAt(fosite.AccessToken, time.Unix(exp, 0))
	}
	ar.GrantScope(action.Scope)
	ar.GrantAudience(audience)
	return nil
}

// verifyProof checks the request's DPoP proof against the token endpoint
// (RFC 9449 §4.3). Every token exchange needs one: action tokens are never
// bearer tokens.
func (h *Handler) verifyProof(ctx context.Context, client Client) (*devicebind.Proof, error) {
	r, ok := ctx.Value(fosite.RequestContextKey).(*http.Request)
	if !ok {
		return nil, oauth.ServerError(errors.New("the HTTP request is missing from the context"))
	}
	req := devicebind.Request{
		Headers: r.Header.Values("DPoP"),
		Method:  r.Method,
		URI:     h.TokenURL,
	}
	needsNonce := NeedsNonce(client)
	if needsNonce {
		if h.Nonces == nil {
			return nil, oauth.ServerError(errors.New("a client requires DPoP nonces but the handler has no Nonces"))
		}
		req.AcceptNonce = h.Nonces.Valid
	}
	proof, err := h.DPoP.Verify(req)
	var pe *devicebind.Error
	if needsNonce && errors.As(err, &pe) && pe.Check == "nonce" {
		// RFC 9449 §8: the response to a missing or stale nonce is
		// use_dpop_nonce with a fresh nonce in the DPoP-Nonce header, so
		// the client can retry at once.
		e := oauth.New(oauth.CodeUseDPoPNonce, "dpop_nonce",
			"The DPoP proof must carry the server nonce: retry with a new proof whose nonce claim is the value of the DPoP-Nonce header (RFC 9449 §8).")
		e.Header = http.Header{"Dpop-Nonce": {h.Nonces.Current()}}
		return nil, e
	}
	if errors.Is(err, devicebind.ErrMissing) {
		return nil, oauth.New(oauth.CodeInvalidDPoPProof, "dpop_missing",
			"A DPoP proof is required for token exchange: send one DPoP header signed by the device key (RFC 9449 §4).")
	}
	if errors.As(err, &pe) {
		return nil, oauth.New(oauth.CodeInvalidDPoPProof, "dpop_"+pe.Check, pe.Description)
	}
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	return proof, nil
}

// NeedsNonce reports whether client's proofs must carry a server nonce.
func NeedsNonce(client any) bool {
	nc, ok := client.(NonceClient)
	return ok && nc.DPoPNonceRequired()
}

// verifySubject checks the subject token and its type (RFC 8693 §2.1).
func (h *Handler) verifySubject(ctx context.Context, form url.Values) (*Subject, error) {
	token := form.Get("subject_token")
	tokenType := form.Get("subject_token_type")
	if token == "" {
		return nil, oauth.InvalidRequest("subject_token_missing",
			"The subject_token parameter is missing: send the corporate ID token to exchange.")
	}
	if tokenType == "" {
		return nil, oauth.InvalidRequest("subject_token_type_missing",
			"The subject_token_type parameter is missing: send "+TokenTypeIDToken+" for a corporate ID token.")
	}
	// RFC 8693 §2.1: requested_token_type is optional; this server issues
	// access tokens, which are JWTs.
	if rt := form.Get("requested_token_type"); rt != "" && rt != TokenTypeAccessToken && rt != TokenTypeJWT {
		return nil, oauth.InvalidRequest("requested_token_type_unsupported", fmt.Sprintf(
			"The requested_token_type %s is not supported: omit it or request %s.", quote(rt), TokenTypeAccessToken))
	}
	// Delegation (RFC 8693 §1.1) is not offered: an actor token would make
	// someone other than the subject the party acting.
	if form.Get("actor_token") != "" || form.Get("actor_token_type") != "" {
		return nil, oauth.InvalidRequest("actor_token_unsupported",
			"The actor_token parameter is not supported: the subject acts for itself; omit actor_token.")
	}

	switch tokenType {
	case TokenTypeIDToken, TokenTypeJWT:
	case TokenTypeAccessToken:
		return h.verifySessionSubject(ctx, token)
	default:
		return nil, oauth.InvalidRequest("subject_token_type_unsupported", fmt.Sprintf(
			"The subject_token_type %s is not supported: send a corporate ID token as %s.", quote(tokenType), TokenTypeIDToken))
	}

	subject, err := h.Subjects.Verify(ctx, token)
	var se *SubjectError
	if errors.As(err, &se) && se.Check == "jwks" {
		// The issuer's keys could not be fetched: the fault is not the
		// client's, so it may retry.
		e := oauth.ServerError(err)
		e.Code, e.Status, e.Reason = "temporarily_unavailable", http.StatusServiceUnavailable, "subject_jwks_unavailable"
		e.Description = "The keys of the subject token's issuer cannot be fetched right now; retry later."
		return nil, e
	}
	if errors.As(err, &se) {
		// RFC 8693 §2.2.2: an invalid subject token is invalid_request.
		return nil, oauth.InvalidRequest("subject_"+se.Check, "The subject_token was rejected: "+se.Description)
	}
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	return subject, nil
}

// lookupAction finds the one catalog action the scope names.
func (h *Handler) lookupAction(catalog *Catalog, form url.Values) (*Action, error) {
	// RFC 6749 §3.3: scope tokens are delimited by spaces (%x20) only, and
	// a scope token never contains a tab, a newline or a non-ASCII
	// character. strings.Fields would also split on those and turn
	// "ticket:create\t" into a valid scope.
	scopes := strings.FieldsFunc(form.Get("scope"), func(r rune) bool { return r == ' ' })
	switch {
	case len(scopes) == 0:
		return nil, oauth.New("invalid_scope", "scope_missing",
			"The scope parameter is missing: name exactly one catalog action, such as ticket:create.")
	case len(scopes) > 1:
		return nil, oauth.New("invalid_scope", "scope_several", fmt.Sprintf(
			"The scope names %d actions (%s); an action token is for exactly one action.",
			len(scopes), quote(strings.Join(scopes, " "))))
	}
	action, ok := catalog.Lookup(scopes[0])
	if !ok {
		return nil, oauth.New("invalid_scope", "scope_unknown", fmt.Sprintf(
			"The scope %s is not an action of the catalog.", quote(scopes[0])))
	}
	return action, nil
}

// selectTarget returns the one audience of the token from the audience
// (RFC 8693 §2.1) and resource (RFC 8707 §2) parameters.
func selectTarget(form url.Values, action *Action) (string, error) {
	var targets []string
	for _, r := range form["resource"] {
		// RFC 8707 §2: a resource is an absolute URI without a fragment.
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(r, "#") {
			return "", oauth.New(oauth.CodeInvalidTarget, "resource_invalid", fmt.Sprintf(
				"The resource %s is not an absolute URI without a fragment (RFC 8707 §2).", quote(r)))
		}
		targets = append(targets, r)
	}
	targets = append(targets, form["audience"]...)
	slices.Sort(targets)
	targets = slices.Compact(targets)

	switch {
	case len(targets) > 1:
		return "", oauth.New(oauth.CodeInvalidTarget, "target_several", fmt.Sprintf(
			"The request names %d targets (%s); name exactly one service in audience or resource.",
			len(targets), quote(strings.Join(targets, " "))))
	case len(targets) == 0 && len(action.Audiences) == 1:
		return action.Audiences[0], nil
	case len(targets) == 0:
		return "", oauth.New(oauth.CodeInvalidTarget, "target_missing", fmt.Sprintf(
			"The action %q serves several audiences (%s): name one in the audience parameter.",
			action.Scope, strings.Join(action.Audiences, ", ")))
	}
	if !slices.Contains(action.Audiences, targets[0]) {
		return "", oauth.New(oauth.CodeInvalidTarget, "target_not_allowed", fmt.Sprintf(
			"The action %q is not offered for %s; its audiences are %s.",
			action.Scope, quote(targets[0]), strings.Join(action.Audiences, ", ")))
	}
	return targets[0], nil
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler:
// it signs the action token, then writes the token record, the proof's
// replay record and the audit record in one transaction. The token
// leaves only after that transaction committed.
func (h *Handler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	attempt := attemptFrom(ctx)
	if attempt.session != nil {
		return h.populateSession(ctx, ar, resp, attempt)
	}
	claims := attempt.claims
	if claims == nil {
		return oauth.ServerError(errors.New("token exchange reached the response without a decision"))
	}

	payload, err := json.Marshal(claims)
	if err != nil {
		return oauth.ServerError(err)
	}
	token, err := h.Signer.SignAccessToken(payload)
	if err != nil {
		return oauth.ServerError(fmt.Errorf("sign action token: %w", err))
	}
	session, err := json.Marshal(ar.GetSession())
	if err != nil {
		return oauth.ServerError(err)
	}

	record := h.auditRecord(attempt, audit.DecisionIssued, "", "")
	record.TokenID = claims.ID
	record.TokenExpiresAt = time.Unix(claims.Expiry, 0).UTC()
	var use *storage.ChallengeUse
	if c := attempt.completion; c != nil {
		record.Reason = "step_up_used"
		record.Detail = "Issued after step-up by " + c.Method + "; the challenge is now used."
		record.StepUpMethod, record.Approver = c.Method, c.Approver
		use = &storage.ChallengeUse{ID: c.ChallengeID, TokenID: claims.ID, At: h.Now().UTC()}
	}
	result, err := h.Store.CommitExchange(ctx, storage.ExchangeWrite{
		Proof: proofClaim(attempt.Proof, h.DPoP),
		Token: &storage.AccessToken{
			Signature: TokenSignature(token),
			TokenID:   claims.ID,
			RequestID: ar.GetID(),
			ClientID:  claims.ClientID,
			Subject:   claims.Subject,
			Scope:     claims.Scope,
			Audience:  claims.Audience,
			DeviceJKT: claims.Confirmation.JKT,
			Parent:    claims.Parent,
			IssuedAt:  time.Unix(claims.IssuedAt, 0).UTC(),
			ExpiresAt: time.Unix(claims.Expiry, 0).UTC(),
			Session:   session,
			SessionID: claims.SessionID,
		},
		Audit:            record,
		ReplayAudit:      h.replayRecord(attempt),
		ConsumeChallenge: use,
		SpentAudit:       h.auditRecord(attempt, audit.DecisionRefused, errChallengeSpent.Reason, errChallengeSpent.Description),
	})
	if err != nil {
		return oauth.ServerError(fmt.Errorf("commit exchange: %w", err))
	}
	attempt.recorded = true
	if result.Replayed {
		return errReplay
	}
	if result.ChallengeSpent {
		return errChallengeSpent
	}
	if attempt.DeviceTrust != DeviceUnregistered {
		h.touchDevice(claims.Confirmation.JKT, h.Now())
	}

	resp.SetAccessToken(token)
	resp.SetTokenType("DPoP") // RFC 9449 §5
	resp.SetExpiresIn(time.Duration(claims.Expiry-claims.IssuedAt) * time.Second)
	resp.SetScopes(fosite.Arguments{claims.Scope})
	resp.SetExtra("issued_token_type", TokenTypeAccessToken) // RFC 8693 §2.2.1
	return nil
}

// RFC 9449 §11.1: a proof's jti is accepted once within its validity
// window. The check runs last among the DPoP checks because it needs the
// database; its result still decides the error over the later checks.
var errReplay = oauth.New(oauth.CodeInvalidDPoPProof, "dpop_replay",
	"The DPoP proof was already used: sign a new proof with a fresh jti for every request (RFC 9449 §11.1).")

// errClientDisabled is the error for a client whose kill switch is on.
var errClientDisabled = oauth.New("unauthorized_client", "client_disabled",
	"The client was disabled by an administrator; ask the identity team to enable it again.")

// actionDisabled is the error for an action whose kill switch is on.
// RFC 6749 §5.2 has no closer code than access_denied for a request the
// server refuses by policy.
func actionDisabled(a *Action) *oauth.Error {
	return oauth.New("access_denied", "action_disabled", fmt.Sprintf(
		"The action %s was disabled by an administrator; no token is issued for it until it is enabled again.",
		quote(a.Scope)))
}

// errChallengeSpent is the answer when another exchange used the step-up
// challenge between this exchange's check and its commit.
var errChallengeSpent = oauth.New("invalid_grant", "step_up_challenge_used",
	"The step_up_challenge was already used for a token; repeat the exchange without it to get a new challenge.")

// RecordRefusal writes the audit record of a refused exchange and returns
// the error to send. Only requests from a known client are recorded, so
// strangers cannot flood the evidence log. A refusal still claims the proof's
// jti. When that jti was already used, the replay is the error, because the
// DPoP check comes before every later check.
func (h *Handler) RecordRefusal(ctx context.Context, attempt *Attempt, err error) error {
	e := oauth.From(err)
	if attempt == nil || attempt.ClientID == "" || attempt.recorded {
		return err
	}
	attempt.recorded = true

	decision := audit.DecisionRefused
	if e.Code == oauth.CodeInsufficientUserAuthentication {
		decision = audit.DecisionStepUpRequired
	}
	detail := e.Description
	if e.Status >= http.StatusInternalServerError {
		detail = ""
	}
	record := h.auditRecord(attempt, decision, e.Reason, detail)
	if c := attempt.challenge; c != nil {
		record.Detail = fmt.Sprintf("Step-up challenge created for %s, bound to the subject, client, DPoP key, action, audience and details hash.",
			strings.Join(c.Methods, " or "))
	}
	result, cerr := h.Store.CommitExchange(ctx, storage.ExchangeWrite{
		Proof:       proofClaim(attempt.Proof, h.DPoP),
		Audit:       record,
		ReplayAudit: h.replayRecord(attempt),
		Challenge:   attempt.challenge,
	})
	if cerr != nil {
		h.Logger.ErrorContext(ctx, "failed to write the audit record of a refused exchange",
			"request_id", attempt.RequestID, "client_id", attempt.ClientID, "reason", e.Reason, "error", cerr)
		return err
	}
	if result.Replayed {
		return errReplay
	}
	if attempt.challenge != nil && h.StepUp != nil {
		h.StepUp.Created(ctx, attempt.challenge)
	}
	return err
}

func (h *Handler) auditRecord(a *Attempt, decision audit.Decision, reason, detail string) audit.Record {
	event := a.event
	if event == "" {
		event = audit.EventExchange
	}
	rec := audit.Record{
		Time:        h.Now().UTC(),
		RequestID:   a.RequestID,
		Event:       event,
		ClientID:    a.ClientID,
		Audience:    a.Audience,
		Decision:    decision,
		Reason:      reason,
		Detail:      detail,
		DeviceTrust: a.DeviceTrust,
		ContextHash: a.ContextHash,
	}
	if !a.Start.IsZero() {
		rec.LatencyMicros = time.Since(a.Start).Microseconds()
	}
	if a.Proof != nil {
		rec.DeviceJKT = a.Proof.JKT
	}
	if a.Subject != nil {
		rec.Subject = a.Subject.ID
		rec.SubjectIssuer = a.Subject.Issuer
	}
	if a.Details != nil {
		rec.AuthorizationDetails, rec.DetailsHash = string(a.Details.JSON), a.Details.Hash
	}
	if a.Action != nil {
		catalog := a.catalog
		if catalog == nil {
			catalog = h.live.Load()
		}
		rec.Action = a.Action.Scope
		rec.CatalogEntry = a.Action.Version
		rec.CatalogVersion = catalog.Version
		rec.CatalogNumber = catalog.Number
	}
	if scope := sessionAction(a); scope != "" {
		rec.Action = scope
	}
	return rec
}

func (h *Handler) replayRecord(a *Attempt) audit.Record {
	return h.auditRecord(a, audit.DecisionRefused, errReplay.Reason, errReplay.Description)
}

// proofClaim returns the replay record of a verified proof. It is kept
// until the proof's iat can no longer pass the largest window any replica
// may be configured with, plus a minute for clock skew. The expiry
// depends on the proof alone, because it is part of the record's key: a
// restart or a replica with another window must find the same record.
func proofClaim(p *devicebind.Proof, _ *devicebind.Verifier) *storage.ProofClaim {
	if p == nil {
		return nil
	}
	keep := time.Duration(config.MaxDPoPIATWindow) + time.Minute
	return &storage.ProofClaim{JKT: p.JKT, JTI: p.JTI, ExpiresAt: p.IssuedAt.Add(keep).UTC()}
}

// TokenSignature returns the key under which a token is stored: the hex
// SHA-256 of the whole token, so the database never holds a usable token.
func TokenSignature(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newTokenID returns a UUIDv7 (RFC 9562 §5.7) for the jti: unique, and
// growing with time, so token rows append at the end of their index.
func newTokenID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// maxTokenSize bounds the tokens LookupToken decodes.
const maxTokenSize = 16 << 10

// LookupToken returns the stored record of an action token, or an error
// wrapping storage.ErrNotFound when token is not one this server issued
// (or is malformed). It reads the jti from the unverified payload to find
// the record, and the store then compares the hash of the whole token, so
// a forgery that copies a real jti finds nothing.
func LookupToken(ctx context.Context, store interface {
	AccessToken(ctx context.Context, tokenID, signature string) (*storage.AccessToken, error)
}, token string) (*storage.AccessToken, error) {
	id, ok := jwtID(token)
	if !ok {
		return nil, fmt.Errorf("not a token of this server: %w", storage.ErrNotFound)
	}
	return store.AccessToken(ctx, id, TokenSignature(token))
}

// jwtID returns the jti of a compact JWT without verifying it.
func jwtID(token string) (string, bool) {
	if len(token) > maxTokenSize {
		return "", false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var claims struct {
		ID string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.ID == "" {
		return "", false
	}
	return claims.ID, true
}
