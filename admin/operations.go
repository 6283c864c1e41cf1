package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/storage"
)

func (a *api) operationRoutes(r *mux.Router) {
	r.Handle("/explain", a.require(config.ScopeCatalogRead, "explain", a.explain)).Methods(http.MethodPost)
	r.Handle("/revocations", a.require(config.ScopeRevoke, "revoke", a.revoke)).Methods(http.MethodPost)
	r.Handle("/audit", a.require(config.ScopeAuditRead, "audit.search", a.searchAudit)).Methods(http.MethodGet)
	r.Handle("/audit/trace/{id}", a.require(config.ScopeAuditRead, "audit.trace", a.traceAudit)).Methods(http.MethodGet)
	r.Handle("/devices", a.require(config.ScopeDevices, "devices.list", a.listDevices)).Methods(http.MethodGet)
	r.Handle("/approvers", a.require(config.ScopeDevices, "approvers.list", a.listApprovers)).Methods(http.MethodGet)
	r.Handle("/approvers/{jkt}:activate", a.require(config.ScopeDevices, "approvers.activate", a.activateApprover)).Methods(http.MethodPost)
	r.Handle("/devices/{jkt}", a.require(config.ScopeDevices, "devices.revoke", a.revokeDevice)).Methods(http.MethodPost)
}

// ExplainRequest is the body of POST /v1/explain.
type ExplainRequest struct {
	ClientID      string         `json:"client_id"`
	SubjectToken  string         `json:"subject_token,omitempty"`
	SubjectClaims map[string]any `json:"subject_claims,omitempty"`
	DeviceJKT     string         `json:"device_jkt,omitempty"`
	Scope         string         `json:"scope"`
	Audience      string         `json:"audience,omitempty"`
	// AuthorizationDetails is the RFC 9396 array, as JSON.
	AuthorizationDetails any `json:"authorization_details,omitempty"`
}

// Explain returns the decision a token exchange with req would get.
func Explain(ctx context.Context, h *exchange.Handler, client exchange.Client, req ExplainRequest) (*exchange.Explanation, error) {
	er := exchange.ExplainRequest{
		Client: client, ClientID: req.ClientID, SubjectToken: req.SubjectToken, SubjectClaims: req.SubjectClaims,
		DeviceJKT: req.DeviceJKT, Scope: req.Scope, Audience: req.Audience,
	}
	switch d := req.AuthorizationDetails.(type) {
	case nil:
	case string:
		er.AuthorizationDetails = d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		er.AuthorizationDetails = string(b)
	}
	return h.Explain(ctx, er), nil
}

