package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/storage"
)

const auditUsage = `usage: sotto audit <command> [flags]

commands:
  export [--view V] [--after ID] [--out FILE]  write records as JSON lines; V is security (default), operations or compliance
  verify [--jwks FILE]                         check the hash chain and the latest signed checkpoint
  prune                                        sign a checkpoint, then delete the records past audit.retention
  trace <jti or request id>                    print every record about one token or request

Every command takes --config FILE (default sotto.yaml, or $SOTTO_CONFIG).
`

// runAudit serves the audit log commands.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "export":
		return runAuditExport(ctx, args[1:], stdout, stderr)
	case "verify":
		return runAuditVerify(ctx, args[1:], stdout, stderr)
	case "prune":
		return runAuditPrune(ctx, args[1:], stdout, stderr)
	case "trace":
		return runAuditTrace(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "sotto audit: unknown command %q\n\n%s", args[0], auditUsage)
	return flag.ErrHelp
}

// openStore loads the config at path and opens and migrates its store,
// without the signing keys, so commands that only read the log need no
// key-encryption key.
func openStore(ctx context.Context, path string, stderr io.Writer) (*config.Config, *storage.Store, *slog.Logger, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, nil, err
	}
	logger := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	store, err := storage.Open(ctx, storage.Config{
		Driver: cfg.Storage.Driver, DSN: cfg.Storage.DSN, Synchronous: cfg.Storage.Synchronous, Logger: logger,
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open storage: %w", err)
	}
	if err := store.Migrate(ctx); err != nil {
		store.Close()
		return nil, nil, nil, fmt.Errorf("migrate storage: %w", err)
	}
	return cfg, store, logger, nil
}

func runAuditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var out, viewName string
	var after int64
	path, err := commonFlags("audit export", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "", "write to `file` instead of standard output")
		fs.Int64Var(&after, "after", 0, "export records with an id above `id`")
		fs.StringVar(&viewName, "view", string(audit.ViewSecurity), "the `view`: security (every field), operations (no subject identifiers) or compliance (pseudonyms)")
	})
	if err != nil {
		return err
	}
	view, err := audit.ParseView(viewName)
	if err != nil {
		return err
	}
	cfg, store, _, err := openStore(ctx, path, stderr)
	if err != nil {
		return err
	}
	defer store.Close()

	var pseudonyms *audit.Pseudonymizer
	if view == audit.ViewCompliance {
		if pseudonyms, err = pseudonymizer(ctx, cfg, store); err != nil {
			return err
		}
	}

	w := stdout
	if out != "" {
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	enc := json.NewEncoder(w)
	for {
		records, err := store.AuditRecords(ctx, storage.AuditFilter{AfterID: after, Limit: 1000})
		if err != nil {
			return fmt.Errorf("read audit records: %w", err)
		}
		if len(records) == 0 {
			return nil
		}
		for _, r := range records {
			if err := enc.Encode(view.Apply(r, pseudonyms)); err != nil {
				return err
			}
		}
		after = records[len(records)-1].ID
	}
}

// pseudonymKeySetting is the settings key of the pseudonym key generated
// when audit.pseudonym_key is not configured.
const pseudonymKeySetting = "audit_pseudonym_key"

// pseudonymizer returns the compliance view's pseudonymizer, keyed with
// audit.pseudonym_key or else with a random key that the first export
// stores in the settings, so every export gives one person the same
// pseudonym.
func pseudonymizer(ctx context.Context, cfg *config.Config, store *storage.Store) (*audit.Pseudonymizer, error) {
	if cfg.Audit.PseudonymKey != "" {
		p, err := audit.NewPseudonymizer([]byte(cfg.Audit.PseudonymKey))
		if err != nil {
			return nil, fmt.Errorf("audit.pseudonym_key: %w: use a random value such as the output of openssl rand -base64 32", err)
		}
		return p, nil
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	key, err := store.SetSettingIfAbsent(ctx, pseudonymKeySetting, fresh)
	if err != nil {
		return nil, fmt.Errorf("read the pseudonym key: %w", err)
	}
	return audit.NewPseudonymizer(key)
}

// errChainBroken makes verify exit with a failure after it printed the
// problem.
var errChainBroken = errors.New("the audit chain is broken")

func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var jwksFile string
	path, err := commonFlags("audit verify", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&jwksFile, "jwks", "", "verify the checkpoint against the JWK Set in `file` (a saved copy of the published JWKS) instead of the keys in the database")
	})
	if err != nil {
		return err
	}
	var keys jose.JSONWebKeySet
	if jwksFile != "" {
		b, err := os.ReadFile(jwksFile)
		if err != nil {
			return fmt.Errorf("read --jwks: %w", err)
		}
		if err := json.Unmarshal(b, &keys); err != nil {
			return fmt.Errorf("--jwks %s is not a JWK Set: %w", jwksFile, err)
		}
	}
	_, store, _, err := openStore(ctx, path, stderr)
	if err != nil {
		return err
	}
	defer store.Close()

	report, err := store.VerifyAuditChain(ctx, storage.VerifyOptions{Keys: keys})
	if err != nil {
		return err
	}
	if p := report.Problem; p != nil {
		fmt.Fprintf(stdout, "FAILED at record %d (%s): %s\n", p.ID, p.Kind, p.Message)
		fmt.Fprintf(stdout, "checked %d record(s) and %d deleted range(s) before the problem\n", report.Records, report.Gaps)
		return errChainBroken
	}
	fmt.Fprintf(stdout, "audit chain intact: %d record(s), %d deleted range(s), head at record %d\n",
		report.Records, report.Gaps, report.Head)
	if c := report.Checkpoint; c != nil {
		fmt.Fprintf(stdout, "latest checkpoint: record %d, signed %s\n", c.Seq, time.Unix(c.IssuedAt, 0).UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintln(stdout, "no signed checkpoint yet: run sotto audit prune, or let the server write one")
	}
	return nil
}

func runAuditPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, err := commonFlags("audit prune", args, stderr, nil)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	a, err := openApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.close()

	res, err := a.pruneAudit(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checkpoint signed, %d record(s) past their retention deleted\n", res.Deleted)
	return nil
}

// pruneAudit signs a checkpoint and deletes the records past their
// retention.
func (a *app) pruneAudit(ctx context.Context) (storage.PruneResult, error) {
	retention := make(map[audit.Event]time.Duration, len(a.cfg.Audit.Retention))
	for event, d := range a.cfg.Audit.Retention {
		retention[audit.Event(event)] = time.Duration(d)
	}
	return a.store.PruneAudit(ctx, storage.PruneOptions{
		Retention: retention,
		Now:       time.Now(),
		Sign:      a.keys.SignAuditCheckpoint,
		Issuer:    a.cfg.Issuer,
	})
}
