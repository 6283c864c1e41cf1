package storage

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
)

func testSession() *Session {
	auth := testClock.Add(-time.Minute)
	return &Session{
		ID:            "session-1",
		ClientID:      "assistant",
		Subject:       "sso.example|alice",
		SubjectIssuer: "https://sso.example",
		DeviceJKT:     "device-jkt",
		Groups:        []string{"employees"},
		ACR:           "urn:corp:acr:mfa",
		AMR:           []string{"pwd", "otp"},
		AuthTime:      &auth,
		Parent:        "jti:sso.example|login-1",
		CreatedAt:     testClock,
		RefreshedAt:   testClock,
		ExpiresAt:     testClock.Add(24 * time.Hour),
	}
}

// sessionWrite is the write of generation gen of session-1, with a proof
// of its own.
func sessionWrite(gen int64) SessionWrite {
	tok := testToken(int(100 + gen))
	tok.Audience = "https://sotto.example"
	tok.RequestID = "session-1"
	tok.SessionID = "session-1"
	tok.Parent = fmt.Sprintf("session:session-1/%d", gen)
	return SessionWrite{
		Proof: &ProofClaim{JKT: "device-jkt", JTI: fmt.Sprintf("session-proof-%d", gen), ExpiresAt: testClock.Add(time.Minute)},
		Refresh: RefreshToken{
			Signature:  fmt.Sprintf("%064x", 1000+gen),
			SessionID:  "session-1",
			Generation: gen,
			ClientID:   "assistant",
			DeviceJKT:  "device-jkt",
			IssuedAt:   testClock,
			ExpiresAt:  testClock.Add(time.Hour),
		},
		Token:       *tok,
		Audit:       testRecord("session-1", audit.DecisionIssued),
		ReplayAudit: testRecord("session-1", audit.DecisionRefused),
	}
}

func createTestSession(t *testing.T, s *Store) {
	t.Helper()
	w := sessionWrite(0)
	w.Session = testSession()
	res, err := s.CreateSession(context.Background(), w)
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if res.Replayed {
		t.Fatal("CreateSession reported a replay of a fresh proof")
	}
}

func testSessionCreateAndRead(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()
	createTestSession(t, s)

	got, err := s.Session(ctx, "session-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	want := testSession()
	auth := stored(*want.AuthTime)
	want.AuthTime = &auth
	want.CreatedAt, want.RefreshedAt, want.ExpiresAt = stored(want.CreatedAt), stored(want.RefreshedAt), stored(want.ExpiresAt)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Session = %+v, want %+v", got, want)
	}

	rt, err := s.RefreshToken(ctx, sessionWrite(0).Refresh.Signature)
	if err != nil {
		t.Fatalf("RefreshToken: %v", err)
	}
	if rt.SessionID != "session-1" || rt.DeviceJKT != "device-jkt" || rt.UsedAt != nil {
		t.Errorf("RefreshToken = %+v, want an unused token of session-1 bound to device-jkt", rt)
	}
	tok, err := s.AccessTokenByID(ctx, sessionWrite(0).Token.TokenID)
	if err != nil {
		t.Fatalf("AccessTokenByID: %v", err)
	}
	if tok.SessionID != "session-1" {
		t.Errorf("session access token SessionID = %q, want session-1", tok.SessionID)
	}
	if _, err := s.Session(ctx, "unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session of an unknown id: error = %v, want ErrNotFound", err)
	}
	if _, err := s.RefreshToken(ctx, "00"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RefreshToken of an unknown hash: error = %v, want ErrNotFound", err)
	}

	replay := sessionWrite(0)
	replay.Session = testSession()
	replay.Session.ID = "session-2"
	res, err := s.CreateSession(ctx, replay)
	if err != nil {
		t.Fatalf("CreateSession with a used proof: %v", err)
	}
	if !res.Replayed {
		t.Error("CreateSession with a used proof: Replayed = false, want true")
	}
	if _, err := s.Session(ctx, "session-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("session of a replayed proof: error = %v, want ErrNotFound", err)
	}
}

