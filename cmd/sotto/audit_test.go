package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/storage"
)

// auditSetup copies the example configuration into a temporary folder,
// adds extra to it, and writes three records about one token: its
// exchange, an introspection from 48 hours ago and its revocation. It
// returns the config path.
func auditSetup(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"sotto.yaml", "clients.yaml", "catalog.yaml", "idp.jwks.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "sotto.yaml" {
			b = append(b, extra...)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	ctx := context.Background()
	store, err := storage.Open(ctx, storage.Config{DSN: filepath.Join(dir, "sotto.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	base := audit.Record{
		Time: now, RequestID: "req-exchange", ClientID: "voice-assistant", Subject: "sso.corp.example|alice",
		DeviceJKT: "jkt-1", Action: "ticket:create", Audience: "https://itsm.corp.example", TokenID: "jti-1",
	}
	issued := base
	issued.Event, issued.Decision, issued.CatalogEntry, issued.CatalogVersion = audit.EventExchange, audit.DecisionIssued, "entry-1", "catalog-1"
	_, err = store.CommitExchange(ctx, storage.ExchangeWrite{
		Token: &storage.AccessToken{
			TokenID: "jti-1", Signature: "sig", RequestID: "family-1", ClientID: "voice-assistant", Subject: base.Subject,
			Scope: "ticket:create", Audience: base.Audience, DeviceJKT: "jkt-1", IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute),
		},
		Audit: issued,
	})
	if err != nil {
		t.Fatal(err)
	}
	introspection := base
	introspection.RequestID, introspection.ClientID = "req-introspect", "itsm-connector"
	introspection.Event, introspection.Decision = audit.EventIntrospection, audit.DecisionActive
	introspection.Time = now.Add(-48 * time.Hour)
	if err := store.AppendAudit(ctx, introspection); err != nil {
		t.Fatal(err)
	}
	revocation := base
	revocation.RequestID, revocation.Event, revocation.Decision = "req-revoke", audit.EventRevocation, audit.DecisionRevoked
	if _, err := store.RevokeAccessTokens(ctx, "family-1", now, revocation); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "sotto.yaml")
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("sotto %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// exportLines runs sotto audit export with view and decodes each line.
func exportLines(t *testing.T, configPath, view string) []map[string]any {
	t.Helper()
	out := runOK(t, "audit", "export", "--view", view, "--config", configPath)
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("export line %q is not JSON: %v", line, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestAuditExportViews(t *testing.T) {
	configPath := auditSetup(t, "")

	security := exportLines(t, configPath, "security")
	if len(security) != 3 {
		t.Fatalf("security view has %d lines, want 3", len(security))
	}
	for _, key := range []string{"subject", "device_jkt", "token_id", "hash"} {
		if _, ok := security[0][key]; !ok {
			t.Errorf("security view lacks %s: %v", key, security[0])
		}
	}

	operations := exportLines(t, configPath, "operations")
	for _, line := range operations {
		for _, key := range []string{"subject", "subject_issuer", "device_jkt", "token_id", "detail", "hash"} {
			if _, ok := line[key]; ok {
				t.Errorf("operations view has %s: %v", key, line)
			}
		}
		for _, key := range []string{"time", "event", "client_id", "action", "decision"} {
			if _, ok := line[key]; !ok {
				t.Errorf("operations view lacks %s: %v", key, line)
			}
		}
	}

	compliance := exportLines(t, configPath, "compliance")
	first, _ := compliance[0]["subject"].(string)
	if !strings.HasPrefix(first, "p:") {
		t.Errorf("compliance subject = %q, want a pseudonym starting with p:", first)
	}
	for i, line := range compliance {
		if line["subject"] != first {
			t.Errorf("compliance line %d subject = %v, want the same pseudonym %s for the same person", i, line["subject"], first)
		}
		if jkt, _ := line["device_jkt"].(string); !strings.HasPrefix(jkt, "p:") {
			t.Errorf("compliance line %d device_jkt = %q, want a pseudonym", i, jkt)
		}
	}
	b, _ := json.Marshal(compliance)
	if strings.Contains(string(b), "alice") || strings.Contains(string(b), "jkt-1") {
		t.Errorf("compliance view names the subject or the device: %s", b)
	}
	if again := exportLines(t, configPath, "compliance"); again[0]["subject"] != first {
		t.Errorf("second compliance export gives subject %v, want the stored key's %s", again[0]["subject"], first)
	}

	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"audit", "export", "--view", "everything", "--config", configPath}, &bytes.Buffer{}, &stderr); err == nil {
		t.Error("export with an unknown view succeeded, want an error")
	}
}

func TestAuditVerifyCommand(t *testing.T) {
	configPath := auditSetup(t, "")
	if out := runOK(t, "audit", "verify", "--config", configPath); !strings.Contains(out, "audit chain intact: 3 record(s)") {
		t.Errorf("verify output = %q, want an intact chain of 3 records", out)
	}

	db, err := gorm.Open(sqlite.Open(filepath.Join(filepath.Dir(configPath), "sotto.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(`UPDATE audit_records SET decision = 'refused' WHERE id = 1`).Error; err != nil {
		t.Fatal(err)
	}
	if sqlDB, err := db.DB(); err == nil {
		sqlDB.Close()
	}

	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"audit", "verify", "--config", configPath}, &stdout, &stderr)
	if err == nil {
		t.Fatalf("verify of an edited log succeeded: %s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "FAILED at record 1 (edited)") {
		t.Errorf("verify output = %q, want it to name record 1 as edited", stdout.String())
	}
}

func TestAuditPruneCommand(t *testing.T) {
	configPath := auditSetup(t, "audit:\n  retention:\n    token_introspection: 24h\n")

	if out := runOK(t, "audit", "prune", "--config", configPath); !strings.Contains(out, "1 record(s) past their retention deleted") {
		t.Errorf("prune output = %q, want 1 record deleted", out)
	}
	out := runOK(t, "audit", "verify", "--config", configPath)
	for _, want := range []string{"audit chain intact: 2 record(s), 1 deleted range(s)", "latest checkpoint: record 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify after prune output = %q, want it to contain %q", out, want)
		}
	}
}

func TestAuditTraceCommand(t *testing.T) {
	configPath := auditSetup(t, "")

	tests := []struct {
		name string
		id   string
		want []string
	}{
		{"by token id", "jti-1", []string{"token jti-1", "revoked:", "token_exchange issued", "token_introspection active", "token_revocation revoked", "catalog-1", "3 audit records"}},
		{"by request id", "req-exchange", []string{"token jti-1", "token_exchange issued", "token_revocation revoked", "3 audit records"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := runOK(t, "audit", "trace", tc.id, "--config", configPath)
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("trace output lacks %q:\n%s", want, out)
				}
			}
		})
	}

	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"audit", "trace", "no-such-id", "--config", configPath}, &bytes.Buffer{}, &stderr); err == nil {
		t.Error("trace of an unknown id succeeded, want an error")
	}
}
