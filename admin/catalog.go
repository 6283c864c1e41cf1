package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/storage"
)

func (a *api) catalogRoutes(r *mux.Router) {
	r.Handle("/catalog", a.require(config.ScopeCatalogRead, "catalog.get", a.getCatalog)).Methods(http.MethodGet)
	r.Handle("/catalog/actions", a.require(config.ScopeCatalogRead, "catalog.list", a.getCatalog)).Methods(http.MethodGet)
	r.Handle("/catalog/actions", a.require(config.ScopeCatalogWrite, "catalog.create", a.createAction)).Methods(http.MethodPost)
	r.Handle("/catalog/actions/{scope}", a.require(config.ScopeCatalogRead, "catalog.get_action", a.getAction)).Methods(http.MethodGet)
	r.Handle("/catalog/actions/{scope}", a.require(config.ScopeCatalogWrite, "catalog.update", a.updateAction)).Methods(http.MethodPut)
	r.Handle("/catalog/actions/{scope}", a.require(config.ScopeCatalogWrite, "catalog.delete", a.deleteAction)).Methods(http.MethodDelete)
	r.Handle("/catalog/actions/{scope}", a.require(config.ScopeCatalogWrite, "catalog.kill_switch", a.switchAction)).Methods(http.MethodPost)
	r.Handle("/catalog/versions", a.require(config.ScopeCatalogRead, "catalog.versions", a.listVersions)).Methods(http.MethodGet)
	r.Handle("/catalog/versions/{number}", a.require(config.ScopeCatalogRead, "catalog.version", a.getVersion)).Methods(http.MethodGet)
}

// live returns the newest stored catalog version and its actions.
func (a *api) live(r *http.Request) (*storage.CatalogVersion, []config.Action, *Error) {
	v, err := a.Store.LatestCatalogVersion(r.Context())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, apiError(http.StatusServiceUnavailable, "catalog_not_stored",
			"The catalog is not in the database yet; start the server once, or run sotto catalog apply.")
	}
	if err != nil {
		return nil, nil, a.internalError(r, err)
	}
	actions, err := authz.DecodeActions(v.Actions)
	if err != nil {
		return nil, nil, a.internalError(r, err)
	}
	return v, actions, nil
}

// etag returns the entity tag of catalog version n (RFC 9110 §8.8.3).
func etag(n int64) string { return `"` + strconv.FormatInt(n, 10) + `"` }

// precondition returns the catalog version of the If-Match header (RFC
// 9110 §13.1.1), or current when the header is absent and not required.
// A header that names another version than current is 412 (RFC 9110
// §13.1.1), so a change based on an old read never overwrites a newer
// one. A missing header where it is required is 428 (RFC 6585 §3).
func precondition(r *http.Request, current int64, required bool) (int64, *Error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		if required {
			return 0, apiError(http.StatusPreconditionRequired, "precondition_required",
				fmt.Sprintf("Send If-Match with the ETag of the catalog version the change is based on: the version number in double quotes, such as %d in quotes for the live version.", current))
		}
		return current, nil
	}
	if h == "*" {
		return current, nil
	}
	n, err := strconv.ParseInt(strings.Trim(h, `"`), 10, 64)
	if err != nil || !strings.HasPrefix(h, `"`) || !strings.HasSuffix(h, `"`) {
		return 0, badRequest(fmt.Sprintf("If-Match must be the catalog version's ETag: the version number in double quotes, such as %d in quotes.", current))
	}
	if n != current {
		return 0, versionMismatch(n, current)
	}
	return n, nil
}

func versionMismatch(got, current int64) *Error {
	e := apiError(http.StatusPreconditionFailed, "precondition_failed", fmt.Sprintf(
		"The catalog changed: the change is based on version %d but the live version is %d. Read the catalog again, reapply the change and send If-Match with %d in double quotes.",
		got, current, current))
	e.Header = http.Header{"Etag": {etag(current)}}
	return e
}

type catalogBody struct {
	Version int64           `json:"version"`
	Actions []config.Action `json:"actions"`
}

func (a *api) getCatalog(w http.ResponseWriter, r *http.Request) *Error {
	v, actions, e := a.live(r)
	if e != nil {
		return e
	}
	w.Header().Set("ETag", etag(v.Number))
	writeJSON(w, http.StatusOK, catalogBody{Version: v.Number, Actions: nonNil(actions)})
	return nil
}

type actionBody struct {
	Version int64         `json:"version"`
	Action  config.Action `json:"action"`
}

func scopeVar(r *http.Request) (string, string, *Error) {
	raw, err := url.PathUnescape(mux.Vars(r)["scope"])
	if err != nil {
		return "", "", badRequest("The scope in the path is not validly percent-encoded.")
	}
	// A kill switch is a custom method on the action: POST
	// /v1/catalog/actions/{scope}:disable or :enable.
	for _, m := range []string{"disable", "enable"} {
		if s, ok := strings.CutSuffix(raw, ":"+m); ok && r.Method == http.MethodPost {
			return s, m, nil
		}
	}
	return raw, "", nil
}

