// Command sotto runs the Sotto authorization server and its maintenance
// tasks.
//
//	sotto serve --config FILE          start the server
//	sotto migrate --config FILE        apply database migrations
//	sotto keys rotate --config FILE    add a new signing key and retire the current one
//	sotto audit export|verify|prune|trace  export, verify, prune or trace the audit log
//	sotto devices list|show|trust|revoke  administer enrolled devices
//	sotto catalog apply|lint            make a catalog file live, or check it for risky entries
//	sotto explain                       show the decision an exchange would get
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: sotto <command> [flags]

commands:
  serve          start the authorization server
  migrate        apply pending database migrations and exit
  keys rotate    add a new signing key; the current one stays in the JWKS until its tokens expire
  audit          export, verify, prune or trace the audit log (sotto audit for help)
  devices        list, show, set the trust of, or revoke enrolled devices (sotto devices for help)
  catalog apply  show the difference of a catalog file (-f FILE) from the live catalog and make it live (--dry-run only shows)
  catalog lint   warn about risky entries of a catalog file: sensitive actions without step-up, max_ttl above the server maximum, audiences no client can introspect
  explain        show the decision and every rule of an exchange, issuing nothing (-client, -claims or -subject-token, -scope, ...)

Every command takes --config FILE after its name (default $SOTTO_CONFIG,
or sotto.yaml in the working directory).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sotto:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], stderr)
	case "keys":
		if len(args) < 2 || args[1] != "rotate" {
			fmt.Fprintf(stderr, "sotto keys: missing or unknown subcommand; the one subcommand is rotate\n\n%s", usage)
			return flag.ErrHelp
		}
		return runKeysRotate(ctx, args[2:], stdout, stderr)
	case "audit":
		return runAudit(ctx, args[1:], stdout, stderr)
	case "devices":
		return runDevices(ctx, args[1:], stdout, stderr)
	case "catalog":
		return runCatalog(ctx, args[1:], stdout, stderr)
	case "explain":
		return runExplain(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "sotto: unknown command %q\n\n%s", args[0], usage)
	return flag.ErrHelp
}

// commonFlags parses the flags every command takes.
func commonFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (string, error) {
	fs := flag.NewFlagSet("sotto "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", envOr("SOTTO_CONFIG", "sotto.yaml"), "configuration `file`")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if _, err := os.Stat(*configPath); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("config file %s not found: pass --config FILE after the command, or set SOTTO_CONFIG", *configPath)
	}
	return *configPath, nil
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
