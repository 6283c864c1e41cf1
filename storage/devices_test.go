package storage

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
)

// deviceCases run on every backend, like the suite in suite_test.go.
var deviceCases = []struct {
	name string
	run  func(t *testing.T, newConfig newConfigFunc)
}{
	{"enrol creates, updates and refuses", testEnrollDevice},
	{"enrol refuses a replayed proof", testEnrollReplay},
	{"touch updates at most once a minute", testTouchDevice},
	{"set trust and list devices", testSetTrustAndList},
	{"revoke device ends live tokens", testRevokeDevice},
}

func TestDevicesSQLite(t *testing.T) {
	runDeviceCases(t, sqliteConfig("FULL"))
}

func TestDevicesPostgres(t *testing.T) {
	dsn := os.Getenv(postgresDSNEnv)
	if dsn == "" {
		t.Skipf("set %s to a PostgreSQL DSN to run the PostgreSQL suite", postgresDSNEnv)
	}
	runDeviceCases(t, postgresConfig(dsn))
}

func runDeviceCases(t *testing.T, newConfig newConfigFunc) {
	for _, tc := range deviceCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newConfig)
		})
	}
}

func openDeviceStore(t *testing.T, newConfig newConfigFunc) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, newConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

var deviceTime = time.Date(2026, 12, 18, 9, 0, 0, 0, time.UTC)

func enrolment(jkt, subject, trust, jti string) EnrollWrite {
	return EnrollWrite{
		Device: Device{JKT: jkt, Subject: subject, Kind: "phone", Name: "Phone", Trust: trust, EnrolledAt: deviceTime},
		Proof:  &ProofClaim{JKT: jkt, JTI: jti, ExpiresAt: time.Now().Add(time.Hour)},
		Audit:  audit.Record{Time: deviceTime, Event: audit.EventDeviceEnrolment, Decision: audit.DecisionEnrolled, DeviceJKT: jkt},
	}
}

