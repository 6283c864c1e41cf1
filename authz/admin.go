package authz

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sotto-auth/sotto/config"
)

// Paths of the admin listener, and of readiness on the main listener.
const (
	PathMetrics = "/metrics"
	PathReady   = "/readyz"
)

// readyTimeout bounds the database check of a readiness probe, so a hung
// database fails the probe instead of hanging it.
const readyTimeout = 2 * time.Second

// AdminHandler returns the handler of the admin listener: /metrics, and
// /healthz and /readyz as on the main listener. When token is not empty,
// /metrics requires it as a bearer token (RFC 6750, Section 2.1).
func (s *Server) AdminHandler(token config.Secret) http.Handler {
	mux := http.NewServeMux()
	metrics := promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(s.logger.Handler(), slog.LevelError),
		Timeout:             5 * time.Second,
		MaxRequestsInFlight: 4,
	})
	mux.Handle("GET "+PathMetrics, requireBearer(token, metrics))
	mux.HandleFunc("GET "+PathHealth, s.handleHealth)
	mux.HandleFunc("GET "+PathReady, s.handleReady)
	return s.requestContext(mux)
}

// requireBearer lets a request through only with the bearer token token.
// Both sides are hashed before the constant-time comparison, so the time
// it takes reveals neither the token nor its length.
func requireBearer(token config.Secret, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sotto-metrics"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{
				"error": "invalid_token", "error_description": "Send the scrape token of metrics.bearer_token_file as a bearer token.",
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleReady reports whether the server can serve exchanges: the database
// responds, a signing key is loaded and the catalog has actions. Otherwise
// it responds 503 with the failing checks.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{"database": "ok", "signing_key": "ok", "catalog": "ok"}
	ready := true

	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.logger.ErrorContext(r.Context(), "readiness check failed: database unreachable", "error", err)
		checks["database"], ready = "unreachable", false
	}
	if s.keys == nil || s.keys.CurrentKeyID() == "" {
		checks["signing_key"], ready = "not loaded", false
	}
	if c := s.Catalog(); c == nil || c.Len() == 0 {
		checks["catalog"], ready = "empty", false
	}

	status, code := "ready", http.StatusOK
	if !ready {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
}

// NewAdminHTTPServer returns the http.Server of the admin listener, with
// the timeouts and header limit of the main listener.
func NewAdminHTTPServer(cfg *config.Config, h http.Handler, logger *slog.Logger) *http.Server {
	srv := NewHTTPServer(cfg, h, logger)
	srv.Addr = cfg.AdminListen
	return srv
}
