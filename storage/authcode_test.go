package storage

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
)

func testCode() AuthorizationCode {
	auth := testClock.Add(-time.Minute)
	return AuthorizationCode{
		Signature:     "code-signature-1",
		ClientID:      "assistant",
		RedirectURI:   "http://127.0.0.1/callback",
		CodeChallenge: "challenge",
		DPoPJKT:       "device-jkt",
		Subject:       "sso.example|alice",
		SubjectIssuer: "https://sso.example",
		Groups:        []string{"employees"},
		AMR:           []string{"pwd"},
		AuthTime:      &auth,
		LoginID:       "login-1",
		IssuedAt:      testClock,
		ExpiresAt:     testClock.Add(time.Minute),
	}
}

func testCodeRedeemThenReuse(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()
	if err := s.CreateAuthorizationCode(ctx, testCode(), testRecord("code", audit.DecisionIssued)); err != nil {
		t.Fatalf("CreateAuthorizationCode: %v", err)
	}
	got, err := s.AuthorizationCode(ctx, "code-signature-1")
	if err != nil {
		t.Fatalf("AuthorizationCode: %v", err)
	}
	if got.Subject != "sso.example|alice" || got.UsedAt != nil || len(got.Groups) != 1 || got.AuthTime == nil {
		t.Errorf("AuthorizationCode = %+v, want the stored unused code", got)
	}

	w := sessionWrite(0)
	w.Session = testSession()
	res, err := s.RedeemAuthorizationCode(ctx, "code-signature-1", testClock, w)
	if err != nil || res.Outcome != Redeemed {
		t.Fatalf("first redemption = %+v, %v; want Redeemed", res, err)
	}
	if _, err := s.Session(ctx, "session-1"); err != nil {
		t.Errorf("session of the redemption: %v", err)
	}

	w2 := sessionWrite(1)
	w2.Session = testSession()
	w2.Session.ID = "session-2"
	res, err = s.RedeemAuthorizationCode(ctx, "code-signature-1", testClock, w2)
	if err != nil || res.Outcome != RedeemReused {
		t.Fatalf("second redemption = %+v, %v; want RedeemReused", res, err)
	}
	if res.Revoked != 2 {
		t.Errorf("second redemption revoked %d tokens, want 2", res.Revoked)
	}
	session, err := s.Session(ctx, "session-1")
	if err != nil || session.RevokedAt == nil {
		t.Errorf("session after the reuse = %+v, %v; want revoked", session, err)
	}
	if _, err := s.Session(ctx, "session-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("session of the second redemption: %v, want ErrNotFound", err)
	}

	w3 := sessionWrite(2)
	w3.Session = testSession()
	w3.Session.ID = "session-3"
	res, err = s.RedeemAuthorizationCode(ctx, "no-such-code", testClock, w3)
	if err != nil || res.Outcome != RedeemInactive {
		t.Errorf("redemption of an unknown code = %+v, %v; want RedeemInactive", res, err)
	}
}

func testCodeConcurrentRedemption(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()
	if err := s.CreateAuthorizationCode(ctx, testCode(), testRecord("code", audit.DecisionIssued)); err != nil {
		t.Fatalf("CreateAuthorizationCode: %v", err)
	}
	var wg sync.WaitGroup
	outcomes := make([]RedeemOutcome, 2)
	for i := range outcomes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := sessionWrite(int64(i))
			w.Session = testSession()
			w.Session.ID = []string{"session-a", "session-b"}[i]
			res, err := s.RedeemAuthorizationCode(ctx, "code-signature-1", testClock, w)
			if err != nil {
				t.Errorf("redemption %d: %v", i, err)
			}
			outcomes[i] = res.Outcome
		}()
	}
	wg.Wait()
	redeemed := 0
	for _, o := range outcomes {
		if o == Redeemed {
			redeemed++
		}
	}
	if redeemed != 1 {
		t.Errorf("outcomes = %v, want exactly one Redeemed", outcomes)
	}
}

func testPendingRequestTakenOnce(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()
	p := PendingRequest{ID: "p1", Kind: "login", ClientID: "assistant", Data: []byte(`{"a":1}`), ExpiresAt: testClock.Add(time.Minute)}
	if err := s.PutPendingRequest(ctx, p); err != nil {
		t.Fatalf("PutPendingRequest: %v", err)
	}
	p.Data = []byte(`{"a":2}`)
	if err := s.PutPendingRequest(ctx, p); err != nil {
		t.Fatalf("PutPendingRequest again: %v", err)
	}
	got, err := s.PendingRequest(ctx, "login", "p1", testClock)
	if err != nil || string(got.Data) != `{"a":2}` {
		t.Fatalf("PendingRequest = %+v, %v; want the replaced data", got, err)
	}
	if _, err := s.PendingRequest(ctx, "par", "p1", testClock); !errors.Is(err, ErrNotFound) {
		t.Errorf("PendingRequest of another kind: %v, want ErrNotFound", err)
	}
	if _, err := s.PendingRequest(ctx, "login", "p1", testClock.Add(time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Errorf("PendingRequest after expiry: %v, want ErrNotFound", err)
	}
	if _, err := s.TakePendingRequest(ctx, "login", "p1", testClock); err != nil {
		t.Fatalf("TakePendingRequest: %v", err)
	}
	if _, err := s.TakePendingRequest(ctx, "login", "p1", testClock); !errors.Is(err, ErrNotFound) {
		t.Errorf("second TakePendingRequest: %v, want ErrNotFound", err)
	}
}