func findAction(actions []config.Action, scope string) int {
	return slices.IndexFunc(actions, func(x config.Action) bool { return x.Scope == scope })
}

func (a *api) getAction(w http.ResponseWriter, r *http.Request) *Error {
	scope, _, e := scopeVar(r)
	if e != nil {
		return e
	}
	v, actions, e := a.live(r)
	if e != nil {
		return e
	}
	i := findAction(actions, scope)
	if i < 0 {
		return actionNotFound(scope)
	}
	w.Header().Set("ETag", etag(v.Number))
	writeJSON(w, http.StatusOK, actionBody{Version: v.Number, Action: actions[i]})
	return nil
}

func actionNotFound(scope string) *Error {
	return apiError(http.StatusNotFound, "not_found", fmt.Sprintf(
		"No action %s in the catalog; GET /v1/catalog/actions lists them.", quote(scope)))
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return "'" + cleanText(s) + "'"
}

type writeResult struct {
	Version int64                 `json:"version"`
	Changes []authz.CatalogChange `json:"changes"`
	// RevokedTokens is the number of tokens a kill switch ended.
	RevokedTokens *int64 `json:"revoked_tokens,omitempty"`
}

// commit writes actions as the version after expected.
func (a *api) commit(w http.ResponseWriter, r *http.Request, expected int64, actions []config.Action,
	operation, target, comment string, status int,
) (int64, *Error) {
	markRecorded(r.Context())
	number, diff, err := a.Server.WriteCatalog(r.Context(), a.Store, authz.CatalogWrite{
		Expected: expected, Actions: actions, ClientID: principal(r.Context()).ClientID,
		Comment: comment, Operation: operation, Target: target, RequestID: requestID(r),
	})
	var problems *authz.CatalogProblems
	switch {
	case errors.As(err, &problems):
		e := apiError(http.StatusUnprocessableEntity, "invalid_catalog",
			"The change makes the catalog invalid; fix each listed problem and send it again.")
		for _, p := range problems.Problems {
			e.Problems = append(e.Problems, p.Key+": got "+quote(p.Value)+", expected "+p.Expected)
		}
		return 0, e
	case errors.Is(err, storage.ErrVersionMismatch):
		latest, lerr := a.Store.LatestCatalogVersion(r.Context())
		if lerr != nil {
			return 0, a.internalError(r, lerr)
		}
		return 0, versionMismatch(expected, latest.Number)
	case err != nil:
		return 0, a.internalError(r, err)
	}
	if status != 0 {
		w.Header().Set("ETag", etag(number))
		writeJSON(w, status, writeResult{Version: number, Changes: nonNil(diff)})
	}
	return number, nil
}

type actionWrite struct {
	config.Action
	Comment string `json:"comment,omitempty"`
}

func (a *api) createAction(w http.ResponseWriter, r *http.Request) *Error {
	var body actionWrite
	if e := decodeJSON(r, &body); e != nil {
		return e
	}
	v, actions, e := a.live(r)
	if e != nil {
		return e
	}
	expected, e := precondition(r, v.Number, false)
	if e != nil {
		return e
	}
	if findAction(actions, body.Scope) >= 0 {
		return apiError(http.StatusConflict, "conflict", fmt.Sprintf(
			"The action %s already exists; change it with PUT /v1/catalog/actions/{scope}.", quote(body.Scope)))
	}
	_, e = a.commit(w, r, expected, append(actions, body.Action), "catalog.create", body.Scope, body.Comment, http.StatusCreated)
	return e
}

func (a *api) updateAction(w http.ResponseWriter, r *http.Request) *Error {
	scope, _, e := scopeVar(r)
	if e != nil {
		return e
	}
	var body actionWrite
	if e := decodeJSON(r, &body); e != nil {
		return e
	}
	if body.Scope == "" {
		body.Scope = scope
	}
	if body.Scope != scope {
		return badRequest("The scope in the body differs from the scope in the path; an action cannot be renamed, create a new one instead.")
	}
	v, actions, e := a.live(r)
	if e != nil {
		return e
	}
	expected, e := precondition(r, v.Number, true)
	if e != nil {
		return e
	}
	i := findAction(actions, scope)
	if i < 0 {
		return actionNotFound(scope)
	}
	actions[i] = body.Action
	_, e = a.commit(w, r, expected, actions, "catalog.update", scope, body.Comment, http.StatusOK)
	return e
}

