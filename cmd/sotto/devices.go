package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/storage"
)

const devicesUsage = `usage: sotto devices <command> [flags]

commands:
  list [--subject S]            list enrolled devices, of one subject (prefix|sub) or all
  show <jkt>                    show one device by its key thumbprint
  trust <jkt> managed|registered  set the trust level of a device
  revoke <jkt>                  revoke a device and every live token bound to its key

Every command takes --config FILE (default sotto.yaml, or $SOTTO_CONFIG).
`

// runDevices serves the device administration commands. Each change
// writes an audit record in the same transaction as the change.
func runDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, devicesUsage)
		return flag.ErrHelp
	}
	command, rest := args[0], args[1:]
	var subject string
	var extra func(*flag.FlagSet)
	if command == "list" {
		extra = func(fs *flag.FlagSet) {
			fs.StringVar(&subject, "subject", "", "list only the devices of `subject`, as prefix|sub")
		}
	}
	path, positional, err := deviceFlags("devices "+command, rest, stderr, extra)
	if err != nil {
		return err
	}

	want := map[string]int{"list": 0, "show": 1, "trust": 2, "revoke": 1}
	n, known := want[command]
	if !known {
		fmt.Fprintf(stderr, "sotto devices: unknown command %q\n\n%s", command, devicesUsage)
		return flag.ErrHelp
	}
	if len(positional) != n {
		fmt.Fprint(stderr, devicesUsage)
		return fmt.Errorf("devices %s takes %d argument(s), got %d", command, n, len(positional))
	}

	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	store, err := storage.Open(ctx, storage.Config{
		Driver: cfg.Storage.Driver, DSN: cfg.Storage.DSN, Synchronous: cfg.Storage.Synchronous, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate storage: %w", err)
	}

	now := time.Now().UTC()
	rec := audit.Record{Time: now, RequestID: "cli", ClientID: "sotto-cli"}
	switch command {
	case "list":
		devices, err := store.Devices(ctx, subject)
		if err != nil {
			return err
		}
		printDevices(stdout, devices)
	case "show":
		d, err := store.Device(ctx, positional[0])
		if err != nil {
			return deviceError(positional[0], err)
		}
		printDevice(stdout, d)
	case "trust":
		level := positional[1]
		if level != storage.TrustManaged && level != storage.TrustRegistered {
			return fmt.Errorf("invalid trust level %q: use managed or registered", level)
		}
		rec.Event, rec.Decision, rec.Reason = audit.EventDeviceTrust, audit.DecisionChanged, "admin_trust_"+level
		if err := store.SetDeviceTrust(ctx, positional[0], level, rec); err != nil {
			return deviceError(positional[0], err)
		}
		fmt.Fprintf(stdout, "device %s is now %s\n", positional[0], level)
	case "revoke":
		rec.Event, rec.Decision, rec.Reason = audit.EventDeviceRevocation, audit.DecisionRevoked, "admin_revoke"
		count, err := store.RevokeDevice(ctx, positional[0], now, rec)
		if err != nil {
			return deviceError(positional[0], err)
		}
		fmt.Fprintf(stdout, "device %s revoked; %d live token(s) revoked\n", positional[0], count)
	}
	return nil
}

// deviceFlags parses --config and extra flags placed before or after the
// positional arguments, and returns the config path and the arguments.
func deviceFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (string, []string, error) {
	fs := flag.NewFlagSet("sotto "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", envOr("SOTTO_CONFIG", "sotto.yaml"), "configuration `file`")
	if extra != nil {
		extra(fs)
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", nil, err
		}
		if fs.NArg() == 0 {
			return *configPath, positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func deviceError(jkt string, err error) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("no device with key thumbprint %s: list them with sotto devices list", jkt)
	case errors.Is(err, storage.ErrDeviceRevoked):
		return fmt.Errorf("device %s is revoked; its key cannot be trusted again, so enrol a new key", jkt)
	}
	return err
}

func printDevices(w io.Writer, devices []storage.Device) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JKT\tSUBJECT\tKIND\tNAME\tTRUST\tENROLLED\tLAST SEEN")
	for _, d := range devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.JKT, d.Subject, d.Kind, d.Name, deviceState(&d),
			d.EnrolledAt.Format(time.RFC3339), d.LastSeenAt.Format(time.RFC3339))
	}
	tw.Flush()
}

func printDevice(w io.Writer, d *storage.Device) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	revoked := "-"
	if d.RevokedAt != nil {
		revoked = d.RevokedAt.Format(time.RFC3339)
	}
	for _, row := range [][2]string{
		{"jkt", d.JKT}, {"subject", d.Subject}, {"kind", d.Kind}, {"name", d.Name},
		{"trust", d.Trust}, {"enrolled at", d.EnrolledAt.Format(time.RFC3339)},
		{"last seen", d.LastSeenAt.Format(time.RFC3339)}, {"revoked at", revoked},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], strings.TrimSpace(row[1]))
	}
	tw.Flush()
}

// deviceState is the trust level, or revoked.
func deviceState(d *storage.Device) string {
	if d.RevokedAt != nil {
		return "revoked"
	}
	return d.Trust
}
