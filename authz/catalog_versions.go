package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// Kinds of catalog change.
const (
	ChangeAdded    = "added"
	ChangeRemoved  = "removed"
	ChangeModified = "changed"
	ChangeDisabled = "disabled"
	ChangeEnabled  = "enabled"
)

// CatalogChange is one entry of a catalog version's diff.
type CatalogChange struct {
	Scope  string         `json:"scope"`
	Change string         `json:"change"`
	Before *config.Action `json:"before,omitempty"`
	After  *config.Action `json:"after,omitempty"`
}

// DiffActions returns the changes from before to after, sorted by scope.
// A change of the kill switch alone is disabled or enabled.
func DiffActions(before, after []config.Action) []CatalogChange {
	old := map[string]config.Action{}
	for _, a := range before {
		old[a.Scope] = a
	}
	seen := map[string]bool{}
	var out []CatalogChange
	for _, a := range after {
		seen[a.Scope] = true
		b, ok := old[a.Scope]
		switch {
		case !ok:
			out = append(out, CatalogChange{Scope: a.Scope, Change: ChangeAdded, After: ptr(a)})
		case reflect.DeepEqual(normalized(b), normalized(a)):
		default:
			kind := ChangeModified
			toggled := b
			toggled.Disabled = a.Disabled
			if reflect.DeepEqual(normalized(toggled), normalized(a)) {
				kind = map[bool]string{true: ChangeDisabled, false: ChangeEnabled}[a.Disabled]
			}
			out = append(out, CatalogChange{Scope: a.Scope, Change: kind, Before: ptr(b), After: ptr(a)})
		}
	}
	for _, b := range before {
		if !seen[b.Scope] {
			out = append(out, CatalogChange{Scope: b.Scope, Change: ChangeRemoved, Before: ptr(b)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Scope < out[j].Scope })
	return out
}

// normalized returns a through JSON, so nil and empty lists compare equal.
func normalized(a config.Action) map[string]any {
	b, _ := json.Marshal(a)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func ptr[T any](v T) *T { return &v }

// CatalogWrite is a change of the catalog by an admin client.
type CatalogWrite struct {
	// Expected is the catalog version the change is based on.
	Expected int64
	Actions  []config.Action
	ClientID string
	Comment  string
	// Operation and Target name the admin call for the audit record.
	Operation string
	Target    string
	RequestID string
}

// CatalogProblems is returned by WriteCatalog when the new catalog is
// invalid.
type CatalogProblems struct {
	Problems []config.Problem
}

func (e *CatalogProblems) Error() string {
	return fmt.Sprintf("the catalog has %d problems", len(e.Problems))
}

// WriteCatalog validates w.Actions and stores them as the catalog version
// after w.Expected, with the diff against the live catalog and an audit
// record of the call. It makes the new version live on this server at
// once, and other servers load it at their next poll. It returns the new
// version's number and diff. A concurrent change is
// storage.ErrVersionMismatch, and nothing is written.
func (s *Server) WriteCatalog(ctx context.Context, store LiveStore, w CatalogWrite) (int64, []CatalogChange, error) {
	actions := append([]config.Action(nil), w.Actions...)
	if ps := config.ValidateActions("catalog", actions); len(ps) > 0 {
		return 0, nil, &CatalogProblems{Problems: ps}
	}
	current, err := store.LatestCatalogVersion(ctx)
	if err != nil {
		return 0, nil, err
	}
	if current.Number != w.Expected {
		return 0, nil, fmt.Errorf("catalog version is %d, not %d: %w", current.Number, w.Expected, storage.ErrVersionMismatch)
	}
	before, err := DecodeActions(current.Actions)
	if err != nil {
		return 0, nil, err
	}
	diff := DiffActions(before, actions)
	diffJSON, _ := json.Marshal(diff)
	actionsJSON, _ := json.Marshal(nonNilActions(actions))

	rec := audit.Record{
		Time: s.now().UTC(), RequestID: w.RequestID, Event: audit.EventAdmin, ClientID: w.ClientID,
		Operation: w.Operation, Target: w.Target, Decision: audit.DecisionChanged,
		Detail: fmt.Sprintf("Catalog version %d to %d: %d changes. %s", w.Expected, w.Expected+1, len(diff), w.Comment),
	}
	if rec.RequestID == "" {
		rec.RequestID = oauth.NewRequestID()
	}
	if len(diff) == 1 {
		rec.Action = diff[0].Scope
		rec.Before, rec.After = jsonOrEmpty(diff[0].Before), jsonOrEmpty(diff[0].After)
	} else {
		rec.Before, rec.After = string(current.Actions), string(actionsJSON)
	}
	number, err := store.AddCatalogVersion(ctx, w.Expected, storage.CatalogVersion{
		CreatedAt: rec.Time, ClientID: w.ClientID, Comment: w.Comment, Actions: actionsJSON, Diff: diffJSON,
	}, rec)
	if err != nil {
		return 0, nil, err
	}
	if err := s.Refresh(ctx, store); err != nil {
		s.logger.ErrorContext(ctx, "load the catalog version just written", "catalog_number", number, "error", err)
	}
	return number, diff, nil
}

func jsonOrEmpty(a *config.Action) string {
	if a == nil {
		return ""
	}
	b, _ := json.Marshal(a)
	return string(b)
}
