package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
)

// testPasskeyLifecycle registers a passkey, approves a challenge with it
// once, refuses a stale counter and a flagged credential, and removes it.
func testPasskeyLifecycle(t *testing.T, newConfig newConfigFunc) {
	s := openStore(t, newConfig(t))
	ctx := context.Background()

	p := Passkey{
		ID: "Y3JlZGVudGlhbC0x", Subject: "sso.corp.example|alice", UserHandle: []byte{1, 2, 3},
		PublicKey: []byte{0xa5}, SignCount: 3, AAGUID: "00000000-0000-0000-0000-000000000000",
		UserPresent: true, UserVerified: true, AttestationFormat: "none",
		Transports: []string{"internal", "hybrid"}, Name: "Work laptop", CreatedAt: testClock,
	}
	if err := s.RegisterPasskey(ctx, p, testRecord("reg", audit.DecisionEnrolled)); err != nil {
		t.Fatalf("RegisterPasskey: %v", err)
	}
	other := p
	other.Subject = "sso.corp.example|bob"
	if err := s.RegisterPasskey(ctx, other, testRecord("reg2", audit.DecisionEnrolled)); !errors.Is(err, ErrPasskeyTaken) {
		t.Errorf("second registration of the ID = %v, want ErrPasskeyTaken", err)
	}
	got, err := s.Passkey(ctx, p.ID)
	if err != nil {
		t.Fatalf("Passkey: %v", err)
	}
	if got.SignCount != 3 || !got.UserVerified || len(got.Transports) != 2 || got.Subject != p.Subject {
		t.Errorf("stored passkey = %+v, want the registered fields", got)
	}

	c := testChallenge("passkey-challenge")
	c.Methods = []string{"passkey"}
	w := issuedWrite(2000)
	w.Token = nil
	w.Challenge = c
	commit(t, s, w)

	use := PasskeyUse{ChallengeID: c.ID, CredentialID: p.ID, OldSignCount: 2, NewSignCount: 9, At: testClock.Add(time.Second)}
	if ok, err := s.ApproveWithPasskey(ctx, use, testRecord("req", audit.DecisionApproved)); err != nil || ok {
		t.Errorf("approval against a stale counter = %v, %v; want not approved", ok, err)
	}
	use.OldSignCount = 3
	if ok, err := s.ApproveWithPasskey(ctx, use, testRecord("req", audit.DecisionApproved)); err != nil || !ok {
		t.Fatalf("approval = %v, %v; want approved", ok, err)
	}
	use.OldSignCount, use.NewSignCount = 9, 10
	if ok, _ := s.ApproveWithPasskey(ctx, use, testRecord("req", audit.DecisionApproved)); ok {
		t.Error("a second approval of the challenge succeeded; want it refused")
	}
	if got, _ := s.Passkey(ctx, p.ID); got.SignCount != 9 || got.LastUsedAt == nil {
		t.Errorf("after a refused approval, sign count %d, last used %v; want 9 and set, unchanged by the refusal", got.SignCount, got.LastUsedAt)
	}
	decided, _ := s.StepUpChallenge(ctx, c.ID)
	if decided.Status != ChallengeApproved || decided.Method != "passkey" || decided.Approver != p.ID {
		t.Errorf("challenge = %s by %s %s, want approved by passkey %s", decided.Status, decided.Method, decided.Approver, p.ID)
	}

	if err := s.FlagPasskey(ctx, p.ID, "counter_regression", testClock.Add(time.Minute), testRecord("req", audit.DecisionAlert)); err != nil {
		t.Fatalf("FlagPasskey: %v", err)
	}
	c2 := testChallenge("passkey-challenge-2")
	c2.Methods = []string{"passkey"}
	w = issuedWrite(2001)
	w.Token = nil
	w.Challenge = c2
	commit(t, s, w)
	if ok, _ := s.ApproveWithPasskey(ctx, PasskeyUse{ChallengeID: c2.ID, CredentialID: p.ID, OldSignCount: 9, NewSignCount: 11,
		At: testClock.Add(time.Second)}, testRecord("req", audit.DecisionApproved)); ok {
		t.Error("a flagged passkey approved a challenge")
	}

	if err := s.RemovePasskey(ctx, "sso.corp.example|bob", p.ID, testRecord("rm", audit.DecisionRevoked)); !errors.Is(err, ErrNotFound) {
		t.Errorf("removal by another subject = %v, want ErrNotFound", err)
	}
	if err := s.RemovePasskey(ctx, p.Subject, p.ID, testRecord("rm", audit.DecisionRevoked)); err != nil {
		t.Fatalf("RemovePasskey: %v", err)
	}
	if list, _ := s.Passkeys(ctx, p.Subject); len(list) != 0 {
		t.Errorf("passkeys after removal = %d, want 0", len(list))
	}
}
