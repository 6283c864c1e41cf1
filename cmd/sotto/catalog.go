package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sotto-auth/sotto/admin"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/storage"
)

// cliClient names the command line in catalog versions and audit records.
const cliClient = "sotto-cli"

func runCatalog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "apply" && args[0] != "lint") {
		fmt.Fprintf(stderr, "sotto catalog: missing or unknown subcommand; use apply or lint\n\n%s", usage)
		return flag.ErrHelp
	}
	var file, comment string
	var dryRun bool
	path, err := commonFlags("catalog "+args[0], args[1:], stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "f", "", "catalog `file` (default: catalog_file of the configuration)")
		if args[0] == "apply" {
			fs.BoolVar(&dryRun, "dry-run", false, "print the difference from the live catalog and change nothing")
			fs.StringVar(&comment, "comment", "", "comment stored with the new catalog version")
		}
	})
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if file == "" {
		file = cfg.CatalogFile
	}
	actions, err := config.LoadCatalog(file)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Log.Format, "warn")
	srv, a, err := openServer(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.close()
	defer srv.Close()

	if args[0] == "lint" {
		warnings := authz.LintCatalog(actions, time.Duration(cfg.Tokens.MaxTTL), srv.Clients())
		for _, w := range warnings {
			fmt.Fprintln(stdout, "warning:", w)
		}
		fmt.Fprintf(stdout, "%s: %d actions, %d warnings\n", file, len(actions), len(warnings))
		return nil
	}

	live, err := a.store.LatestCatalogVersion(ctx)
	if err != nil {
		return fmt.Errorf("read the live catalog: %w", err)
	}
	before, err := authz.DecodeActions(live.Actions)
	if err != nil {
		return err
	}
	diff := authz.DiffActions(before, actions)
	printDiff(stdout, live.Number, diff)
	if dryRun || len(diff) == 0 {
		return nil
	}
	number, _, err := srv.WriteCatalog(ctx, a.store, authz.CatalogWrite{
		Expected: live.Number, Actions: actions, ClientID: cliClient, Comment: comment,
		Operation: "catalog.apply", Target: file,
	})
	if errors.Is(err, storage.ErrVersionMismatch) {
		return fmt.Errorf("the catalog changed while applying; run the command again: %w", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "catalog version %d is live; running servers load it within %s\n", number, cfg.Admin.PollInterval)
	return nil
}

func printDiff(w io.Writer, number int64, diff []authz.CatalogChange) {
	if len(diff) == 0 {
		fmt.Fprintf(w, "no change from the live catalog version %d\n", number)
		return
	}
	fmt.Fprintf(w, "changes from the live catalog version %d:\n", number)
	for _, c := range diff {
		fmt.Fprintf(w, "  %-8s %s\n", c.Change, c.Scope)
		if c.Before != nil {
			b, _ := json.Marshal(c.Before)
			fmt.Fprintf(w, "    - %s\n", b)
		}
		if c.After != nil {
			b, _ := json.Marshal(c.After)
			fmt.Fprintf(w, "    + %s\n", b)
		}
	}
}

// openServer opens the store and builds a server with the stored catalog
// and clients live, for commands that act as one.
func openServer(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*authz.Server, *app, error) {
	a, err := openApp(ctx, cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	srv, err := authz.New(ctx, cfg, a.store, a.keys, authz.Options{Logger: logger})
	if err == nil {
		err = srv.ImportConfigured(ctx, a.store)
	}
	if err == nil {
		err = srv.Refresh(ctx, a.store)
	}
	if err != nil {
		a.close()
		return nil, nil, err
	}
	return srv, a, nil
}

func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var req admin.ExplainRequest
	var claims, details string
	path, err := commonFlags("explain", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&req.ClientID, "client", "", "client_id of the assistant")
		fs.StringVar(&claims, "claims", "", "subject claims as a JSON object, such as {\"iss\":\"https://sso.corp.example\",\"sub\":\"alice\",\"groups\":[\"employees\"]}")
		fs.StringVar(&req.SubjectToken, "subject-token", "", "an ID token to verify instead of -claims")
		fs.StringVar(&req.DeviceJKT, "device-jkt", "", "RFC 7638 thumbprint of the device key")
		fs.StringVar(&req.Scope, "scope", "", "the action")
		fs.StringVar(&req.Audience, "audience", "", "the audience, when the action has several")
		fs.StringVar(&details, "details", "", "authorization_details as a JSON array")
	})
	if err != nil {
		return err
	}
	if claims != "" {
		if err := json.Unmarshal([]byte(claims), &req.SubjectClaims); err != nil {
			return fmt.Errorf("-claims is not a JSON object: %w", err)
		}
	}
	if req.SubjectClaims == nil && req.SubjectToken == "" {
		return errors.New("pass -claims or -subject-token")
	}
	if details != "" {
		req.AuthorizationDetails = details
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	srv, a, err := openServer(ctx, cfg, newLogger(stderr, cfg.Log.Format, "warn"))
	if err != nil {
		return err
	}
	defer a.close()
	defer srv.Close()

	// A missing client must reach Explain as a nil interface, not as a
	// nil *authz.Client.
	var client exchange.Client
	if c, ok := srv.Client(req.ClientID); ok {
		client = c
	}
	out, err := admin.Explain(ctx, srv.Exchange(), client, req)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
