package authz

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/storage"
)

// TestKeyringRotation checks that a rotated key is published at once but
// signs only after the activation delay, and that the old key leaves the
// JWKS after the retention period.
func TestKeyringRotation(t *testing.T) {
	ctx := context.Background()
	store, err := storage.Open(ctx, storage.Config{DSN: filepath.Join(t.TempDir(), "keys.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	kek := make([]byte, 32)
	keys, err := NewKeyring(ctx, store, kek, KeyringOptions{
		Algorithm: "ES256", Retention: time.Hour, Activation: 2 * time.Minute, Now: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	first := keys.CurrentKeyID()

	now = now.Add(time.Second)
	second, err := keys.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(keys.PublicKeys().Keys); got != 2 {
		t.Errorf("JWKS after rotation has %d keys, want 2", got)
	}
	if got := keys.CurrentKeyID(); got != first {
		t.Errorf("signer right after rotation = %s, want the old key %s until the activation delay passed", got, first)
	}

	now = now.Add(3 * time.Minute)
	if err := keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := keys.CurrentKeyID(); got != second {
		t.Errorf("signer after the activation delay = %s, want the new key %s", got, second)
	}

	now = now.Add(2 * time.Hour)
	if err := keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if set := keys.PublicKeys(); len(set.Keys) != 1 || set.Keys[0].KeyID != second {
		t.Errorf("JWKS after the retention period = %v, want only %s", set.Keys, second)
	}

	wrong := make([]byte, 32)
	wrong[0] = 1
	if _, err := NewKeyring(ctx, store, wrong, KeyringOptions{Algorithm: "ES256", Retention: time.Hour, Now: clock}); err == nil {
		t.Error("keyring opened with another key-encryption key, want an error")
	}
}
