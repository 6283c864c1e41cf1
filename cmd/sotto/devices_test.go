package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/internal/sottotest"
	"github.com/sotto-auth/sotto/storage"
)

func TestDevicesCommands(t *testing.T) {
	dir := sottotest.CopyExamples(t, filepath.Join("..", "..", "examples"))
	configPath := filepath.Join(dir, "sotto.yaml")

	ctx := context.Background()
	store, err := storage.Open(ctx, storage.Config{DSN: filepath.Join(dir, "sotto.db")})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, err = store.EnrollDevice(ctx, storage.EnrollWrite{
		Device: storage.Device{JKT: "key-1", Subject: "sso.corp.example|alice", Kind: "speaker", Name: "Kitchen", Trust: storage.TrustRegistered, EnrolledAt: time.Now()},
		Audit:  audit.Record{Time: time.Now(), Event: audit.EventDeviceEnrolment, Decision: audit.DecisionEnrolled},
	})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		args []string
		want string
	}{
		{[]string{"devices", "list", "--config", configPath}, "Kitchen"},
		{[]string{"devices", "trust", "key-1", "managed", "--config", configPath}, "now managed"},
		{[]string{"devices", "show", "key-1", "--config", configPath}, "managed"},
		{[]string{"devices", "revoke", "--config", configPath, "key-1"}, "0 live token(s) revoked"},
		{[]string{"devices", "list", "--subject", "sso.corp.example|alice", "--config", configPath}, "revoked"},
	}
	for _, step := range steps {
		var stdout, stderr bytes.Buffer
		if err := run(ctx, step.args, &stdout, &stderr); err != nil {
			t.Fatalf("sotto %s: %v\n%s", strings.Join(step.args, " "), err, stderr.String())
		}
		if !strings.Contains(stdout.String(), step.want) {
			t.Errorf("sotto %s output = %q, want it to contain %q", strings.Join(step.args, " "), stdout.String(), step.want)
		}
	}

	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"devices", "trust", "key-1", "registered", "--config", configPath}, &stdout, &stderr); err == nil ||
		!strings.Contains(err.Error(), "revoked") {
		t.Errorf("trust of a revoked device: err = %v, want one naming the revocation", err)
	}

	store, err = storage.Open(ctx, storage.Config{DSN: filepath.Join(dir, "sotto.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	records, err := store.AuditRecords(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 3 {
		t.Errorf("audit records = %d, want 3: enrolment, trust change, revocation", len(records))
	}
}
