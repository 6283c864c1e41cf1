package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/storage"
)

// runServe starts the server and blocks until ctx ends, then shuts down
// gracefully.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	path, err := commonFlags("serve", args, stderr, nil)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	// The server's live heap is small (tens of megabytes), and a token
	// exchange allocates a lot of short-lived garbage, so collecting at
	// 4x the live heap instead of 2x saves CPU for little memory: about a
	// fifth more exchanges a second in docs/benchmarks.md. GOGC, when set,
	// still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	app, err := openApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer app.close()

	srv, err := authz.New(ctx, cfg, app.store, app.keys, authz.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := startLive(ctx, cfg, srv, app.store, logger); err != nil {
		return err
	}
	stopAdmin, err := startAdmin(cfg, srv, app.store, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set listen in the config file or SOTTO_LISTEN, and issuer to match)", cfg.Listen, err)
	}
	httpServer := authz.NewHTTPServer(cfg, srv.Handler(), logger)

	go app.housekeeping(ctx, logger)
	go app.auditHousekeeping(ctx, logger)

	logger.Info("sotto started",
		"address", ln.Addr().String(), "issuer", cfg.Issuer, "storage_driver", cfg.Storage.Driver,
		"clients", len(cfg.Clients), "actions", srv.Catalog().Len(),
		"catalog_version", srv.Catalog().Version, "catalog_number", srv.Catalog().Number, "signing_key", app.keys.CurrentKeyID())

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("sotto stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.HTTP.ShutdownTimeout))
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		logger.Error("shutdown did not finish in time", "error", err)
	}
	if stopAdmin != nil {
		stopAdmin(shutdownCtx)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("serve ended with an error", "error", err)
	}
	logger.Info("sotto stopped")
	return nil
}

// app is the opened storage and keys the commands share.
type app struct {
	cfg   *config.Config
	store *storage.Store
	keys  *authz.Keyring
}

// openApp opens and migrates the store, loads the key-encryption key
// (creating it on first start) and the signing keys (creating the first).
func openApp(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*app, error) {
	store, err := storage.Open(ctx, storage.Config{
		Driver: cfg.Storage.Driver, DSN: cfg.Storage.DSN, Synchronous: cfg.Storage.Synchronous, Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	if err := store.Migrate(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("migrate storage: %w", err)
	}

	kekPath := cfg.Keys.EncryptionKeyFile
	kek, created, err := authz.LoadKEK(string(cfg.Keys.EncryptionKey), kekPath)
	if err != nil {
		store.Close()
		return nil, err
	}
	if created {
		logger.Warn("generated a key-encryption key for the signing keys; back it up, since the signing keys cannot be decrypted without it",
			"path", filepath.Clean(kekPath))
	}

	keys, err := authz.NewKeyring(ctx, store, kek, authz.KeyringOptions{
		Algorithm:  cfg.Tokens.SigningAlg,
		Retention:  keyRetention(cfg),
		Activation: keyActivation,
		Logger:     logger,
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	return &app{cfg: cfg, store: store, keys: keys}, nil
}

// keyRetention is how long a retired signing key stays in the JWKS: it
// keeps signing for the activation delay, then its last token lives for
// the longest token lifetime, and other replicas may notice the rotation
// a reload interval late; five minutes cover clock skew.
func keyRetention(cfg *config.Config) time.Duration {
	return keyActivation + time.Duration(cfg.Tokens.MaxTTL) + keyReloadInterval + 5*time.Minute
}

const (
	// keyReloadInterval is how often a server reads the signing keys again.
	keyReloadInterval = 30 * time.Second
	// keyActivation is how long a new key is in the JWKS before it signs:
	// the JWKS answer's max-age (60 s), a reload interval, and 30 s more.
	keyActivation = 2 * time.Minute
)

func (a *app) close() {
	if err := a.store.Close(); err != nil {
		slog.Default().Error("close storage", "error", err)
	}
}

// housekeeping reloads the signing keys, so a rotation by another process
// takes effect, and deletes expired replay records.
func (a *app) housekeeping(ctx context.Context, logger *slog.Logger) {
	tick := time.NewTicker(keyReloadInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := a.keys.Reload(ctx); err != nil && ctx.Err() == nil {
			logger.Error("reload signing keys", "error", err)
		}
		if _, err := a.store.DeleteExpiredProofClaims(ctx, time.Now()); err != nil && ctx.Err() == nil {
			logger.Error("delete expired DPoP replay records", "error", err)
		}
	}
}
