package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sotto-auth/sotto/admin"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/storage"
)

// startLive imports the configured catalog and clients on the first
// start, makes the stored ones live, and keeps them current by polling
// the database, so a change through any server's admin API reaches this
// one within admin.poll_interval.
func startLive(ctx context.Context, cfg *config.Config, srv *authz.Server, store *storage.Store, logger *slog.Logger) error {
	if err := srv.ImportConfigured(ctx, store); err != nil {
		return err
	}
	if err := srv.Refresh(ctx, store); err != nil {
		return fmt.Errorf("load the stored catalog and clients: %w", err)
	}
	file := exchange.NewCatalog(cfg.Actions, time.Duration(cfg.Tokens.MaxTTL))
	if live := srv.Catalog(); live.Version != file.Version {
		logger.Warn("catalog file differs from the live catalog in the database; run sotto catalog apply --dry-run to see the difference",
			"catalog_file", cfg.CatalogFile, "catalog_number", live.Number)
	}
	go srv.Watch(ctx, store, time.Duration(cfg.Admin.PollInterval))
	return nil
}

// startAdmin serves the admin listener on admin_listen: the admin API
// under /v1/, the console under /console/, and /metrics, /healthz and
// /readyz. It returns a function that shuts the listener down, or nil when
// admin_listen is not set.
func startAdmin(cfg *config.Config, srv *authz.Server, store *storage.Store, logger *slog.Logger) (func(context.Context), error) {
	if cfg.AdminListen == "" {
		return nil, nil
	}
	token, err := cfg.Metrics.ReadMetricsToken()
	if err != nil {
		return nil, fmt.Errorf("read metrics.bearer_token_file: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (set admin_listen in the config file or SOTTO_ADMIN_LISTEN to a free address, or leave it empty)", cfg.AdminListen, err)
	}
	api := admin.Handler(admin.Options{
		Server: srv, Store: store, Logger: logger, MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
	})
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle("/console/", api)
	mux.Handle("/", srv.AdminHandler(token))

	hs := authz.NewAdminHTTPServer(cfg, mux, logger)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin listener ended with an error", "address", ln.Addr().String(), "error", err)
		}
	}()
	logger.Info("admin listener started", "address", ln.Addr().String(), "metrics_token", token != "")
	return func(ctx context.Context) {
		if err := hs.Shutdown(ctx); err != nil {
			logger.Error("admin listener shutdown did not finish in time", "error", err)
		}
	}, nil
}
