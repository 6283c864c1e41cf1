package admin

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/internal/oauth"
)

// realm is the realm of the admin API's WWW-Authenticate challenges.
const realm = "sotto-admin"

type principalKey struct{}

// callKey marks a call whose handler wrote its own audit record, in the
// transaction of its change.
type callKey struct{}

type call struct {
	operation string
	recorded  bool
}

func principal(ctx context.Context) *authz.AdminPrincipal {
	p, _ := ctx.Value(principalKey{}).(*authz.AdminPrincipal)
	return p
}

func markRecorded(ctx context.Context) {
	if c, ok := ctx.Value(callKey{}).(*call); ok {
		c.recorded = true
	}
}

// require serves h only to a caller whose admin token carries scope
// (RFC 6750 §3.1), and records the call. Writes record themselves with
// the before and after of their change; for any other call this records
// who called which operation and with which status.
func (a *api) require(scope, operation string, h func(http.ResponseWriter, *http.Request) *Error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, e := a.authenticate(r, scope)
		if e != nil {
			writeError(w, e)
			if p != nil {
				a.recordCall(r, p, operation, audit.DecisionRefused, "insufficient_scope", e.Description)
			}
			return
		}
		c := &call{operation: operation}
		ctx := context.WithValue(context.WithValue(r.Context(), principalKey{}, p), callKey{}, c)
		r = r.WithContext(ctx)
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if e := h(rw, r); e != nil {
			writeError(rw, e)
			a.recordCall(r, p, operation, audit.DecisionRefused, e.Code, e.Description)
			return
		}
		if !c.recorded {
			a.recordCall(r, p, operation, "allowed", "", "")
		}
	})
}

// authenticate returns the caller of r if its bearer token is a valid
// admin token with scope. The principal is returned with an
// insufficient_scope error too, so the refusal can be recorded.
func (a *api) authenticate(r *http.Request, scope string) (*authz.AdminPrincipal, *Error) {
	token, e := bearerToken(r)
	if e != nil {
		return nil, e
	}
	p, err := a.Server.VerifyAdminToken(token)
	if err != nil {
		if !errors.Is(err, authz.ErrAdminToken) {
			return nil, a.internalError(r, err)
		}
		a.refusals.log(r.Context(), "admin call refused: invalid token",
			"request_id", oauth.RequestID(r.Context()), "path", r.URL.Path, "reason", err.Error())
		return nil, challenge(http.StatusUnauthorized, "invalid_token",
			"The access token is invalid: "+strings.TrimPrefix(err.Error(), authz.ErrAdminToken.Error()+": ")+
				". Get a new one with the client_credentials grant at the token endpoint.", "")
	}
	if !p.HasScope(scope) {
		return p, challenge(http.StatusForbidden, "insufficient_scope",
			"This endpoint requires the scope "+scope+"; request it with the client_credentials grant, "+
				"after an administrator with sotto:clients added it to the client's admin_scopes.", scope)
	}
	return p, nil
}

// bearerToken returns the token of an Authorization: Bearer header (RFC
// 6750 §2.1). A request without one gets a challenge without an error
// code (RFC 6750 §3.1).
func bearerToken(r *http.Request) (string, *Error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		e := apiError(http.StatusUnauthorized, "invalid_request",
			"The admin API requires an admin access token: send Authorization: Bearer with a token from the client_credentials grant.")
		e.Header = http.Header{"Www-Authenticate": {`Bearer realm="` + realm + `"`}}
		return "", e
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if len(values) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", challenge(http.StatusBadRequest, "invalid_request",
			"Send exactly one Authorization header of the form Bearer <token> (RFC 6750 Section 2.1).", "")
	}
	return token, nil
}

// challenge returns an error with the WWW-Authenticate header of RFC 6750
// §3: the error code, its description and, for insufficient_scope, the
// scope required.
func challenge(status int, code, description, scope string) *Error {
	e := apiError(status, code, description)
	v := `Bearer realm="` + realm + `", error="` + code + `", error_description="` + cleanText(description) + `"`
	if scope != "" {
		v += `, scope="` + scope + `"`
	}
	e.Header = http.Header{"Www-Authenticate": {v}}
	return e
}

// recordCall appends the audit record of an admin call that changed
// nothing. A failure to write it is logged; the answer is already sent.
func (a *api) recordCall(r *http.Request, p *authz.AdminPrincipal, operation string, decision audit.Decision, reason, detail string) {
	rec := audit.Record{
		Time:      a.Now().UTC(),
		RequestID: oauth.RequestID(r.Context()),
		Event:     audit.EventAdmin,
		ClientID:  p.ClientID,
		Operation: operation,
		Target:    targetOf(r),
		Decision:  decision,
		Reason:    reason,
		Detail:    detail,
	}
	if err := a.Store.AppendAudit(r.Context(), rec); err != nil {
		a.Logger.ErrorContext(r.Context(), "failed to write the audit record of an admin call",
			"request_id", rec.RequestID, "client_id", p.ClientID, "operation", operation, "error", err)
	}
}

// targetOf returns the path of r below /v1/, cut to 255 bytes, which names
// what the call was about.
func targetOf(r *http.Request) string {
	t := strings.TrimPrefix(r.URL.EscapedPath(), "/v1/")
	if r.URL.RawQuery != "" {
		t += "?" + r.URL.RawQuery
	}
	if len(t) > 255 {
		t = t[:255]
	}
	return t
}

// record returns the audit record of a change made by the caller of ctx.
func (a *api) record(ctx context.Context, operation, target string) audit.Record {
	p := principal(ctx)
	markRecorded(ctx)
	return audit.Record{
		Time:      a.Now().UTC(),
		RequestID: oauth.RequestID(ctx),
		Event:     audit.EventAdmin,
		ClientID:  p.ClientID,
		Operation: operation,
		Target:    target,
		Decision:  audit.DecisionChanged,
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}
