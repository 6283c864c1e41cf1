package storage

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
)

func testAccessTokenLookups(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	w := issuedWrite(1)
	commit(t, s, w)

	want := *w.Token
	want.IssuedAt = stored(want.IssuedAt)
	want.ExpiresAt = stored(want.ExpiresAt)

	bySig, err := s.AccessToken(ctx, want.TokenID, want.Signature)
	if err != nil {
		t.Fatalf("AccessToken: %v", err)
	}
	if !reflect.DeepEqual(*bySig, want) {
		t.Errorf("AccessToken = %+v, want %+v", *bySig, want)
	}

	byID, err := s.AccessTokenByID(ctx, want.TokenID)
	if err != nil {
		t.Fatalf("AccessTokenByID: %v", err)
	}
	if !reflect.DeepEqual(*byID, want) {
		t.Errorf("AccessTokenByID = %+v, want %+v", *byID, want)
	}

	if _, err := s.AccessToken(ctx, want.TokenID, "00"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AccessToken of an unknown signature: error = %v, want ErrNotFound", err)
	}
	if _, err := s.AccessTokenByID(ctx, "unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AccessTokenByID of an unknown ID: error = %v, want ErrNotFound", err)
	}
}

func testRevoke(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	// Tokens 0 and 1 belong to one grant family, token 2 to another.
	for i := range 3 {
		w := issuedWrite(i)
		if i < 2 {
			w.Token.RequestID = "family-a"
		}
		commit(t, s, w)
	}

	revokedAt := testClock.Add(time.Minute)
	rec := audit.Record{
		Time:      revokedAt,
		RequestID: "family-a",
		Event:     audit.EventRevocation,
		Decision:  audit.DecisionRevoked,
		Count:     99, // overwritten with the real count
	}
	n, err := s.RevokeAccessTokens(ctx, "family-a", revokedAt, rec)
	if err != nil {
		t.Fatalf("RevokeAccessTokens: %v", err)
	}
	if n != 2 {
		t.Errorf("first RevokeAccessTokens = %d, want 2", n)
	}

	for i, wantRevoked := range []bool{true, true, false} {
		tok, err := s.AccessToken(ctx, testToken(i).TokenID, testToken(i).Signature)
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		switch {
		case wantRevoked && tok.RevokedAt == nil:
			t.Errorf("token %d RevokedAt = nil, want %v", i, stored(revokedAt))
		case wantRevoked && !tok.RevokedAt.Equal(stored(revokedAt)):
			t.Errorf("token %d RevokedAt = %v, want %v", i, *tok.RevokedAt, stored(revokedAt))
		case !wantRevoked && tok.RevokedAt != nil:
			t.Errorf("token %d of another family RevokedAt = %v, want nil", i, *tok.RevokedAt)
		}
	}

	n, err = s.RevokeAccessTokens(ctx, "family-a", revokedAt.Add(time.Minute), rec)
	if err != nil {
		t.Fatalf("second RevokeAccessTokens: %v", err)
	}
	if n != 0 {
		t.Errorf("second RevokeAccessTokens = %d, want 0", n)
	}

	recs, err := s.AuditRecords(ctx, AuditFilter{RequestID: "family-a"})
	if err != nil {
		t.Fatalf("AuditRecords: %v", err)
	}
	var counts []int
	for _, r := range recs {
		if r.Event == audit.EventRevocation {
			counts = append(counts, r.Count)
		}
	}
	if !reflect.DeepEqual(counts, []int{2, 0}) {
		t.Errorf("revocation audit counts = %v, want [2 0]", counts)
	}
}

