package connector

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// NonceSource issues and checks the DPoP nonces of RFC 9449, Section 9.
type NonceSource interface {
	// Nonce returns a nonce for the client's next proof.
	Nonce(now time.Time) (string, error)

	// Valid reports whether nonce is one that the source issued and still
	// accepts.
	Valid(nonce string, now time.Time) bool
}

// HMACNonces is a stateless NonceSource. A nonce is a time slot number and
// an HMAC-SHA256 of it, so replicas that share the key accept each other's
// nonces without shared state. Nonces of the current and the previous slot
// are valid, so a nonce lives between one and two slots.
type HMACNonces struct {
	key  []byte
	slot time.Duration
}

// NewHMACNonces returns nonces keyed by key, which must be at least 32
// random bytes, with time slots of the given length.
func NewHMACNonces(key []byte, slot time.Duration) (*HMACNonces, error) {
	if len(key) < 32 {
		return nil, errors.New("connector: the nonce key must be at least 32 bytes")
	}
	if slot < time.Second {
		return nil, errors.New("connector: the nonce slot must be at least one second")
	}
	return &HMACNonces{key: append([]byte(nil), key...), slot: slot}, nil
}

// Nonce implements NonceSource.
func (n *HMACNonces) Nonce(now time.Time) (string, error) {
	return n.encode(n.slotOf(now)), nil
}

// Valid implements NonceSource.
func (n *HMACNonces) Valid(nonce string, now time.Time) bool {
	current := n.slotOf(now)
	return hmac.Equal([]byte(nonce), []byte(n.encode(current))) ||
		hmac.Equal([]byte(nonce), []byte(n.encode(current-1)))
}

func (n *HMACNonces) slotOf(now time.Time) int64 {
	return now.UnixNano() / int64(n.slot)
}

func (n *HMACNonces) encode(slot int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(slot))
	mac := hmac.New(sha256.New, n.key)
	mac.Write([]byte("sotto connector DPoP nonce\x00"))
	mac.Write(msg[:])
	// RFC 9449, Section 8.1: a nonce is a NQCHAR string; base64url is one.
	return base64.RawURLEncoding.EncodeToString(append(msg[:], mac.Sum(nil)[:16]...))
}
