package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
)

func testExchangeIssued(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))

	w := issuedWrite(1)
	if res := commit(t, s, w); res.Replayed {
		t.Error("first use of a proof: Replayed = true, want false")
	}

	if _, err := s.AccessTokenByID(context.Background(), w.Token.TokenID); err != nil {
		t.Errorf("issued token: %v", err)
	}
	recs := allAudit(t, s)
	if len(recs) != 1 {
		t.Fatalf("audit records = %d, want 1", len(recs))
	}
	if recs[0].Decision != audit.DecisionIssued || recs[0].TokenID != w.Token.TokenID {
		t.Errorf("audit record = (%s, token %q), want (issued, token %q)",
			recs[0].Decision, recs[0].TokenID, w.Token.TokenID)
	}
}

func testExchangeReplay(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))

	first := issuedWrite(1)
	commit(t, s, first)

	// Same proof, different token: the second token must not be stored.
	second := issuedWrite(2)
	second.Proof = first.Proof
	if res := commit(t, s, second); !res.Replayed {
		t.Error("second use of a proof: Replayed = false, want true")
	}

	_, err := s.AccessTokenByID(context.Background(), second.Token.TokenID)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("token of the replayed write: error = %v, want ErrNotFound", err)
	}
	if n := countRows(t, s, &accessTokenModel{}); n != 1 {
		t.Errorf("access tokens = %d, want 1", n)
	}

	recs := allAudit(t, s)
	if len(recs) != 2 {
		t.Fatalf("audit records = %d, want 2", len(recs))
	}
	if recs[1].Reason != "dpop_replay" || recs[1].Decision != audit.DecisionRefused {
		t.Errorf("second audit record = (%s, %q), want the replay record (refused, %q)",
			recs[1].Decision, recs[1].Reason, "dpop_replay")
	}
}

func testExchangeRefusal(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))

	w := issuedWrite(1)
	w.Token = nil
	w.Audit = testRecord("request-1", audit.DecisionRefused)
	w.Audit.Reason = "invalid_scope"
	if res := commit(t, s, w); res.Replayed {
		t.Error("refusal with a fresh proof: Replayed = true, want false")
	}

	if n := countRows(t, s, &accessTokenModel{}); n != 0 {
		t.Errorf("access tokens = %d, want 0", n)
	}
	recs := allAudit(t, s)
	if len(recs) != 1 {
		t.Fatalf("audit records = %d, want 1", len(recs))
	}
	if recs[0].Reason != "invalid_scope" {
		t.Errorf("audit reason = %q, want %q", recs[0].Reason, "invalid_scope")
	}
	if n := countRows(t, s, &proofClaimModel{}); n != 1 {
		t.Errorf("proof claims = %d, want 1 (a refused request still uses up its proof)", n)
	}
}

func testExchangeWithoutProof(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))

	for i := range 2 {
		w := issuedWrite(i)
		w.Proof = nil
		if res := commit(t, s, w); res.Replayed {
			t.Errorf("write %d without a proof: Replayed = true, want false", i)
		}
	}
	if n := countRows(t, s, &accessTokenModel{}); n != 2 {
		t.Errorf("access tokens = %d, want 2", n)
	}
	if n := countRows(t, s, &proofClaimModel{}); n != 0 {
		t.Errorf("proof claims = %d, want 0", n)
	}
}

func testExchangeConcurrentDistinct(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))

	const callers = 200
	errs := make([]error, callers)
	replayed := make([]bool, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			res, err := s.CommitExchange(context.Background(), issuedWrite(i))
			errs[i], replayed[i] = err, res.Replayed
		})
	}
	wg.Wait()

	for i := range callers {
		if errs[i] != nil {
			t.Errorf("caller %d: CommitExchange: %v", i, errs[i])
		}
		if replayed[i] {
			t.Errorf("caller %d: Replayed = true with a proof of its own", i)
		}
	}
	if n := countRows(t, s, &accessTokenModel{}); n != callers {
		t.Errorf("access tokens = %d, want %d", n, callers)
	}
	if n := len(allAudit(t, s)); n != callers {
		t.Errorf("audit records = %d, want %d", n, callers)
	}
}

func testExchangeConcurrentSameProof(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))

	const callers = 50
	proof := issuedWrite(0).Proof
	var mu sync.Mutex
	fresh := 0
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			w := issuedWrite(i)
			w.Proof = proof
			res, err := s.CommitExchange(context.Background(), w)
			if err != nil {
				t.Errorf("caller %d: CommitExchange: %v", i, err)
				return
			}
			if !res.Replayed {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	if fresh != 1 {
		t.Errorf("callers not replayed = %d, want exactly 1", fresh)
	}
	if n := countRows(t, s, &accessTokenModel{}); n != 1 {
		t.Errorf("access tokens = %d, want 1", n)
	}
	replays := 0
	for _, r := range allAudit(t, s) {
		if r.Reason == "dpop_replay" {
			replays++
		}
	}
	if replays != callers-1 {
		t.Errorf("replay audit records = %d, want %d", replays, callers-1)
	}
}

// commitItems runs one batch through the writer's commit step directly, so
// the test decides which items share a transaction.
func commitItems(s *Store, writes []ExchangeWrite) []exchangeOutcome {
	items := make([]*exchangeItem, len(writes))
	for i, w := range writes {
		items[i] = &exchangeItem{write: w, done: make(chan exchangeOutcome, 1)}
	}
	s.commitBatch(items)

	outs := make([]exchangeOutcome, len(items))
	for i, item := range items {
		outs[i] = <-item.done
	}
	return outs
}

