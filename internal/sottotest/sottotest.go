// Package sottotest assembles a real Sotto server for the tests of other
// packages: configuration loaded from files, SQLite storage migrated,
// signing keys loaded, the authorization server built. Callers serve its
// handler on a listener of their own, since each test binds the issuer to
// its own address.
package sottotest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/storage"
)

// ExampleFiles are the files of examples/ a test server is configured
// from.
var ExampleFiles = []string{"sotto.yaml", "clients.yaml", "catalog.yaml", "idp.jwks.json"}

// CopyExamples copies ExampleFiles from the examples folder into a new
// temporary folder and returns it.
func CopyExamples(t testing.TB, examples string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range ExampleFiles {
		b, err := os.ReadFile(filepath.Join(examples, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Options adjust the server. Zero values mean a discarded log and the
// real clock.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
}

// Instance is an assembled server and what it was built from.
type Instance struct {
	Config *config.Config
	Store  *storage.Store
	Keys   *authz.Keyring
	Server *authz.Server
}

// Open loads the configuration at configPath (with the SOTTO_ variables
// the caller set), opens and migrates its SQLite database, loads the
// key-encryption key and the signing keys, and builds the server. The
// caller closes Store, and Server when it uses step-up.
func Open(t testing.TB, configPath string, o Options) *Instance {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	store, err := storage.Open(ctx, storage.Config{
		Driver: storage.DriverSQLite, DSN: cfg.Storage.DSN, Synchronous: cfg.Storage.Synchronous, Logger: o.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		store.Close()
		t.Fatal(err)
	}
	kek, _, err := authz.LoadKEK("", cfg.Keys.EncryptionKeyFile)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	keys, err := authz.NewKeyring(ctx, store, kek, authz.KeyringOptions{Algorithm: cfg.Tokens.SigningAlg, Retention: time.Hour})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	srv, err := authz.New(ctx, cfg, store, keys, authz.Options{Logger: o.Logger, Now: o.Now})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	return &Instance{Config: cfg, Store: store, Keys: keys, Server: srv}
}
