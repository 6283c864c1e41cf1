package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/storage"
)

// runAuditTrace prints everything the log holds about one action, found
// by the token's jti or by a request id: the exchange and its decision,
// the step-up challenge, the token, every introspection and every
// revocation of it.
func runAuditTrace(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, positional, err := deviceFlags("audit trace", args, stderr, nil)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("audit trace takes one argument, a token's jti or a request id; got %d", len(positional))
	}
	_, store, _, err := openStore(ctx, path, stderr)
	if err != nil {
		return err
	}
	defer store.Close()

	t, err := store.Trace(ctx, positional[0])
	if err != nil {
		return err
	}
	if len(t.Records) == 0 && len(t.Tokens) == 0 {
		return fmt.Errorf("no token or audit record has the id %q: pass a token's jti or the X-Request-Id of a request", positional[0])
	}
	printTrace(stdout, t)
	return nil
}

func printTrace(w io.Writer, t *storage.Trace) {
	for _, tok := range t.Tokens {
		fmt.Fprintf(w, "token %s\n", tok.TokenID)
		fmt.Fprintf(w, "  client:     %s\n  subject:    %s\n  action:     %s\n  audience:   %s\n  device_jkt: %s\n",
			tok.ClientID, tok.Subject, tok.Scope, tok.Audience, tok.DeviceJKT)
		fmt.Fprintf(w, "  issued:     %s\n  expires:    %s\n", formatTraceTime(tok.IssuedAt), formatTraceTime(tok.ExpiresAt))
		if tok.RevokedAt != nil {
			fmt.Fprintf(w, "  revoked:    %s\n", formatTraceTime(*tok.RevokedAt))
		} else {
			fmt.Fprintf(w, "  revoked:    no\n")
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintf(w, "%d audit records\n", len(t.Records))
	for _, r := range t.Records {
		fmt.Fprintf(w, "#%d %s %s %s\n", r.ID, formatTraceTime(r.Time), r.Event, r.Decision)
		fields := [][2]string{
			{"request_id", r.RequestID}, {"reason", r.Reason}, {"client", r.ClientID},
			{"subject", r.Subject}, {"device_jkt", r.DeviceJKT}, {"device_trust", r.DeviceTrust},
			{"action", r.Action}, {"audience", r.Audience},
			{"catalog_entry", r.CatalogEntry}, {"catalog_version", r.CatalogVersion},
			{"token_id", r.TokenID}, {"context_hash", r.ContextHash}, {"detail", r.Detail},
		}
		if !r.TokenExpiresAt.IsZero() {
			fields = append(fields, [2]string{"token_expires", formatTraceTime(r.TokenExpiresAt)})
		}
		if r.LatencyMicros > 0 {
			fields = append(fields, [2]string{"latency", fmt.Sprintf("%d µs", r.LatencyMicros)})
		}
		if r.Event == audit.EventRevocation || r.Event == audit.EventDeviceRevocation {
			fields = append(fields, [2]string{"tokens_ended", fmt.Sprint(r.Count)})
		}
		for _, f := range fields {
			if f[1] != "" {
				fmt.Fprintf(w, "  %-16s %s\n", f[0]+":", strings.ReplaceAll(f[1], "\n", " "))
			}
		}
	}
}

func formatTraceTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}
