package storage

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
)

func testCatalogVersions(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	if _, err := s.LatestCatalogVersion(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LatestCatalogVersion of an empty database: %v, want ErrNotFound", err)
	}
	v := CatalogVersion{CreatedAt: testClock, ClientID: "root", Actions: []byte(`[]`), Diff: []byte(`[]`)}
	rec := audit.Record{Time: testClock, RequestID: "r1", Event: audit.EventAdmin, Decision: audit.DecisionChanged}
	if n, err := s.AddCatalogVersion(ctx, 0, v, rec); err != nil || n != 1 {
		t.Fatalf("first AddCatalogVersion = %d, %v, want 1", n, err)
	}

	// Eight writers based on version 1: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, mismatches := 0, 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.AddCatalogVersion(ctx, 1, v, rec)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrVersionMismatch):
				mismatches++
			default:
				t.Errorf("AddCatalogVersion: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || mismatches != 7 {
		t.Errorf("concurrent writers: %d won and %d got ErrVersionMismatch, want 1 and 7", wins, mismatches)
	}

	catalog, _, err := s.Revisions(ctx)
	if err != nil || catalog != 2 {
		t.Errorf("Revisions catalog = %d, %v, want 2", catalog, err)
	}
	latest, err := s.LatestCatalogVersion(ctx)
	if err != nil || latest.Number != 2 {
		t.Errorf("LatestCatalogVersion = %v, %v, want number 2", latest, err)
	}
	records, err := s.AuditRecords(ctx, AuditFilter{Event: string(audit.EventAdmin)})
	if err != nil || len(records) != 2 {
		t.Errorf("%d admin audit records, %v, want 2: a refused writer writes none", len(records), err)
	}
}

func testClientsImportOnce(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()
	rec := audit.Record{Time: testClock, RequestID: "r", Event: audit.EventAdmin, Decision: audit.DecisionChanged}
	c := ClientRecord{ClientID: "a", Settings: []byte(`{}`), CreatedAt: testClock, UpdatedAt: testClock}

	if ok, err := s.CreateClients(ctx, []ClientRecord{c}, true, rec); err != nil || !ok {
		t.Fatalf("first import = %v, %v, want true", ok, err)
	}
	c.ClientID = "b"
	if ok, err := s.CreateClients(ctx, []ClientRecord{c}, true, rec); err != nil || ok {
		t.Errorf("second import = %v, %v, want false: the table is not empty", ok, err)
	}
	c.ClientID = "a"
	if _, err := s.CreateClients(ctx, []ClientRecord{c}, false, rec); !errors.Is(err, ErrExists) {
		t.Errorf("create of an existing client: %v, want ErrExists", err)
	}
	at := testClock.Add(time.Minute)
	c.DisabledAt = &at
	if err := s.UpdateClient(ctx, c, rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Client(ctx, "a")
	if err != nil || got.DisabledAt == nil || !got.DisabledAt.Equal(dbTime(at)) {
		t.Errorf("Client after disable = %v, %v, want disabled at %s", got, err, at)
	}
	// Refused writes roll their increment back with the rest.
	if _, clients, _ := s.Revisions(ctx); clients != 2 {
		t.Errorf("clients revision %d, want 2 (the import and the update)", clients)
	}
}

func testRevokeWhere(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()
	for i := range 4 {
		w := issuedWrite(i)
		w.Token.Subject = []string{"alice", "alice", "bob", "carol"}[i]
		w.Token.DeviceJKT = []string{"d1", "d2", "d1", "d1"}[i]
		commit(t, s, w)
	}
	rec := audit.Record{Time: testClock, RequestID: "r", Event: audit.EventAdmin, Decision: audit.DecisionRevoked}
	at := testClock.Add(time.Second)
	for _, step := range []struct {
		f    TokenFilter
		want int64
	}{
		{TokenFilter{Subject: "alice", DeviceJKT: "d1"}, 1},
		{TokenFilter{DeviceJKT: "d1"}, 2},
		{TokenFilter{Subject: "alice"}, 1},
		{TokenFilter{Subject: "alice"}, 0},
	} {
		n, err := s.RevokeTokensWhere(ctx, step.f, at, rec)
		if err != nil || n != step.want {
			t.Errorf("RevokeTokensWhere(%+v) = %d, %v, want %d", step.f, n, err, step.want)
		}
	}
	if _, err := s.RevokeTokensWhere(ctx, TokenFilter{}, at, rec); err == nil {
		t.Error("RevokeTokensWhere with an empty filter succeeded, want an error")
	}
}