func testExchangeBatchIsolatesFailure(t *testing.T, newConfig newConfigFunc) {
	logs := &logCapture{}
	cfg := newConfig(t)
	cfg.Logger = slog.New(logs)
	s := openStore(t, cfg)

	existing := issuedWrite(0)
	commit(t, s, existing)

	bad := issuedWrite(2)
	bad.Token.TokenID = existing.Token.TokenID // violates the primary key
	outs := commitItems(s, []ExchangeWrite{issuedWrite(1), bad, issuedWrite(3)})

	for i, wantErr := range []bool{false, true, false} {
		if gotErr := outs[i].err != nil; gotErr != wantErr {
			t.Errorf("item %d: error = %v, want error %t", i, outs[i].err, wantErr)
		}
	}
	for _, i := range []int{1, 3} {
		if _, err := s.AccessTokenByID(context.Background(), testToken(i).TokenID); err != nil {
			t.Errorf("token %d of a good item in the failed batch: %v", i, err)
		}
	}
	if n := len(allAudit(t, s)); n != 3 {
		t.Errorf("audit records = %d, want 3 (the first write and the two good items)", n)
	}

	// The bad item's proof claim was rolled back with it, so a corrected
	// retry of that request is not a replay.
	if n := countRows(t, s, &proofClaimModel{}); n != 3 {
		t.Errorf("proof claims = %d, want 3", n)
	}

	logs.mu.Lock()
	defer logs.mu.Unlock()
	var errorRecords []slog.Record
	for _, r := range logs.records {
		if r.Level >= slog.LevelError {
			errorRecords = append(errorRecords, r)
		}
	}
	if len(errorRecords) != 1 {
		t.Fatalf("error log records = %d, want 1", len(errorRecords))
	}
	r := errorRecords[0]
	var line strings.Builder
	line.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&line, " %s=%v", a.Key, a.Value)
		return true
	})
	if !strings.Contains(line.String(), "items=3") {
		t.Errorf("log record %q lacks items=3", line.String())
	}
	for _, secret := range []string{bad.Token.Signature, bad.Token.TokenID, string(bad.Token.Session)} {
		if strings.Contains(line.String(), secret) {
			t.Errorf("log record %q contains token data %q", line.String(), secret)
		}
	}
}

func testExchangeBatchRepeatedProof(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))

	first := issuedWrite(1)
	second := issuedWrite(2)
	second.Proof = first.Proof
	outs := commitItems(s, []ExchangeWrite{first, second})

	for i, o := range outs {
		if o.err != nil {
			t.Fatalf("item %d: %v", i, o.err)
		}
	}
	if outs[0].result.Replayed {
		t.Error("first item: Replayed = true, want false")
	}
	if !outs[1].result.Replayed {
		t.Error("second item with the same proof in the same batch: Replayed = false, want true")
	}
	if n := countRows(t, s, &accessTokenModel{}); n != 1 {
		t.Errorf("access tokens = %d, want 1", n)
	}
}

func testExchangeEndedContext(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.CommitExchange(ctx, issuedWrite(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("CommitExchange with a canceled context: error = %v, want context.Canceled", err)
	}
	if n := len(allAudit(t, s)); n != 0 {
		t.Errorf("audit records = %d, want 0", n)
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.CommitExchange(context.Background(), issuedWrite(2)); !errors.Is(err, ErrClosed) {
		t.Errorf("CommitExchange after Close: error = %v, want ErrClosed", err)
	}
}

func testCloseCommitsPending(t *testing.T, newConfig newConfigFunc) {
	cfg := newConfig(t)
	ctx := context.Background()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}

	const callers = 100
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			_, errs[i] = s.CommitExchange(ctx, issuedWrite(i))
		})
	}
	time.Sleep(time.Millisecond) // let some callers reach the writer
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()

	committed := 0
	for i, err := range errs {
		switch {
		case err == nil:
			committed++
		case !errors.Is(err, ErrClosed):
			t.Errorf("caller %d: error = %v, want nil or ErrClosed", i, err)
		}
	}

	s = openStore(t, cfg)
	if n := len(allAudit(t, s)); n != committed {
		t.Errorf("audit records after reopen = %d, want %d (one per successful call)", n, committed)
	}
}

func testDeleteExpiredProofClaims(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	expired := issuedWrite(1)
	expired.Proof.ExpiresAt = testClock.Add(-time.Second)
	live := issuedWrite(2)
	live.Proof.ExpiresAt = testClock.Add(time.Second)
	commit(t, s, expired)
	commit(t, s, live)

	n, err := s.DeleteExpiredProofClaims(ctx, testClock)
	if err != nil {
		t.Fatalf("DeleteExpiredProofClaims: %v", err)
	}
	if n != 1 {
		t.Errorf("DeleteExpiredProofClaims = %d, want 1", n)
	}

	// A live claim still catches a replay. The expired one is gone; the
	// proof's own expiry check, outside storage, rejects it from then on.
	again := issuedWrite(3)
	again.Proof = live.Proof
	if res := commit(t, s, again); !res.Replayed {
		t.Error("replay of a live proof after the purge: Replayed = false, want true")
	}
	if n := countRows(t, s, &proofClaimModel{}); n != 1 {
		t.Errorf("proof claims left = %d, want 1", n)
	}

	n, err = s.DeleteExpiredProofClaims(ctx, testClock)
	if err != nil {
		t.Fatalf("second DeleteExpiredProofClaims: %v", err)
	}
	if n != 0 {
		t.Errorf("second DeleteExpiredProofClaims = %d, want 0", n)
	}
}