func testAuditFilter(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	full := audit.Record{
		ID:             12345, // ignored: the database assigns IDs
		Time:           testClock,
		RequestID:      "request-a",
		Event:          audit.EventExchange,
		ClientID:       "assistant",
		Subject:        "alice@example.com",
		SubjectIssuer:  "https://idp.example.com",
		DeviceJKT:      "device-jkt",
		Action:         "incident.create",
		Audience:       "https://itsm.example.com",
		CatalogEntry:   "incident.create",
		CatalogVersion: "v7",
		Decision:       audit.DecisionIssued,
		Reason:         "",
		Detail:         "issued for five minutes",
		TokenID:        "jti-a",
		TokenExpiresAt: testClock.Add(5 * time.Minute),
		Count:          0,
	}
	if err := s.AppendAudit(ctx, full); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	for _, req := range []string{"request-b", "request-a", "request-b"} {
		if err := s.AppendAudit(ctx, testRecord(req, audit.DecisionRefused)); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}

	all := allAudit(t, s)
	if len(all) != 4 {
		t.Fatalf("AuditRecords returned %d records, want 4", len(all))
	}
	want := full
	want.ID = all[0].ID
	want.Time = stored(full.Time)
	want.TokenExpiresAt = stored(full.TokenExpiresAt)
	want.Hash = all[0].Hash
	if !reflect.DeepEqual(all[0], want) {
		t.Errorf("stored record = %+v, want %+v", all[0], want)
	}
	if all[0].ID == full.ID {
		t.Errorf("stored record ID = %d, want one assigned by the database", all[0].ID)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Errorf("record %d ID %d not above record %d ID %d", i, all[i].ID, i-1, all[i-1].ID)
		}
	}
	if !all[1].TokenExpiresAt.IsZero() {
		t.Errorf("TokenExpiresAt of a record without one = %v, want zero", all[1].TokenExpiresAt)
	}

	tests := []struct {
		name    string
		filter  AuditFilter
		wantIDs []int64
	}{
		{"no filter returns all", AuditFilter{}, []int64{all[0].ID, all[1].ID, all[2].ID, all[3].ID}},
		{"after an ID skips up to it", AuditFilter{AfterID: all[1].ID}, []int64{all[2].ID, all[3].ID}},
		{"limit returns the first records", AuditFilter{Limit: 2}, []int64{all[0].ID, all[1].ID}},
		{"request ID selects its records", AuditFilter{RequestID: "request-b"}, []int64{all[1].ID, all[3].ID}},
		{"token ID selects its records", AuditFilter{TokenID: "jti-a"}, []int64{all[0].ID}},
		{"filters combine", AuditFilter{RequestID: "request-a", AfterID: all[0].ID}, []int64{all[2].ID}},
		{"unknown token ID selects nothing", AuditFilter{TokenID: "none"}, nil},
	}
	for _, tc := range tests {
		recs, err := s.AuditRecords(ctx, tc.filter)
		if err != nil {
			t.Fatalf("%s: AuditRecords: %v", tc.name, err)
		}
		var ids []int64
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		if !reflect.DeepEqual(ids, tc.wantIDs) {
			t.Errorf("%s: IDs = %v, want %v", tc.name, ids, tc.wantIDs)
		}
	}

	if _, err := s.AuditRecords(ctx, AuditFilter{Limit: -1}); err == nil {
		t.Error("AuditRecords with a negative limit succeeded, want an error")
	}
}

func testPersistAcrossReopen(t *testing.T, newConfig newConfigFunc) {
	cfg := newConfig(t)
	ctx := context.Background()

	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	w := issuedWrite(1)
	if _, err := s.CommitExchange(ctx, w); err != nil {
		t.Fatalf("CommitExchange: %v", err)
	}
	key := SigningKey{KID: "k1", Algorithm: "ES256", PublicJWK: []byte("{}"), PrivateSealed: []byte{9}}
	if err := s.AddSigningKey(ctx, key, testClock); err != nil {
		t.Fatalf("AddSigningKey: %v", err)
	}
	if _, err := s.SetSettingIfAbsent(ctx, "secret", []byte("kept")); err != nil {
		t.Fatalf("SetSettingIfAbsent: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openStore(t, cfg)
	if _, err := s.AccessToken(ctx, w.Token.TokenID, w.Token.Signature); err != nil {
		t.Errorf("token after reopen: %v", err)
	}
	if recs := allAudit(t, s); len(recs) != 1 {
		t.Errorf("audit records after reopen = %d, want 1", len(recs))
	}
	if keys, err := s.SigningKeys(ctx); err != nil || len(keys) != 1 {
		t.Errorf("signing keys after reopen = %d (error %v), want 1", len(keys), err)
	}
	if v, err := s.Setting(ctx, "secret"); err != nil || string(v) != "kept" {
		t.Errorf("setting after reopen = %q (error %v), want %q", v, err, "kept")
	}
	if res := commit(t, s, w); !res.Replayed {
		t.Error("proof claimed before reopen was not replayed after it")
	}
}
