package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// Store is the storage the admin API needs.
type Store interface {
	authz.LiveStore
	CatalogVersion(ctx context.Context, number int64) (*storage.CatalogVersion, error)
	CatalogVersions(ctx context.Context, before int64, limit int) ([]storage.CatalogVersion, error)
	Client(ctx context.Context, id string) (*storage.ClientRecord, error)
	UpdateClient(ctx context.Context, c storage.ClientRecord, rec audit.Record) error
	RevokeTokensWhere(ctx context.Context, f storage.TokenFilter, at time.Time, rec audit.Record) (int64, error)
	AppendAudit(ctx context.Context, rec audit.Record) error
	AuditRecords(ctx context.Context, f storage.AuditFilter) ([]audit.Record, error)
	Trace(ctx context.Context, id string) (*storage.Trace, error)
	ApproverDevices(ctx context.Context, subject string) ([]storage.ApproverDevice, error)
	ActivateApprover(ctx context.Context, jkt string, at time.Time, rec audit.Record) error
	Devices(ctx context.Context, subject string) ([]storage.Device, error)
	RevokeDevice(ctx context.Context, jkt string, at time.Time, rec audit.Record) (int64, error)
}

// Options configure the admin handler. Server and Store are required.
type Options struct {
	Server *authz.Server
	Store  Store
	Logger *slog.Logger
	Now    func() time.Time
	// MaxBodyBytes limits request bodies; 0 means 64 KiB.
	MaxBodyBytes int64
	// SweepDelay is how long after a kill switch with revoke_tokens its
	// revocation runs once more, to end the tokens other servers issued
	// before their next poll saw the switch. 0 means 3s; set it to about
	// twice admin.poll_interval.
	SweepDelay time.Duration
}

type api struct {
	Options
	refusals *rateLimited
}

// Handler returns the admin API under /v1/ and the console under
// /console/.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.SweepDelay <= 0 {
		o.SweepDelay = 3 * time.Second
	}
	a := &api{Options: o, refusals: &rateLimited{logger: o.Logger}}

	r := mux.NewRouter().UseEncodedPath()
	r.Use(a.common)
	v1 := r.PathPrefix("/v1").Subrouter()
	a.catalogRoutes(v1)
	a.clientRoutes(v1)
	a.operationRoutes(v1)
	newConsole(a).routes(r)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, apiError(http.StatusNotFound, "not_found",
			"No admin endpoint at this path; docs/admin-api.md lists them."))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, apiError(http.StatusMethodNotAllowed, "invalid_request",
			"This endpoint does not accept "+r.Method+"."))
	})
	return r
}

// common gives every request an id and a body limit and sets the headers every response carries.
func (a *api) common(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := oauth.NewRequestID()
		h := w.Header()
		h.Set("X-Request-Id", id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, a.MaxBodyBytes)
		next.ServeHTTP(w, r.WithContext(oauth.WithRequestID(r.Context(), id)))
	})
}

// Error is an admin API error response.
type Error struct {
	Status      int
	Code        string
	Description string
	// Problems lists every invalid field of a rejected catalog or client.
	Problems []string
	Header   http.Header
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func apiError(status int, code, description string) *Error {
	return &Error{Status: status, Code: code, Description: description}
}

func badRequest(description string) *Error {
	return apiError(http.StatusBadRequest, "invalid_request", description)
}

// writeError writes e as JSON. The description keeps to the characters
// RFC 6749 §5.2 allows, as the token endpoint's do.
func writeError(w http.ResponseWriter, e *Error) {
	for k, vs := range e.Header {
		w.Header()[k] = vs
	}
	body := map[string]any{"error": e.Code, "error_description": cleanText(e.Description)}
	if len(e.Problems) > 0 {
		problems := make([]string, len(e.Problems))
		for i, p := range e.Problems {
			problems[i] = cleanText(p)
		}
		body["problems"] = problems
	}
	writeJSON(w, e.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// cleanText replaces the characters RFC 6749 §5.2 keeps out of
// error_description: anything outside printable ASCII, '"' and '\'.
func cleanText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
}

// internalError logs err with the request id and returns a server_error
// that carries no detail.
func (a *api) internalError(r *http.Request, err error) *Error {
	a.Logger.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path,
		"request_id", oauth.RequestID(r.Context()), "error", err)
	return apiError(http.StatusInternalServerError, "server_error",
		"The server failed to complete the request. Retry later; the failure was logged.")
}

// decodeJSON reads a JSON body into v, rejecting unknown members, so a
// misspelt field cannot silently do nothing.
func decodeJSON(r *http.Request, v any) *Error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return apiError(http.StatusUnsupportedMediaType, "invalid_request",
			"The request body must be JSON with Content-Type application/json.")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return apiError(http.StatusRequestEntityTooLarge, "invalid_request",
				fmt.Sprintf("The request body is larger than %d bytes.", tooLarge.Limit))
		}
		return badRequest("The request body is not valid JSON for this endpoint: " + err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("The request body holds more than one JSON value; send one object.")
	}
	return nil
}

// rateLimited logs at most one line a second, counting the dropped ones,
// so callers without a valid token cannot flood the log.
type rateLimited struct {
	logger  *slog.Logger
	mu      sync.Mutex
	last    time.Time
	dropped int
}

func (l *rateLimited) log(ctx context.Context, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.last) < time.Second {
		l.dropped++
		l.mu.Unlock()
		return
	}
	dropped := l.dropped
	l.last, l.dropped = now, 0
	l.mu.Unlock()
	l.logger.InfoContext(ctx, msg, append(args, "similar_lines_dropped", dropped)...)
}
