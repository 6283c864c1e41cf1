package authz

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/internal/oauth"
)

// NewHTTPServer returns an http.Server for h with the configured timeouts
// and header size limit; request bodies are limited by each endpoint.
func NewHTTPServer(cfg *config.Config, h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              cfg.Listen,
		Handler:           h,
		ReadTimeout:       time.Duration(cfg.HTTP.ReadTimeout),
		ReadHeaderTimeout: time.Duration(cfg.HTTP.ReadHeaderTimeout),
		WriteTimeout:      time.Duration(cfg.HTTP.WriteTimeout),
		IdleTimeout:       time.Duration(cfg.HTTP.IdleTimeout),
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// requestContext gives every request an id, limits its body, and sets the
// headers every answer carries.
func (s *Server) requestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := oauth.NewRequestID()
		w.Header().Set("X-Request-Id", id)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.HTTP.MaxBodyBytes)
		next.ServeHTTP(w, r.WithContext(oauth.WithRequestID(r.Context(), id)))
	})
}

// rateLimitedLog logs at most one line per interval and counts the lines
// it dropped, so unauthenticated traffic cannot flood the log.
type rateLimitedLog struct {
	logger   *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	last    time.Time
	dropped int
}

func newRateLimitedLog(logger *slog.Logger, interval time.Duration) *rateLimitedLog {
	return &rateLimitedLog{logger: logger, interval: interval}
}

func (l *rateLimitedLog) Log(ctx context.Context, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.last) < l.interval {
		l.dropped++
		l.mu.Unlock()
		return
	}
	dropped := l.dropped
	l.last, l.dropped = now, 0
	l.mu.Unlock()
	l.logger.InfoContext(ctx, msg, append(args, "similar_lines_dropped", dropped)...)
}
