package devicebind

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// NonceSecretSetting is the settings key under which the server keeps the
// secret that DPoP nonces are derived from, shared by every replica.
const NonceSecretSetting = "dpop_nonce_secret"

// DefaultNonceLifetime is the length of a nonce time slot when
// NewNonces gets zero.
const DefaultNonceLifetime = 5 * time.Minute

// nonceSecretBytes is the size of the HMAC-SHA256 key (RFC 2104, Section
// 3: at least the hash output length).
const nonceSecretBytes = 32

// SettingStore stores server-wide values that every replica shares.
type SettingStore interface {
	// SetSettingIfAbsent stores value under key unless key already has
	// one, and returns the stored value.
	SetSettingIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
}

// Nonces issues and checks the server-provided DPoP nonces of RFC 9449,
// Section 8. A nonce is the base64url HMAC-SHA256 of its time slot number
// under a secret shared through the database, so nonces need no per-nonce
// state and every replica accepts the nonces of every other. The nonce of
// the current slot and of the previous one are accepted, so a nonce stays
// valid for at least one full slot after it was handed out.
type Nonces struct {
	secret   []byte
	lifetime time.Duration
	now      func() time.Time
}

// NewNonces loads the shared nonce secret from store, creating it on first
// use, and returns a Nonces with slots of lifetime. A zero lifetime means
// DefaultNonceLifetime; now nil means time.Now.
func NewNonces(ctx context.Context, store SettingStore, lifetime time.Duration, now func() time.Time) (*Nonces, error) {
	if lifetime < 0 {
		return nil, fmt.Errorf("devicebind: nonce lifetime %s is negative", lifetime)
	}
	if lifetime == 0 {
		lifetime = DefaultNonceLifetime
	}
	if now == nil {
		now = time.Now
	}
	candidate := make([]byte, nonceSecretBytes)
	if _, err := rand.Read(candidate); err != nil {
		return nil, fmt.Errorf("devicebind: generate nonce secret: %w", err)
	}
	// Replicas starting together race to insert; all of them get the
	// winner's secret back.
	secret, err := store.SetSettingIfAbsent(ctx, NonceSecretSetting, candidate)
	if err != nil {
		return nil, fmt.Errorf("devicebind: load nonce secret: %w", err)
	}
	if len(secret) < nonceSecretBytes {
		return nil, errors.New("devicebind: stored nonce secret is shorter than 32 bytes")
	}
	return &Nonces{secret: secret, lifetime: lifetime, now: now}, nil
}

// Current returns the nonce of the current time slot, the value to send in
// a DPoP-Nonce header (RFC 9449, Section 8).
func (n *Nonces) Current() string {
	return n.nonce(n.slot(n.now()))
}

// Valid reports whether nonce is the nonce of the current or the previous
// time slot. The comparison takes constant time.
func (n *Nonces) Valid(nonce string) bool {
	slot := n.slot(n.now())
	current := hmac.Equal([]byte(nonce), []byte(n.nonce(slot)))
	previous := hmac.Equal([]byte(nonce), []byte(n.nonce(slot-1)))
	return current || previous
}

// RotatesSoon reports whether the current slot is in its last quarter, so
// a client holding the current nonce should get the next one early
// (RFC 9449, Section 8.2).
func (n *Nonces) RotatesSoon() bool {
	now := n.now()
	elapsed := time.Duration(now.UnixNano() % int64(n.lifetime))
	return elapsed >= n.lifetime-n.lifetime/4
}

func (n *Nonces) slot(t time.Time) int64 {
	return t.UnixNano() / int64(n.lifetime)
}

func (n *Nonces) nonce(slot int64) string {
	mac := hmac.New(sha256.New, n.secret)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(slot))
	mac.Write([]byte("sotto dpop nonce\x00"))
	mac.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
