package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/sotto-auth/sotto/audit"
)

// Trace is everything the log holds about one action: the tokens and the
// audit records that name them, in the order they were written.
type Trace struct {
	Tokens  []*AccessToken `json:"tokens"`
	Records []audit.Record `json:"records"`
}

// Trace finds the records whose token or request id is id, then the
// records of every request and token those name: the exchange and its
// decision, the step-up challenge and its completion (which carry the
// exchange's request id), every introspection and revocation of the
// token, and the device revocation that ended it. Requests other than
// the first are found by a scan, since request_id is not indexed.
func (s *Store) Trace(ctx context.Context, id string) (*Trace, error) {
	byID := map[int64]audit.Record{}
	add := func(f AuditFilter) error {
		recs, err := s.allRecords(ctx, f)
		for _, r := range recs {
			byID[r.ID] = r
		}
		return err
	}
	if err := add(AuditFilter{TokenID: id}); err != nil {
		return nil, err
	}
	if err := add(AuditFilter{RequestID: id}); err != nil {
		return nil, err
	}

	tokenIDs := map[string]bool{id: true}
	requestIDs := map[string]bool{id: true}
	for _, r := range copyRecords(byID) {
		if r.TokenID != "" && !tokenIDs[r.TokenID] {
			tokenIDs[r.TokenID] = true
			if err := add(AuditFilter{TokenID: r.TokenID}); err != nil {
				return nil, err
			}
		}
	}
	for _, r := range copyRecords(byID) {
		if r.RequestID != "" && !requestIDs[r.RequestID] {
			requestIDs[r.RequestID] = true
			if err := add(AuditFilter{RequestID: r.RequestID}); err != nil {
				return nil, err
			}
		}
	}

	t := &Trace{}
	for tokenID := range tokenIDs {
		tok, err := s.AccessTokenByID(ctx, tokenID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		t.Tokens = append(t.Tokens, tok)
		if tok.RevokedAt != nil {
			if err := s.addRevocation(ctx, tok, byID); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(t.Tokens, func(i, j int) bool { return t.Tokens[i].TokenID < t.Tokens[j].TokenID })
	t.Records = copyRecords(byID)
	return t, nil
}

// copyRecords returns the records of byID in id order.
func copyRecords(byID map[int64]audit.Record) []audit.Record {
	out := make([]audit.Record, 0, len(byID))
	for _, r := range byID {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// addRevocation adds the revocation that ended tok. A revocation of one
// token names it, but a revocation of a device, a subject, a client or an
// action names what it matched, so those are the revocations of the same
// second as the token's revocation time that ended at least one token
// and whose device, subject or action is the token's, or that an
// administrator made by filter.
func (s *Store) addRevocation(ctx context.Context, tok *AccessToken, byID map[int64]audit.Record) error {
	at := *tok.RevokedAt
	for _, event := range []audit.Event{audit.EventRevocation, audit.EventDeviceRevocation, audit.EventAdmin} {
		recs, err := s.allRecords(ctx, AuditFilter{Event: string(event), Since: at.Add(-time.Second), Until: at.Add(time.Second)})
		if err != nil {
			return err
		}
		for _, r := range recs {
			matches := r.TokenID == tok.TokenID || r.DeviceJKT == tok.DeviceJKT ||
				r.Subject == tok.Subject || r.Action == tok.Scope || r.Operation != ""
			if r.Count > 0 && matches {
				byID[r.ID] = r
			}
		}
	}
	return nil
}

// allRecords pages through every record f selects.
func (s *Store) allRecords(ctx context.Context, f AuditFilter) ([]audit.Record, error) {
	var out []audit.Record
	for {
		f.Limit = 1000
		recs, err := s.AuditRecords(ctx, f)
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
