package storage

import (
	"context"
	"errors"
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

// testDeviceStanding checks the exchange's device lookup.
func testDeviceStanding(t *testing.T, newConfig newConfigFunc) {
	ctx := context.Background()
	s := openStore(t, newConfig(t))
	if _, err := s.DeviceStanding(ctx, "unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeviceStanding of an unknown key: error %v, want ErrNotFound", err)
	}
	if _, _, err := s.EnrollDevice(ctx, enrolment("k1", "idp|alice", TrustManaged, "j1")); err != nil {
		t.Fatal(err)
	}
	got, err := s.DeviceStanding(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if got != (DeviceStanding{Subject: "idp|alice", Trust: TrustManaged}) {
		t.Errorf("DeviceStanding = %+v, want alice's managed device", got)
	}
	if _, err := s.RevokeDevice(ctx, "k1", testClock, audit.Record{Time: testClock}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DeviceStanding(ctx, "k1"); err != nil || !got.Revoked {
		t.Errorf("DeviceStanding after revocation = %+v, %v; want revoked", got, err)
	}
}
