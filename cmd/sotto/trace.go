package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/storage"
)

// runAuditTrace prints everything the log holds about one action, found
// by the token's jti or by a request id: the exchange and its decision,
// the token, every introspection and every revocation of it.
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

	t, err := collectTrace(ctx, store, positional[0])
	if err != nil {
		return err
	}
	if len(t.records) == 0 && len(t.tokens) == 0 {
		return fmt.Errorf("no token or audit record has the id %q: pass a token's jti or the X-Request-Id of a request", positional[0])
	}
	printTrace(stdout, t)
	return nil
}

type trace struct {
	tokens  []*storage.AccessToken
	records []audit.Record
}

// collectTrace finds the records with id as their token or request id,
// then the records of every token those name, and the device revocations
// that ended one of the tokens.
func collectTrace(ctx context.Context, store *storage.Store, id string) (*trace, error) {
	byID := map[int64]audit.Record{}
	add := func(f storage.AuditFilter) error {
		recs, err := allRecords(ctx, store, f)
		for _, r := range recs {
			byID[r.ID] = r
		}
		return err
	}
	if err := add(storage.AuditFilter{TokenID: id}); err != nil {
		return nil, err
	}
	if err := add(storage.AuditFilter{RequestID: id}); err != nil {
		return nil, err
	}

	tokenIDs := map[string]bool{id: true}
	for _, r := range byID {
		if r.TokenID != "" && !tokenIDs[r.TokenID] {
			tokenIDs[r.TokenID] = true
			if err := add(storage.AuditFilter{TokenID: r.TokenID}); err != nil {
				return nil, err
			}
		}
	}

	t := &trace{}
	for tokenID := range tokenIDs {
		tok, err := store.AccessTokenByID(ctx, tokenID)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		t.tokens = append(t.tokens, tok)
		if tok.RevokedAt != nil {
			if err := addDeviceRevocation(ctx, store, tok, byID); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(t.tokens, func(i, j int) bool { return t.tokens[i].TokenID < t.tokens[j].TokenID })
	for _, r := range byID {
		t.records = append(t.records, r)
	}
	sort.Slice(t.records, func(i, j int) bool { return t.records[i].ID < t.records[j].ID })
	return t, nil
}

// addDeviceRevocation adds the device revocation that ended tok, if one
// did. A device revocation names the device key rather than each token,
// so it is the one of the token's key at the token's revocation time.
func addDeviceRevocation(ctx context.Context, store *storage.Store, tok *storage.AccessToken, byID map[int64]audit.Record) error {
	recs, err := allRecords(ctx, store, storage.AuditFilter{Event: string(audit.EventDeviceRevocation), DeviceJKT: tok.DeviceJKT})
	for _, r := range recs {
		if r.Count > 0 && r.Time.Sub(*tok.RevokedAt).Abs() < time.Second {
			byID[r.ID] = r
		}
	}
	return err
}

// allRecords pages through every record f selects.
func allRecords(ctx context.Context, store *storage.Store, f storage.AuditFilter) ([]audit.Record, error) {
	var out []audit.Record
	for {
		f.Limit = 1000
		recs, err := store.AuditRecords(ctx, f)
		if err != nil {
			return out, fmt.Errorf("read audit records: %w", err)
		}
		out = append(out, recs...)
		if len(recs) < f.Limit {
			return out, nil
		}
		f.AfterID = recs[len(recs)-1].ID
	}
}

func printTrace(w io.Writer, t *trace) {
	for _, tok := range t.tokens {
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

	fmt.Fprintf(w, "%d audit records\n", len(t.records))
	for _, r := range t.records {
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
