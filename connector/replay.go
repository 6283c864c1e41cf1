package connector

import (
	"context"
	"errors"
	"sync"
	"time"
)

// defaultReplayEntries bounds the default in-memory replay cache. With the
// 60-second proof window it allows about 1,600 requests per second before
// the cache fills.
const defaultReplayEntries = 100_000

// ErrReplayCacheFull is returned by a MemoryReplayCache whose entries are
// all unexpired. The request is then rejected as the connector's failure,
// so a full cache never lets a replay through.
var ErrReplayCacheFull = errors.New("connector: replay cache is full")

// ReplayCache records the DPoP proofs the connector has accepted
// (RFC 9449, Section 11.1).
type ReplayCache interface {
	// Claim records the pair (jkt, jti) until the given time. It returns
	// true when the pair was not recorded yet, and false for a replay.
	Claim(ctx context.Context, jkt, jti string, until time.Time) (fresh bool, err error)
}

// MemoryReplayCache is a ReplayCache for one process. Entries expire at
// their until time, and the cache holds at most a fixed number of them.
type MemoryReplayCache struct {
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[string]time.Time
}

// NewMemoryReplayCache returns a cache that holds at most max unexpired
// entries.
func NewMemoryReplayCache(max int) *MemoryReplayCache {
	return &MemoryReplayCache{max: max, now: time.Now, entries: make(map[string]time.Time)}
}

// Claim implements ReplayCache.
func (c *MemoryReplayCache) Claim(_ context.Context, jkt, jti string, until time.Time) (bool, error) {
	key := jkt + " " + jti
	now := c.now()

	c.mu.Lock()
	defer c.mu.Unlock()

	if expiry, ok := c.entries[key]; ok && now.Before(expiry) {
		return false, nil
	}
	if len(c.entries) >= c.max {
		for k, expiry := range c.entries {
			if !now.Before(expiry) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			return false, ErrReplayCacheFull
		}
	}
	c.entries[key] = until
	return true, nil
}
