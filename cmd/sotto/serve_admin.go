package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/config"
)

// startAdmin starts the admin listener when admin_listen is set, and
// returns its server, or nil when it is off.
func startAdmin(cfg *config.Config, srv *authz.Server, logger *slog.Logger) (*http.Server, error) {
	if cfg.AdminListen == "" {
		return nil, nil
	}
	token, err := cfg.Metrics.ReadMetricsToken()
	if err != nil {
		return nil, fmt.Errorf("read metrics.bearer_token_file: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		return nil, fmt.Errorf("listen on admin_listen %s: %w (set admin_listen to a free address, or leave it empty)", cfg.AdminListen, err)
	}
	hs := authz.NewAdminHTTPServer(cfg, srv.AdminHandler(token), logger)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin listener stopped", "address", ln.Addr().String(), "error", err)
		}
	}()
	logger.Info("admin listener started", "address", ln.Addr().String(), "metrics_token", token != "")
	return hs, nil
}

// auditHousekeeping signs a checkpoint and deletes the records past their
// retention every audit.checkpoint_interval. Replicas may all run it: a
// checkpoint of an unchanged head is not written twice, and each prune
// transaction locks the chain head.
func (a *app) auditHousekeeping(ctx context.Context, logger *slog.Logger) {
	tick := time.NewTicker(time.Duration(a.cfg.Audit.CheckpointInterval))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		res, err := a.pruneAudit(ctx)
		if err != nil && ctx.Err() == nil {
			logger.Error("audit checkpoint or retention run failed; the next run retries", "error", err)
			continue
		}
		if res.Deleted > 0 {
			logger.Info("audit retention run finished", "deleted", res.Deleted, "checkpoints", res.Checkpoints)
		}
	}
}
