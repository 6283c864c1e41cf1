package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/storage"
)

func runMigrate(ctx context.Context, args []string, stderr io.Writer) error {
	path, err := commonFlags("migrate", args, stderr, nil)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	store, err := storage.Open(ctx, storage.Config{
		Driver: cfg.Storage.Driver, DSN: cfg.Storage.DSN, Synchronous: cfg.Storage.Synchronous, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate storage: %w", err)
	}
	logger.Info("migrations applied", "storage_driver", cfg.Storage.Driver)
	return nil
}

func runKeysRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, err := commonFlags("keys rotate", args, stderr, nil)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	a, err := openApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.close()
	previous := a.keys.CurrentKeyID()
	kid, err := a.keys.Rotate(ctx)
	if err != nil {
		return fmt.Errorf("rotate signing key: %w", err)
	}
	fmt.Fprintf(stdout, "new signing key %s is in the JWKS now and signs tokens from %s on\n",
		kid, time.Now().Add(keyActivation).UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "key %s signs until then and stays in the JWKS for %s\n", previous, keyRetention(cfg))
	return nil
}