func (a *api) explain(w http.ResponseWriter, r *http.Request) *Error {
	var req ExplainRequest
	if e := decodeJSON(r, &req); e != nil {
		return e
	}
	if req.SubjectToken == "" && req.SubjectClaims == nil {
		return badRequest("Send subject_token (an ID token) or subject_claims (its claims, unverified).")
	}
	var client exchange.Client
	if c, ok := a.Server.Client(req.ClientID); ok {
		client = c
	}
	out, err := Explain(r.Context(), a.Server.Exchange(), client, req)
	if err != nil {
		return badRequest("authorization_details is not a JSON value.")
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// RevokeRequest is the body of POST /v1/revocations. Every attribute set
// must match; at least one is required.
type RevokeRequest struct {
	Subject   string `json:"subject,omitempty"`
	Session   string `json:"session,omitempty"`
	DeviceJKT string `json:"device_jkt,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Action    string `json:"action,omitempty"`
	Comment   string `json:"comment,omitempty"`
}

func (a *api) revoke(w http.ResponseWriter, r *http.Request) *Error {
	var req RevokeRequest
	if e := decodeJSON(r, &req); e != nil {
		return e
	}
	f := storage.TokenFilter{
		Subject: req.Subject, Parent: req.Session, DeviceJKT: req.DeviceJKT, ClientID: req.ClientID, Scope: req.Action,
	}
	if f == (storage.TokenFilter{}) {
		return badRequest("Name the tokens to revoke: set one or more of subject, session, device_jkt, client_id and action.")
	}
	var by []string
	for _, kv := range [][2]string{{"subject", f.Subject}, {"session", f.Parent}, {"device_jkt", f.DeviceJKT},
		{"client_id", f.ClientID}, {"action", f.Scope}} {
		if kv[1] != "" {
			by = append(by, kv[0]+"="+kv[1])
		}
	}
	rec := a.record(r.Context(), "revoke", strings.Join(by, " "))
	rec.Decision, rec.Reason = audit.DecisionRevoked, "admin_request"
	rec.Subject, rec.DeviceJKT, rec.Action = req.Subject, req.DeviceJKT, req.Action
	rec.Detail = req.Comment
	n, err := a.Store.RevokeTokensWhere(r.Context(), f, a.Now().UTC(), rec)
	if err != nil {
		return a.internalError(r, err)
	}
	a.Logger.InfoContext(r.Context(), "tokens revoked by an administrator", "request_id", requestID(r),
		"client_id", principal(r.Context()).ClientID, "filter", rec.Target, "tokens_ended", n)
	writeJSON(w, http.StatusOK, map[string]any{"revoked_tokens": n})
	return nil
}

func (a *api) searchAudit(w http.ResponseWriter, r *http.Request) *Error {
	q := r.URL.Query()
	f, e := auditFilter(q)
	if e != nil {
		return e
	}
	records, err := a.Store.AuditRecords(r.Context(), f)
	if err != nil {
		return a.internalError(r, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": nonNil(records)})
	return nil
}

// listApprovers serves GET /v1/approvers?subject=: the push approver
// devices, pending ones included.
func (a *api) listApprovers(w http.ResponseWriter, r *http.Request) *Error {
	devices, err := a.Store.ApproverDevices(r.Context(), r.URL.Query().Get("subject"))
	if err != nil {
		return a.internalError(r, err)
	}
	out := make([]map[string]any, 0, len(devices))
	for _, d := range devices {
		status := "pending"
		if d.ActivatedAt != nil {
			status = "active"
		}
		out = append(out, map[string]any{
			"jkt": d.JKT, "subject": d.Subject, "name": d.Name, "created_at": d.CreatedAt,
			"activated_at": d.ActivatedAt, "status": status,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"approvers": out})
	return nil
}

// activateApprover serves POST /v1/approvers/{jkt}:activate. A device
// that enrolled with the user's ID token alone approves nothing until an
// administrator, having checked with the user, activates it.
func (a *api) activateApprover(w http.ResponseWriter, r *http.Request) *Error {
	jkt := mux.Vars(r)["jkt"]
	rec := a.record(r.Context(), "approvers.activate", jkt)
	rec.Event, rec.Decision, rec.Reason = audit.EventStepUp, audit.DecisionApproved, "approver_activated"
	rec.StepUpMethod = "push"
	err := a.Store.ActivateApprover(r.Context(), jkt, a.Now().UTC(), rec)
	if errors.Is(err, storage.ErrNotFound) {
		return apiError(http.StatusNotFound, "not_found", "No approver device has this thumbprint; GET /v1/approvers lists them.")
	}
	if err != nil {
		return a.internalError(r, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"jkt": jkt, "status": "active"})
	return nil
}

// TraceToken is a token in a trace answer: its record without the
// hash of the token and the stored claims.
type TraceToken struct {
	TokenID   string     `json:"token_id"`
	ClientID  string     `json:"client_id"`
	Subject   string     `json:"subject"`
	Scope     string     `json:"scope"`
	Audience  string     `json:"audience"`
	DeviceJKT string     `json:"device_jkt"`
	Parent    string     `json:"parent,omitempty"`
	SessionID string     `json:"session_id,omitempty"`
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// traceAudit serves GET /v1/audit/trace/{id}: everything the log holds
// about one action, found by a token's jti or a request id.
func (a *api) traceAudit(w http.ResponseWriter, r *http.Request) *Error {
	id, err := url.PathUnescape(mux.Vars(r)["id"])
	if err != nil || id == "" || len(id) > 255 {
		return badRequest("The path must end with a token's jti or a request id.")
	}
	t, err := a.Store.Trace(r.Context(), id)
	if err != nil {
		return a.internalError(r, err)
	}
	if len(t.Tokens) == 0 && len(t.Records) == 0 {
		return apiError(http.StatusNotFound, "not_found",
			"No token or audit record has this id; pass a token's jti or the X-Request-Id of a request.")
	}
	tokens := make([]TraceToken, 0, len(t.Tokens))
	for _, tok := range t.Tokens {
		tokens = append(tokens, TraceToken{
			TokenID: tok.TokenID, ClientID: tok.ClientID, Subject: tok.Subject, Scope: tok.Scope,
			Audience: tok.Audience, DeviceJKT: tok.DeviceJKT, Parent: tok.Parent, SessionID: tok.SessionID,
			IssuedAt: tok.IssuedAt, ExpiresAt: tok.ExpiresAt, RevokedAt: tok.RevokedAt,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": tokens, "records": nonNil(t.Records)})
	return nil
}

// auditFilter reads the audit search parameters. Records come newest
// first, 100 at a time; before pages back.
func auditFilter(q url.Values) (storage.AuditFilter, *Error) {
	f := storage.AuditFilter{
		TokenID: q.Get("token_id"), RequestID: q.Get("request_id"), ClientID: q.Get("client_id"),
		Subject: q.Get("subject"), Action: q.Get("action"), Event: q.Get("event"), Newest: true, Limit: 100,
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return f, badRequest("limit must be a number from 1 to 1000.")
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return f, badRequest("before must be the positive id of an audit record.")
		}
		f.AfterID = n
	}
	return f, nil
}

func (a *api) listDevices(w http.ResponseWriter, r *http.Request) *Error {
	subject := r.URL.Query().Get("subject")
	if subject == "" {
		return badRequest("Name the user: GET /v1/devices?subject=<subject_prefix>|<sub>.")
	}
	devices, err := a.Store.Devices(r.Context(), subject)
	if err != nil {
		return a.internalError(r, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": nonNil(devices)})
	return nil
}

// revokeDevice serves POST /v1/devices/{jkt}:revoke, which revokes the
// device key and every live token bound to it.
func (a *api) revokeDevice(w http.ResponseWriter, r *http.Request) *Error {
	raw, err := url.PathUnescape(mux.Vars(r)["jkt"])
	jkt, ok := strings.CutSuffix(raw, ":revoke")
	if err != nil || !ok || jkt == "" {
		return apiError(http.StatusNotFound, "not_found", "Revoke a device with POST /v1/devices/{jkt}:revoke.")
	}
	rec := a.record(r.Context(), "devices.revoke", jkt)
	rec.DeviceJKT, rec.Decision, rec.Reason = jkt, audit.DecisionRevoked, "admin_request"
	rec.Event = audit.EventDeviceRevocation
	n, err := a.Store.RevokeDevice(r.Context(), jkt, a.Now().UTC(), rec)
	if errors.Is(err, storage.ErrNotFound) {
		return apiError(http.StatusNotFound, "not_found", fmt.Sprintf("No device with the key thumbprint %s is enrolled.", quote(jkt)))
	}
	if err != nil {
		return a.internalError(r, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked_tokens": n})
	return nil
}

// sweepLater repeats a kill switch's revocation after SweepDelay. Other
// servers keep issuing tokens until their next poll sees the switch, and
// the first revocation cannot reach those; the second one does, and is
// recorded with its own count.
func (a *api) sweepLater(f storage.TokenFilter, rec audit.Record) {
	go func() {
		time.Sleep(a.SweepDelay)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rec.Time = a.Now().UTC()
		rec.Reason = "kill_switch_sweep"
		rec.Detail = "Revoked the tokens other servers issued before they saw the kill switch."
		n, err := a.Store.RevokeTokensWhere(ctx, f, rec.Time, rec)
		if err != nil {
			a.Logger.Error("kill switch sweep failed", "request_id", rec.RequestID, "target", rec.Target, "error", err)
			return
		}
		a.Logger.Info("kill switch sweep", "request_id", rec.RequestID, "target", rec.Target, "tokens_ended", n)
	}()
}
