package devicebind_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/devicebind"
	"github.com/sotto-auth/sotto/storage"
)

// memorySettings is a SettingStore in memory.
type memorySettings struct {
	mu     sync.Mutex
	values map[string][]byte
}

func (m *memorySettings) SetSettingIfAbsent(_ context.Context, key string, value []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.values == nil {
		m.values = map[string][]byte{}
	}
	if v, ok := m.values[key]; ok {
		return v, nil
	}
	m.values[key] = value
	return value, nil
}

func TestNonces(t *testing.T) {
	const lifetime = 5 * time.Minute
	start := time.Date(2026, 12, 18, 10, 0, 0, 0, time.UTC) // a slot boundary
	store := &memorySettings{}

	at := func(t *testing.T, when time.Time) *devicebind.Nonces {
		t.Helper()
		n, err := devicebind.NewNonces(context.Background(), store, lifetime, func() time.Time { return when })
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	issued := at(t, start.Add(time.Minute)).Current()

	tests := []struct {
		name  string
		now   time.Time
		nonce string
		want  bool
	}{
		{"fresh nonce in the same slot", start.Add(4 * time.Minute), issued, true},
		{"previous slot is accepted", start.Add(lifetime + 4*time.Minute), issued, true},
		{"two slots old is refused", start.Add(2*lifetime + time.Second), issued, false},
		{"wrong nonce is refused", start.Add(time.Minute), "AAAA" + issued[4:], false},
		{"empty nonce is refused", start.Add(time.Minute), "", false},
		{"nonce of a future slot is refused", start.Add(-lifetime), issued, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := at(t, tc.now).Valid(tc.nonce); got != tc.want {
				t.Errorf("Valid at %s = %v, want %v", tc.now.Format(time.TimeOnly), got, tc.want)
			}
		})
	}
}

func TestNoncesRotate(t *testing.T) {
	start := time.Date(2026, 12, 18, 10, 0, 0, 0, time.UTC)
	store := &memorySettings{}
	now := start
	n, err := devicebind.NewNonces(context.Background(), store, 4*time.Minute, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	first := n.Current()
	if n.RotatesSoon() {
		t.Error("RotatesSoon at the start of a slot = true, want false")
	}
	now = start.Add(3 * time.Minute)
	if !n.RotatesSoon() {
		t.Error("RotatesSoon in the last quarter = false, want true")
	}
	if n.Current() != first {
		t.Error("Current changed within a slot")
	}
	now = start.Add(4 * time.Minute)
	if n.Current() == first {
		t.Error("Current did not change in the next slot")
	}
}

func TestNoncesDifferentSecrets(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 12, 18, 10, 0, 0, 0, time.UTC) }
	a, err := devicebind.NewNonces(context.Background(), &memorySettings{}, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := devicebind.NewNonces(context.Background(), &memorySettings{}, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if b.Valid(a.Current()) {
		t.Error("a nonce under another secret is valid")
	}
}

// TestNoncesSharedThroughStore checks that two servers on one database,
// as two replicas, accept each other's nonces.
func TestNoncesSharedThroughStore(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "sotto.db")
	open := func() *storage.Store {
		s, err := storage.Open(ctx, storage.Config{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	first, second := open(), open()
	a, err := devicebind.NewNonces(ctx, first, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := devicebind.NewNonces(ctx, second, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Valid(a.Current()) {
		t.Error("replica b rejects the nonce of replica a")
	}
	if !a.Valid(b.Current()) {
		t.Error("replica a rejects the nonce of replica b")
	}
}