func testEnrollDevice(t *testing.T, newConfig newConfigFunc) {
	ctx := context.Background()
	s := openDeviceStore(t, newConfig)

	d, created, err := s.EnrollDevice(ctx, enrolment("k1", "idp|alice", TrustRegistered, "j1"))
	if err != nil {
		t.Fatal(err)
	}
	if !created || d.Trust != TrustRegistered || !d.EnrolledAt.Equal(deviceTime) {
		t.Errorf("first enrolment = %+v created %v, want a new registered device", d, created)
	}

	w := enrolment("k1", "idp|alice", TrustManaged, "j2")
	w.Device.Name = "Work phone"
	d, created, err = s.EnrollDevice(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if created || d.Trust != TrustManaged || d.Name != "Work phone" {
		t.Errorf("re-enrolment = %+v created %v, want the same device, managed, renamed", d, created)
	}

	d, _, err = s.EnrollDevice(ctx, enrolment("k1", "idp|alice", TrustRegistered, "j3"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Trust != TrustManaged {
		t.Errorf("re-enrolment without attestation lowered trust to %s", d.Trust)
	}

	if _, _, err := s.EnrollDevice(ctx, enrolment("k1", "idp|bob", TrustRegistered, "j4")); !errors.Is(err, ErrDeviceOtherSubject) {
		t.Errorf("enrolment for another subject: err = %v, want ErrDeviceOtherSubject", err)
	}

	records, err := s.AuditRecords(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 3 {
		t.Errorf("audit records = %d, want 3 (a refused enrolment writes none)", len(records))
	}
	if len(records) > 0 && records[0].DeviceTrust != TrustRegistered {
		t.Errorf("first audit device_trust = %q, want registered", records[0].DeviceTrust)
	}
}

func testEnrollReplay(t *testing.T, newConfig newConfigFunc) {
	ctx := context.Background()
	s := openDeviceStore(t, newConfig)
	if _, _, err := s.EnrollDevice(ctx, enrolment("k1", "idp|alice", TrustRegistered, "j1")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.EnrollDevice(ctx, enrolment("k1", "idp|alice", TrustRegistered, "j1")); !errors.Is(err, ErrProofReplayed) {
		t.Errorf("replayed enrolment: err = %v, want ErrProofReplayed", err)
	}
}

func testTouchDevice(t *testing.T, newConfig newConfigFunc) {
	ctx := context.Background()
	s := openDeviceStore(t, newConfig)
	if _, _, err := s.EnrollDevice(ctx, enrolment("k1", "idp|alice", TrustRegistered, "j1")); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		at   time.Time
		want time.Time
	}{
		{deviceTime.Add(30 * time.Second), deviceTime},                     // within a minute: no write
		{deviceTime.Add(2 * time.Minute), deviceTime.Add(2 * time.Minute)}, // later: written
		{deviceTime.Add(2*time.Minute + 59*time.Second), deviceTime.Add(2 * time.Minute)},
	}
	for _, step := range steps {
		if err := s.TouchDevice(ctx, "k1", step.at); err != nil {
			t.Fatal(err)
		}
		d, err := s.Device(ctx, "k1")
		if err != nil {
			t.Fatal(err)
		}
		if !d.LastSeenAt.Equal(step.want) {
			t.Errorf("after touch at %s, last seen = %s, want %s", step.at, d.LastSeenAt, step.want)
		}
	}
	if err := s.TouchDevice(ctx, "unknown", deviceTime); err != nil {
		t.Errorf("touch of an unknown device: %v", err)
	}
}

func testSetTrustAndList(t *testing.T, newConfig newConfigFunc) {
	ctx := context.Background()
	s := openDeviceStore(t, newConfig)
	for i, w := range []EnrollWrite{
		enrolment("k1", "idp|alice", TrustRegistered, "j1"),
		enrolment("k2", "idp|bob", TrustRegistered, "j2"),
		enrolment("k3", "idp|alice", TrustRegistered, "j3"),
	} {
		w.Device.EnrolledAt = deviceTime.Add(time.Duration(i) * time.Minute)
		if _, _, err := s.EnrollDevice(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	rec := audit.Record{Time: deviceTime, Event: audit.EventDeviceTrust, Decision: audit.DecisionChanged}
	if err := s.SetDeviceTrust(ctx, "k3", TrustManaged, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDeviceTrust(ctx, "missing", TrustManaged, rec); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetDeviceTrust of an unknown device: err = %v, want ErrNotFound", err)
	}

	alice, err := s.Devices(ctx, "idp|alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(alice) != 2 || alice[0].JKT != "k1" || alice[1].JKT != "k3" || alice[1].Trust != TrustManaged {
		t.Errorf("alice's devices = %+v, want k1 registered then k3 managed", alice)
	}
	all, err := s.Devices(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Errorf("all devices = %d, want 3", len(all))
	}
}

func testRevokeDevice(t *testing.T, newConfig newConfigFunc) {
	ctx := context.Background()
	s := openDeviceStore(t, newConfig)
	if _, _, err := s.EnrollDevice(ctx, enrolment("k1", "idp|alice", TrustRegistered, "j1")); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	tokens := []AccessToken{
		{TokenID: "t1", DeviceJKT: "k1", ExpiresAt: now.Add(time.Minute)},
		{TokenID: "t2", DeviceJKT: "k1", ExpiresAt: now.Add(-time.Minute)}, // expired
		{TokenID: "t3", DeviceJKT: "k2", ExpiresAt: now.Add(time.Minute)},  // another key
	}
	for _, tok := range tokens {
		tok.IssuedAt = now.Add(-time.Minute)
		if _, err := s.CommitExchange(ctx, ExchangeWrite{Token: &tok, Audit: audit.Record{Time: now, Event: audit.EventExchange}}); err != nil {
			t.Fatal(err)
		}
	}

	rec := audit.Record{Time: now, Event: audit.EventDeviceRevocation, Decision: audit.DecisionRevoked}
	n, err := s.RevokeDevice(ctx, "k1", now, rec)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("RevokeDevice revoked %d tokens, want 1", n)
	}
	for id, wantRevoked := range map[string]bool{"t1": true, "t2": false, "t3": false} {
		tok, err := s.AccessTokenByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if (tok.RevokedAt != nil) != wantRevoked {
			t.Errorf("token %s revoked = %v, want %v", id, tok.RevokedAt != nil, wantRevoked)
		}
	}
	d, err := s.Device(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if d.RevokedAt == nil {
		t.Error("device not marked revoked")
	}
	records, err := s.AuditRecords(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	last := records[len(records)-1]
	if last.Event != audit.EventDeviceRevocation || last.Count != 1 || last.DeviceTrust != "revoked" || last.Subject != "idp|alice" {
		t.Errorf("revocation audit = %+v, want device_revocation, count 1, revoked, idp|alice", last)
	}
	if err := s.SetDeviceTrust(ctx, "k1", TrustManaged, rec); !errors.Is(err, ErrDeviceRevoked) {
		t.Errorf("SetDeviceTrust of a revoked device: err = %v, want ErrDeviceRevoked", err)
	}
	if _, err := s.RevokeDevice(ctx, "missing", now, rec); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeDevice of an unknown device: err = %v, want ErrNotFound", err)
	}
}
