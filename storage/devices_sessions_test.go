package storage

import (
	"context"
	"testing"

	"github.com/sotto-auth/sotto/audit"
)

// testRevokeDeviceEndsSessions checks that wiping a device ends the
// sessions bound to its key, so their refresh tokens cannot mint new
// tokens for it.
func testRevokeDeviceEndsSessions(t *testing.T, newConfig newConfigFunc) {
	ctx := context.Background()
	s := openStore(t, newConfig(t))
	createTestSession(t, s)
	if _, _, err := s.EnrollDevice(ctx, enrolment("device-jkt", "sso.example|alice", TrustRegistered, "enrol-1")); err != nil {
		t.Fatalf("EnrollDevice: %v", err)
	}

	n, err := s.RevokeDevice(ctx, "device-jkt", testClock, audit.Record{Time: testClock, Event: audit.EventDeviceRevocation})
	if err != nil {
		t.Fatalf("RevokeDevice: %v", err)
	}
	if n < 2 {
		t.Errorf("RevokeDevice ended %d tokens, want at least the session's refresh and access token", n)
	}
	got, err := s.Session(ctx, "session-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if got.RevokedAt == nil {
		t.Error("session bound to the revoked device is still live")
	}
	rt, err := s.RefreshToken(ctx, sessionWrite(0).Refresh.Signature)
	if err != nil {
		t.Fatalf("RefreshToken: %v", err)
	}
	if rt.RevokedAt == nil {
		t.Error("refresh token of the revoked device is still live")
	}
}