func (a *api) deleteAction(w http.ResponseWriter, r *http.Request) *Error {
	scope, _, e := scopeVar(r)
	if e != nil {
		return e
	}
	v, actions, e := a.live(r)
	if e != nil {
		return e
	}
	expected, e := precondition(r, v.Number, true)
	if e != nil {
		return e
	}
	i := findAction(actions, scope)
	if i < 0 {
		return actionNotFound(scope)
	}
	_, e = a.commit(w, r, expected, slices.Delete(actions, i, i+1), "catalog.delete", scope, "", http.StatusOK)
	return e
}

// switchBody is the body of a kill switch call. It may be empty.
type switchBody struct {
	// RevokeTokens also revokes every live token of the action or client.
	RevokeTokens bool   `json:"revoke_tokens"`
	Comment      string `json:"comment,omitempty"`
}

func decodeSwitch(r *http.Request) (switchBody, *Error) {
	var body switchBody
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return body, nil
	}
	return body, decodeJSON(r, &body)
}

// switchAction serves POST /v1/catalog/actions/{scope}:disable and
// :enable, the action's kill switch. Disabling creates a catalog version
// that every server makes live at its next poll, and may revoke the
// action's live tokens in the same call.
func (a *api) switchAction(w http.ResponseWriter, r *http.Request) *Error {
	scope, method, e := scopeVar(r)
	if e != nil {
		return e
	}
	if method == "" {
		return apiError(http.StatusMethodNotAllowed, "invalid_request",
			"POST on an action is its kill switch: use /v1/catalog/actions/{scope}:disable or :enable.")
	}
	body, e := decodeSwitch(r)
	if e != nil {
		return e
	}
	v, actions, e := a.live(r)
	if e != nil {
		return e
	}
	expected, e := precondition(r, v.Number, false)
	if e != nil {
		return e
	}
	i := findAction(actions, scope)
	if i < 0 {
		return actionNotFound(scope)
	}
	disable := method == "disable"
	number := v.Number
	if actions[i].Disabled != disable {
		actions[i].Disabled = disable
		if number, e = a.commit(w, r, expected, actions, "catalog."+method, scope, body.Comment, 0); e != nil {
			return e
		}
	}
	result := writeResult{Version: number, Changes: []authz.CatalogChange{}}
	if disable && body.RevokeTokens {
		rec := a.record(r.Context(), "revoke.action", scope)
		rec.Action, rec.Reason = scope, "action_disabled"
		rec.Detail = "Revoked the live tokens of a disabled action."
		rec.Decision = "revoked"
		n, err := a.Store.RevokeTokensWhere(r.Context(), storage.TokenFilter{Scope: scope}, a.Now().UTC(), rec)
		if err != nil {
			return a.internalError(r, err)
		}
		result.RevokedTokens = &n
		a.sweepLater(storage.TokenFilter{Scope: scope}, rec)
	}
	w.Header().Set("ETag", etag(number))
	writeJSON(w, http.StatusOK, result)
	return nil
}

type versionBody struct {
	Number    int64                 `json:"version"`
	CreatedAt string                `json:"created_at"`
	ClientID  string                `json:"client_id"`
	Comment   string                `json:"comment,omitempty"`
	Changes   []authz.CatalogChange `json:"changes"`
	Actions   []config.Action       `json:"actions,omitempty"`
}

func versionOf(v storage.CatalogVersion, withActions bool) (versionBody, error) {
	out := versionBody{Number: v.Number, CreatedAt: v.CreatedAt.Format("2006-01-02T15:04:05Z"), ClientID: v.ClientID, Comment: v.Comment}
	if err := json.Unmarshal(v.Diff, &out.Changes); err != nil {
		return out, err
	}
	out.Changes = nonNil(out.Changes)
	if withActions {
		actions, err := authz.DecodeActions(v.Actions)
		if err != nil {
			return out, err
		}
		out.Actions = nonNil(actions)
	}
	return out, nil
}

func (a *api) listVersions(w http.ResponseWriter, r *http.Request) *Error {
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	versions, err := a.Store.CatalogVersions(r.Context(), before, limit)
	if err != nil {
		return a.internalError(r, err)
	}
	out := make([]versionBody, 0, len(versions))
	for _, v := range versions {
		b, err := versionOf(v, false)
		if err != nil {
			return a.internalError(r, err)
		}
		out = append(out, b)
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": out})
	return nil
}

func (a *api) getVersion(w http.ResponseWriter, r *http.Request) *Error {
	n, err := strconv.ParseInt(mux.Vars(r)["number"], 10, 64)
	if err != nil || n < 1 {
		return badRequest("The catalog version in the path must be a positive number.")
	}
	v, err := a.Store.CatalogVersion(r.Context(), n)
	if errors.Is(err, storage.ErrNotFound) {
		return apiError(http.StatusNotFound, "not_found", fmt.Sprintf("No catalog version %d; GET /v1/catalog/versions lists them.", n))
	}
	if err != nil {
		return a.internalError(r, err)
	}
	b, err := versionOf(*v, true)
	if err != nil {
		return a.internalError(r, err)
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