func testSessionRotateAndReuse(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()
	createTestSession(t, s)
	now := testClock.Add(time.Minute)

	// An action token exchanged from the session, and one that is not.
	child := issuedWrite(7)
	child.Token.SessionID = "session-1"
	commit(t, s, child)
	stranger := issuedWrite(8)
	commit(t, s, stranger)

	first := sessionWrite(0).Refresh.Signature
	res, err := s.RotateRefreshToken(ctx, first, now, sessionWrite(1))
	if err != nil {
		t.Fatalf("first rotation: %v", err)
	}
	if res.Outcome != Rotated {
		t.Fatalf("first rotation outcome = %v, want Rotated", res.Outcome)
	}
	sess, err := s.Session(ctx, "session-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if sess.Generation != 1 {
		t.Errorf("generation after one rotation = %d, want 1", sess.Generation)
	}

	reuse := sessionWrite(2)
	res, err = s.RotateRefreshToken(ctx, first, now, reuse)
	if err != nil {
		t.Fatalf("reuse: %v", err)
	}
	if res.Outcome != RotateReused {
		t.Fatalf("reuse outcome = %v, want RotateReused", res.Outcome)
	}
	// Live at the reuse: the generation-1 refresh token, the two session
	// access tokens and the child action token.
	if res.Revoked != 4 {
		t.Errorf("tokens revoked by the reuse = %d, want 4", res.Revoked)
	}
	sess, err = s.Session(ctx, "session-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if sess.RevokedAt == nil {
		t.Error("session RevokedAt = nil after reuse, want set")
	}
	for name, id := range map[string]string{
		"session access token 0": sessionWrite(0).Token.TokenID,
		"session access token 1": sessionWrite(1).Token.TokenID,
		"child action token":     child.Token.TokenID,
	} {
		tok, err := s.AccessTokenByID(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tok.RevokedAt == nil {
			t.Errorf("%s RevokedAt = nil after reuse, want set", name)
		}
	}
	tok, err := s.AccessTokenByID(ctx, stranger.Token.TokenID)
	if err != nil {
		t.Fatalf("unrelated token: %v", err)
	}
	if tok.RevokedAt != nil {
		t.Error("a token of no session was revoked by the reuse")
	}

	res, err = s.RotateRefreshToken(ctx, sessionWrite(1).Refresh.Signature, now, sessionWrite(3))
	if err != nil {
		t.Fatalf("rotation after revocation: %v", err)
	}
	if res.Outcome != RotateInactive {
		t.Errorf("rotation of a revoked session's token = %v, want RotateInactive", res.Outcome)
	}

	var reuses []audit.Record
	for _, r := range allAudit(t, s) {
		if r.Reason == "refresh_token_reuse" {
			reuses = append(reuses, r)
		}
	}
	if len(reuses) != 1 || reuses[0].Count != 4 || reuses[0].Event != audit.EventRevocation {
		t.Errorf("reuse audit records = %+v, want one revocation with count 4", reuses)
	}
}

func testSessionRotateExpired(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	createTestSession(t, s)
	late := testClock.Add(2 * time.Hour) // past the refresh token's idle expiry
	res, err := s.RotateRefreshToken(context.Background(), sessionWrite(0).Refresh.Signature, late, sessionWrite(1))
	if err != nil {
		t.Fatalf("RotateRefreshToken: %v", err)
	}
	if res.Outcome != RotateInactive {
		t.Errorf("rotation of an expired refresh token = %v, want RotateInactive", res.Outcome)
	}
	sess, err := s.Session(context.Background(), "session-1")
	if err != nil {
		t.Fatal(err)
	}
	if sess.RevokedAt != nil {
		t.Error("an expired refresh token revoked its session; only reuse does")
	}
}

func testSessionConcurrentRotation(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	createTestSession(t, s)
	now := testClock.Add(time.Minute)

	const callers = 4
	outcomes := make([]RotateOutcome, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := sessionWrite(1)
			w.Proof.JTI = fmt.Sprintf("race-%d", i)
			w.Refresh.Signature = fmt.Sprintf("%064x", 5000+i)
			w.Token.TokenID = fmt.Sprintf("race-token-%d", i)
			var res RotateResult
			res, errs[i] = s.RotateRefreshToken(context.Background(), sessionWrite(0).Refresh.Signature, now, w)
			outcomes[i] = res.Outcome
		}()
	}
	wg.Wait()

	rotated := 0
	for i := range callers {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
		}
		if outcomes[i] == Rotated {
			rotated++
		}
	}
	if rotated != 1 {
		t.Errorf("%d of %d concurrent rotations succeeded, want exactly 1 (outcomes %v)", rotated, callers, outcomes)
	}
	var live int64
	if err := s.db.Model(&refreshTokenModel{}).Where("revoked_at IS NULL AND used_at IS NULL").Count(&live).Error; err != nil {
		t.Fatal(err)
	}
	if live > 1 {
		t.Errorf("live refresh tokens after the race = %d, want at most 1", live)
	}
}

func testRevokeSessionCounts(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	createTestSession(t, s)
	at := testClock.Add(time.Minute)
	rec := audit.Record{Time: at, RequestID: "logout", Event: audit.EventRevocation, Decision: audit.DecisionRevoked}
	n, err := s.RevokeSession(context.Background(), "session-1", at, rec)
	if err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	if n != 2 {
		t.Errorf("first RevokeSession = %d, want 2 (the refresh token and the access token)", n)
	}
	n, err = s.RevokeSession(context.Background(), "session-1", at, rec)
	if err != nil {
		t.Fatalf("second RevokeSession: %v", err)
	}
	if n != 0 {
		t.Errorf("second RevokeSession = %d, want 0", n)
	}
}

// TestSessionRevocationUsesIndex checks that SQLite reaches the tokens of
// a session through the partial session_id index, not a table scan.
func TestSessionRevocationUsesIndex(t *testing.T) {
	s := openStore(t, sqliteConfig("NORMAL")(t))
	var plan []struct {
		ID      int
		Parent  int
		Notused int
		Detail  string
	}
	err := s.db.Raw(`EXPLAIN QUERY PLAN UPDATE access_tokens SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL AND expires_at > ?`,
		testClock, "session-1", testClock).Scan(&plan).Error
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN: %v", err)
	}
	var details []string
	for _, p := range plan {
		details = append(details, p.Detail)
	}
	joined := strings.Join(details, "; ")
	if !strings.Contains(joined, "idx_access_tokens_session_id") {
		t.Errorf("query plan = %q, want a search of idx_access_tokens_session_id", joined)
	}
}
