package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func testMigrateTwice(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}

	var applied int64
	if err := s.db.Table(migrationTable).Count(&applied).Error; err != nil {
		t.Fatalf("count applied migrations: %v", err)
	}
	if want := int64(len(migrations())); applied != want {
		t.Errorf("applied migrations = %d, want %d", applied, want)
	}
	for _, table := range []string{"signing_keys", "settings", "access_tokens", "proof_claims", "audit_records"} {
		if !s.db.Migrator().HasTable(table) {
			t.Errorf("table %s missing after Migrate", table)
		}
	}
}

func testSigningKeys(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	first := SigningKey{
		KID:           "k1",
		Algorithm:     "ES256",
		PublicJWK:     []byte(`{"kty":"EC","kid":"k1"}`),
		PrivateSealed: []byte{0x01, 0x02, 0x03},
		CreatedAt:     testClock,
	}
	second := SigningKey{
		KID:           "k2",
		Algorithm:     "EdDSA",
		PublicJWK:     []byte(`{"kty":"OKP","kid":"k2"}`),
		PrivateSealed: []byte{0x04, 0x05},
		CreatedAt:     testClock.Add(time.Hour),
	}
	if err := s.AddSigningKey(ctx, first, first.CreatedAt); err != nil {
		t.Fatalf("AddSigningKey(k1): %v", err)
	}
	rotatedAt := second.CreatedAt
	if err := s.AddSigningKey(ctx, second, rotatedAt); err != nil {
		t.Fatalf("AddSigningKey(k2): %v", err)
	}

	keys, err := s.SigningKeys(ctx)
	if err != nil {
		t.Fatalf("SigningKeys: %v", err)
	}
	if len(keys) != 2 {
		t.Fatalf("SigningKeys returned %d keys, want 2", len(keys))
	}
	if keys[0].KID != "k2" || keys[1].KID != "k1" {
		t.Errorf("SigningKeys order = [%s %s], want [k2 k1]", keys[0].KID, keys[1].KID)
	}

	cur, old := keys[0], keys[1]
	if cur.RetiredAt != nil {
		t.Errorf("current key RetiredAt = %v, want nil", *cur.RetiredAt)
	}
	if old.RetiredAt == nil {
		t.Fatalf("old key RetiredAt = nil, want %v", stored(rotatedAt))
	}
	if !old.RetiredAt.Equal(stored(rotatedAt)) {
		t.Errorf("old key RetiredAt = %v, want %v", *old.RetiredAt, stored(rotatedAt))
	}
	if cur.Algorithm != "EdDSA" {
		t.Errorf("Algorithm = %q, want EdDSA", cur.Algorithm)
	}
	if !bytes.Equal(cur.PublicJWK, second.PublicJWK) {
		t.Errorf("PublicJWK = %s, want %s", cur.PublicJWK, second.PublicJWK)
	}
	if !bytes.Equal(cur.PrivateSealed, second.PrivateSealed) {
		t.Errorf("PrivateSealed = %x, want %x", cur.PrivateSealed, second.PrivateSealed)
	}
	if cur.CreatedAt != stored(second.CreatedAt) {
		t.Errorf("CreatedAt = %v, want %v", cur.CreatedAt, stored(second.CreatedAt))
	}

	if err := s.AddSigningKey(ctx, SigningKey{KID: "k2", Algorithm: "ES256", PublicJWK: []byte("{}"), PrivateSealed: []byte{1}}, rotatedAt.Add(time.Hour)); err == nil {
		t.Fatal("AddSigningKey with a duplicate KID succeeded, want an error")
	}
	keys, err = s.SigningKeys(ctx)
	if err != nil {
		t.Fatalf("SigningKeys: %v", err)
	}
	if keys[0].RetiredAt != nil {
		t.Error("failed AddSigningKey retired the current key, want its transaction rolled back")
	}
}

func testDeleteRetiredSigningKeys(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	for i := range 3 {
		at := testClock.Add(time.Duration(i) * time.Hour)
		k := SigningKey{
			KID:           fmt.Sprintf("k%d", i),
			Algorithm:     "ES256",
			PublicJWK:     []byte("{}"),
			PrivateSealed: []byte{byte(i)},
			CreatedAt:     at,
		}
		if err := s.AddSigningKey(ctx, k, at); err != nil {
			t.Fatalf("AddSigningKey(%s): %v", k.KID, err)
		}
	}
	// k0 was retired at +1h, k1 at +2h, and k2 is current.

	tests := []struct {
		name     string
		before   time.Time
		want     int64
		wantKIDs []string
	}{
		{"cutoff at the first retirement deletes nothing", testClock.Add(time.Hour), 0, []string{"k2", "k1", "k0"}},
		{"cutoff after the first retirement deletes one", testClock.Add(90 * time.Minute), 1, []string{"k2", "k1"}},
		{"far future cutoff keeps the current key", testClock.Add(1000 * time.Hour), 1, []string{"k2"}},
	}
	for _, tc := range tests {
		got, err := s.DeleteSigningKeysRetiredBefore(ctx, tc.before)
		if err != nil {
			t.Fatalf("%s: DeleteSigningKeysRetiredBefore: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: deleted %d, want %d", tc.name, got, tc.want)
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil {
			t.Fatalf("%s: SigningKeys: %v", tc.name, err)
		}
		var kids []string
		for _, k := range keys {
			kids = append(kids, k.KID)
		}
		if fmt.Sprint(kids) != fmt.Sprint(tc.wantKIDs) {
			t.Errorf("%s: remaining keys = %v, want %v", tc.name, kids, tc.wantKIDs)
		}
	}
}

func testSettings(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	if _, err := s.Setting(ctx, "nonce_secret"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Setting of a missing key: error = %v, want ErrNotFound", err)
	}

	got, err := s.SetSettingIfAbsent(ctx, "nonce_secret", []byte("first"))
	if err != nil {
		t.Fatalf("SetSettingIfAbsent(first): %v", err)
	}
	if string(got) != "first" {
		t.Errorf("SetSettingIfAbsent(first) = %q, want %q", got, "first")
	}

	got, err = s.SetSettingIfAbsent(ctx, "nonce_secret", []byte("second"))
	if err != nil {
		t.Fatalf("SetSettingIfAbsent(second): %v", err)
	}
	if string(got) != "first" {
		t.Errorf("SetSettingIfAbsent on a present key = %q, want the stored %q", got, "first")
	}

	got, err = s.Setting(ctx, "nonce_secret")
	if err != nil {
		t.Fatalf("Setting: %v", err)
	}
	if string(got) != "first" {
		t.Errorf("Setting = %q, want %q", got, "first")
	}
}

func testSettingRace(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	const racers = 8
	values := make([][]byte, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			values[i], errs[i] = s.SetSettingIfAbsent(ctx, "secret", []byte(fmt.Sprintf("value-%d", i)))
		})
	}
	wg.Wait()

	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("racer %d: SetSettingIfAbsent: %v", i, errs[i])
		}
		if !bytes.Equal(values[i], values[0]) {
			t.Errorf("racer %d got %q, racer 0 got %q, want one value for all", i, values[i], values[0])
		}
	}
}
