package storage

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
)

func testChallenge(id string) *StepUpChallenge {
	return &StepUpChallenge{
		ID: id, RequestID: "req-" + id, Subject: "sso.corp.example|alice", ClientID: "voice-assistant",
		DeviceJKT: "device-jkt", Action: "travel:approve", Audience: "https://erp.corp.example",
		DetailsHash: "hash", DetailsJSON: []byte(`[{"type":"t"}]`), Methods: []string{"push"},
		SpokenNumber: 42, Numbers: []int{17, 42, 88}, Interval: 5 * time.Second,
		CreatedAt: testClock, ExpiresAt: testClock.Add(2 * time.Minute),
	}
}

// testChallengeLifecycle creates a challenge with its exchange refusal,
// approves it, and has concurrent exchanges race to use it.
func testChallengeLifecycle(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	w := issuedWrite(1000)
	w.Token = nil
	w.Challenge = testChallenge("challenge-1")
	commit(t, s, w)

	got, err := s.StepUpChallenge(ctx, "challenge-1")
	if err != nil {
		t.Fatalf("StepUpChallenge: %v", err)
	}
	if got.Status != ChallengePending || got.SpokenNumber != 42 || len(got.Numbers) != 3 || got.Methods[0] != "push" {
		t.Errorf("stored challenge = %+v, want pending push with spoken number 42 and three numbers", got)
	}

	polled, err := s.PollStepUpChallenge(ctx, "challenge-1", testClock, 5*time.Second)
	if err != nil || !polled {
		t.Fatalf("first poll = %v, %v; want recorded", polled, err)
	}
	polled, _ = s.PollStepUpChallenge(ctx, "challenge-1", testClock.Add(2*time.Second), 5*time.Second)
	if polled {
		t.Error("a poll 2s after the last one was recorded; want it refused as too fast")
	}

	if ok, err := s.DecideStepUpChallenge(ctx, "challenge-1", ChallengeApproved, "push", "approver-jkt",
		testClock.Add(3*time.Minute), testRecord("req", audit.DecisionApproved)); err != nil || ok {
		t.Errorf("decision after expiry = %v, %v; want not decided", ok, err)
	}
	if ok, err := s.DecideStepUpChallenge(ctx, "challenge-1", ChallengeApproved, "push", "approver-jkt",
		testClock.Add(time.Second), testRecord("req", audit.DecisionApproved)); err != nil || !ok {
		t.Fatalf("decision = %v, %v; want decided", ok, err)
	}
	if ok, _ := s.DecideStepUpChallenge(ctx, "challenge-1", ChallengeDenied, "push", "approver-jkt",
		testClock.Add(2*time.Second), testRecord("req", audit.DecisionDenied)); ok {
		t.Error("a second decision changed an approved challenge")
	}

	const callers = 8
	var mu sync.Mutex
	issued := 0
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			w := issuedWrite(2000 + i)
			w.ConsumeChallenge = &ChallengeUse{ID: "challenge-1", TokenID: w.Token.TokenID, At: testClock.Add(time.Minute)}
			w.SpentAudit = testRecord(w.Token.RequestID, audit.DecisionRefused)
			res, err := s.CommitExchange(ctx, w)
			if err != nil {
				t.Errorf("CommitExchange: %v", err)
				return
			}
			if !res.ChallengeSpent {
				mu.Lock()
				issued++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if issued != 1 {
		t.Errorf("%d of %d concurrent exchanges used the challenge, want exactly 1", issued, callers)
	}
	got, _ = s.StepUpChallenge(ctx, "challenge-1")
	if got.UsedAt == nil || got.TokenID == "" {
		t.Errorf("used challenge = %+v, want used_at and token_id set", got)
	}
}

// testChallengeReplayedProofCreatesNothing checks that a refusal whose
// proof was replayed does not create its challenge.
func testChallengeReplayedProofCreatesNothing(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	w := issuedWrite(3000)
	w.Token = nil
	commit(t, s, w)
	w.Challenge = testChallenge("challenge-replayed")
	if res := commit(t, s, w); !res.Replayed {
		t.Fatal("second commit of the same proof was not a replay")
	}
	if _, err := s.StepUpChallenge(context.Background(), "challenge-replayed"); err == nil {
		t.Error("a replayed proof created a step-up challenge")
	}
}

// testPushCounts checks the counts behind the push rate limit and lockout.
func testPushCounts(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()
	for i := range 3 {
		w := issuedWrite(4000 + i)
		w.Token = nil
		w.Challenge = testChallenge(fmt.Sprintf("count-%d", i))
		commit(t, s, w)
	}
	n, err := s.CountPushChallenges(ctx, "sso.corp.example|alice", testClock.Add(-time.Minute))
	if err != nil || n != 3 {
		t.Errorf("CountPushChallenges = %d, %v; want 3", n, err)
	}
	n, _ = s.CountPushChallenges(ctx, "sso.corp.example|alice", testClock.Add(time.Minute))
	if n != 0 {
		t.Errorf("CountPushChallenges after the window = %d, want 0", n)
	}
	if _, err := s.DecideStepUpChallenge(ctx, "count-0", ChallengeDenied, "push", "a", testClock.Add(time.Second),
		testRecord("req", audit.DecisionDenied)); err != nil {
		t.Fatal(err)
	}
	n, err = s.CountPushDenials(ctx, "sso.corp.example|alice", testClock.Add(-time.Minute))
	if err != nil || n != 1 {
		t.Errorf("CountPushDenials = %d, %v; want 1", n, err)
	}
}
