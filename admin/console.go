package admin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/storage"
)

//go:embed web/templates/*.html web/static/*
var webFiles embed.FS

// Cookies of the console. Both are HttpOnly and SameSite=Strict and are
// sent only to /console/.
const (
	sessionCookie = "sotto_console"
	csrfCookie    = "sotto_csrf"
)

// contentSecurityPolicy allows the console's own stylesheet and nothing
// else: no script at all, no inline style, no framing, forms only to
// this origin.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

type console struct {
	api   *api
	pages map[string]*template.Template
}

func newConsole(a *api) *console {
	funcs := template.FuncMap{
		"join": func(s []string) string { return strings.Join(s, " ") },
		"json": func(v any) string {
			if a, ok := v.(*config.Action); ok && a == nil {
				return ""
			}
			b, _ := json.MarshalIndent(v, "", "  ")
			return string(b)
		},
	}
	c := &console{api: a, pages: map[string]*template.Template{}}
	for _, name := range []string{"login", "catalog", "action", "versions", "version", "clients", "audit", "trace", "error"} {
		c.pages[name] = template.Must(template.New(name).Funcs(funcs).
			ParseFS(webFiles, "web/templates/layout.html", "web/templates/"+name+".html"))
	}
	return c
}

func (c *console) routes(r *mux.Router) {
	static, _ := fs.Sub(webFiles, "web/static")
	s := r.PathPrefix("/console").Subrouter()
	s.Use(securityHeaders)
	s.PathPrefix("/static/").Handler(http.StripPrefix("/console/static/", http.FileServerFS(static)))
	s.Handle("/", http.RedirectHandler("/console/catalog", http.StatusSeeOther))
	s.HandleFunc("/login", c.loginPage).Methods(http.MethodGet)
	s.HandleFunc("/login", c.login).Methods(http.MethodPost)
	s.HandleFunc("/logout", c.logout).Methods(http.MethodPost)
	s.Handle("/catalog", c.page(config.ScopeCatalogRead, "console.catalog", c.catalog)).Methods(http.MethodGet)
	s.Handle("/catalog/switch", c.page(config.ScopeCatalogWrite, "console.kill_switch", c.switchAction)).Methods(http.MethodPost)
	s.Handle("/actions/{scope}", c.page(config.ScopeCatalogRead, "console.action", c.action)).Methods(http.MethodGet)
	s.Handle("/actions/{scope}", c.page(config.ScopeCatalogWrite, "console.save_action", c.saveAction)).Methods(http.MethodPost)
	s.Handle("/versions", c.page(config.ScopeCatalogRead, "console.versions", c.versions)).Methods(http.MethodGet)
	s.Handle("/versions/{number}", c.page(config.ScopeCatalogRead, "console.version", c.version)).Methods(http.MethodGet)
	s.Handle("/clients", c.page(config.ScopeClients, "console.clients", c.clients)).Methods(http.MethodGet)
	s.Handle("/clients/switch", c.page(config.ScopeClients, "console.client_switch", c.switchClient)).Methods(http.MethodPost)
	s.Handle("/audit", c.page(config.ScopeAuditRead, "console.audit", c.audit)).Methods(http.MethodGet)
	s.Handle("/trace", c.page(config.ScopeAuditRead, "console.trace", c.trace)).Methods(http.MethodGet)
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		// Browsers send Origin: null on a form POST under no-referrer,
		// which would fail the CSRF origin check, so the console sends
		// referrers to its own origin only.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// view is the data every page template receives.
type view struct {
	Title     string
	Principal *authz.AdminPrincipal
	CSRF      string
	Notice    string
	Problems  []string
	Data      any
}

func (c *console) render(w http.ResponseWriter, status int, name string, v view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := c.pages[name].ExecuteTemplate(w, "layout", v); err != nil {
		c.api.Logger.Error("render console page", "page", name, "error", err)
	}
}

func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/console/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode,
	})
}

// csrfToken returns the browser's CSRF token, setting a new one when it
// has none. Forms carry it in a hidden field and the cookie brings it
// back: a page of another origin can do neither (double-submit cookie,
// on top of SameSite=Strict).
func csrfToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 43 {
		return ck.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := base64.RawURLEncoding.EncodeToString(b[:])
	setCookie(w, r, csrfCookie, token, 0)
	return token
}

// checkCSRF reports whether a form POST came from a console page: the
// form's csrf field equals the cookie (compared in constant time), and an
// Origin header, when sent, names this host.
func checkCSRF(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	ck, err := r.Cookie(csrfCookie)
	if err != nil || ck.Value == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue("csrf"))) == 1
}

type consoleHandler func(w http.ResponseWriter, r *http.Request, v view)

// page serves h to a signed-in administrator whose token has scope. A
// POST must pass the CSRF check. Every call is recorded like an API call.
func (c *console) page(scope, operation string, h consoleHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := view{CSRF: csrfToken(w, r)}
		ck, err := r.Cookie(sessionCookie)
		if err != nil {
			http.Redirect(w, r, "/console/login", http.StatusSeeOther)
			return
		}
		p, err := c.api.Server.VerifyAdminToken(ck.Value)
		if err != nil {
			setCookie(w, r, sessionCookie, "", -1)
			http.Redirect(w, r, "/console/login", http.StatusSeeOther)
			return
		}
		v.Principal = p
		if r.Method == http.MethodPost && !checkCSRF(r) {
			c.api.recordCall(r, p, operation, audit.DecisionRefused, "csrf_failed", "The form's CSRF token did not match.")
			v.Title, v.Data = "Request refused", "The form is out of date or came from another site. Reload the page and try again."
			c.render(w, http.StatusForbidden, "error", v)
			return
		}
		if !p.HasScope(scope) {
			c.api.recordCall(r, p, operation, audit.DecisionRefused, "insufficient_scope", "")
			v.Title, v.Data = "Not allowed", "This page requires the scope "+scope+", which the signed-in client does not have."
			c.render(w, http.StatusForbidden, "error", v)
			return
		}
		cl := &call{operation: operation}
		ctx := context.WithValue(context.WithValue(r.Context(), principalKey{}, p), callKey{}, cl)
		r = r.WithContext(ctx)
		h(w, r, v)
		if !cl.recorded {
			c.api.recordCall(r, p, operation, "allowed", "", "")
		}
	})
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, http.StatusOK, "login", view{Title: "Sign in", CSRF: csrfToken(w, r)})
}

// login exchanges the admin client's credentials for an admin token with
// the client_credentials grant and keeps it in an HttpOnly cookie that
// lives as long as the token.
func (c *console) login(w http.ResponseWriter, r *http.Request) {
	v := view{Title: "Sign in", CSRF: csrfToken(w, r)}
	if !checkCSRF(r) {
		v.Problems = []string{"The form is out of date; sign in again."}
		c.render(w, http.StatusForbidden, "login", v)
		return
	}
	tok, err := c.api.Server.IssueAdminToken(r.Context(), r.PostFormValue("client_id"), r.PostFormValue("client_secret"), "")
	if err != nil {
		c.api.refusals.log(r.Context(), "console sign-in refused", "request_id", requestID(r), "error", err.Error())
		v.Problems = []string{"Sign-in failed: the client ID or secret is wrong, or the client has no admin scopes or is disabled."}
		c.render(w, http.StatusUnauthorized, "login", v)
		return
	}
	setCookie(w, r, sessionCookie, tok.AccessToken, int(tok.ExpiresIn/time.Second))
	http.Redirect(w, r, "/console/catalog", http.StatusSeeOther)
}

func (c *console) logout(w http.ResponseWriter, r *http.Request) {
	if checkCSRF(r) {
		setCookie(w, r, sessionCookie, "", -1)
	}
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

func (c *console) fail(w http.ResponseWriter, r *http.Request, v view, e *Error) {
	v.Title, v.Data = "Error", e.Description
	c.render(w, e.Status, "error", v)
}

func (c *console) catalog(w http.ResponseWriter, r *http.Request, v view) {
	cv, actions, e := c.api.live(r)
	if e != nil {
		c.fail(w, r, v, e)
		return
	}
	v.Title = "Catalog"
	v.Notice = r.URL.Query().Get("notice")
	v.Data = catalogBody{Version: cv.Number, Actions: actions}
	c.render(w, http.StatusOK, "catalog", v)
}

type actionPage struct {
	New            bool
	Version        int64
	Action         config.Action
	MaxTTL, MaxAge string
	StepUps        []string
	Trusts         []string
}

func newActionPage(version int64, a config.Action, isNew bool) actionPage {
	p := actionPage{New: isNew, Version: version, Action: a,
		StepUps: []string{config.StepUpNone, config.StepUpPasskey, config.StepUpPush, config.StepUpAny},
		Trusts:  []string{config.DeviceTrustAny, config.DeviceTrustRegistered, config.DeviceTrustManaged},
	}
	if a.MaxTTL != 0 {
		p.MaxTTL = time.Duration(a.MaxTTL).String()
	}
	if a.MaxAge != 0 {
		p.MaxAge = time.Duration(a.MaxAge).String()
	}
	return p
}

func (c *console) action(w http.ResponseWriter, r *http.Request, v view) {
	scope, _ := url.PathUnescape(mux.Vars(r)["scope"])
	cv, actions, e := c.api.live(r)
	if e != nil {
		c.fail(w, r, v, e)
		return
	}
	if scope == "new" {
		v.Title, v.Data = "New action", newActionPage(cv.Number, config.Action{}, true)
		c.render(w, http.StatusOK, "action", v)
		return
	}
	i := findAction(actions, scope)
	if i < 0 {
		c.fail(w, r, v, actionNotFound(scope))
		return
	}
	v.Title, v.Data = "Action "+scope, newActionPage(cv.Number, actions[i], false)
	v.Notice = r.URL.Query().Get("notice")
	c.render(w, http.StatusOK, "action", v)
}

// saveAction validates the form and writes a new catalog version based
// on the version the form was loaded from.
func (c *console) saveAction(w http.ResponseWriter, r *http.Request, v view) {
	pathScope, _ := url.PathUnescape(mux.Vars(r)["scope"])
	isNew := pathScope == "new"
	f := r.PostForm
	action := config.Action{
		Scope: f.Get("scope"), Description: f.Get("description"),
		Audiences: strings.Fields(f.Get("audiences")), Groups: strings.Fields(f.Get("groups")),
		StepUp: f.Get("step_up"), DeviceTrust: f.Get("device_trust"),
	}
	if !isNew {
		action.Scope = pathScope
	}
	var problems []string
	for _, d := range []struct {
		name string
		dst  *config.Duration
	}{{"max_ttl", &action.MaxTTL}, {"max_age", &action.MaxAge}} {
		if raw := strings.TrimSpace(f.Get(d.name)); raw != "" {
			if err := d.dst.UnmarshalText([]byte(raw)); err != nil {
				problems = append(problems, d.name+": "+err.Error())
			}
		}
	}
	expected, _ := strconv.ParseInt(f.Get("version"), 10, 64)

	cv, actions, e := c.api.live(r)
	if e != nil {
		c.fail(w, r, v, e)
		return
	}
	i := findAction(actions, action.Scope)
	switch {
	case isNew && i >= 0:
		problems = append(problems, "scope: the action "+action.Scope+" already exists")
	case !isNew && i < 0:
		c.fail(w, r, v, actionNotFound(action.Scope))
		return
	case !isNew:
		// Fields the form does not show stay as they are.
		action.AuthorizationDetails, action.Disabled = actions[i].AuthorizationDetails, actions[i].Disabled
		actions[i] = action
	default:
		actions = append(actions, action)
	}
	if expected != cv.Number {
		problems = append(problems, "The catalog changed since this page was loaded (version "+
			strconv.FormatInt(expected, 10)+", now "+strconv.FormatInt(cv.Number, 10)+"). Reload the page and make the change again.")
	}
	if len(problems) == 0 {
		markRecorded(r.Context())
		op := map[bool]string{true: "catalog.create", false: "catalog.update"}[isNew]
		number, _, err := c.api.Server.WriteCatalog(r.Context(), c.api.Store, authz.CatalogWrite{
			Expected: expected, Actions: actions, ClientID: v.Principal.ClientID, Comment: f.Get("comment"),
			Operation: op, Target: action.Scope, RequestID: requestID(r),
		})
		var ps *authz.CatalogProblems
		switch {
		case errors.As(err, &ps):
			for _, p := range ps.Problems {
				problems = append(problems, fieldOf(p.Key)+": "+p.Expected)
			}
		case errors.Is(err, storage.ErrVersionMismatch):
			problems = append(problems, "The catalog changed while saving. Reload the page and make the change again.")
		case err != nil:
			c.fail(w, r, v, c.api.internalError(r, err))
			return
		default:
			http.Redirect(w, r, "/console/actions/"+url.PathEscape(action.Scope)+"?notice="+
				url.QueryEscape("Saved as catalog version "+strconv.FormatInt(number, 10)+"."), http.StatusSeeOther)
			return
		}
	}
	v.Title, v.Problems = "Action "+action.Scope, problems
	v.Data = newActionPage(expected, action, isNew)
	c.render(w, http.StatusUnprocessableEntity, "action", v)
}

// fieldOf returns the field name of a catalog problem key such as
// actions[3].max_ttl.
func fieldOf(key string) string {
	if _, field, ok := strings.Cut(key, "]."); ok {
		return field
	}
	return key
}

func (c *console) switchAction(w http.ResponseWriter, r *http.Request, v view) {
	scope, op := r.PostFormValue("scope"), r.PostFormValue("op")
	cv, actions, e := c.api.live(r)
	if e != nil {
		c.fail(w, r, v, e)
		return
	}
	i := findAction(actions, scope)
	if i < 0 || (op != "disable" && op != "enable") {
		c.fail(w, r, v, actionNotFound(scope))
		return
	}
	expected, _ := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if expected != cv.Number {
		c.fail(w, r, v, versionMismatch(expected, cv.Number))
		return
	}
	actions[i].Disabled = op == "disable"
	markRecorded(r.Context())
	number, _, err := c.api.Server.WriteCatalog(r.Context(), c.api.Store, authz.CatalogWrite{
		Expected: expected, Actions: actions, ClientID: v.Principal.ClientID,
		Operation: "catalog." + op, Target: scope, RequestID: requestID(r),
	})
	if err != nil {
		c.fail(w, r, v, c.api.internalError(r, err))
		return
	}
	notice := "The action " + scope + " is " + op + "d in catalog version " + strconv.FormatInt(number, 10) + "."
	if op == "disable" && r.PostFormValue("revoke_tokens") == "true" {
		rec := c.api.record(r.Context(), "revoke.action", scope)
		rec.Action, rec.Decision, rec.Reason = scope, audit.DecisionRevoked, "action_disabled"
		n, err := c.api.Store.RevokeTokensWhere(r.Context(), storage.TokenFilter{Scope: scope}, c.api.Now().UTC(), rec)
		if err != nil {
			c.fail(w, r, v, c.api.internalError(r, err))
			return
		}
		c.api.sweepLater(storage.TokenFilter{Scope: scope}, rec)
		notice += " " + strconv.FormatInt(n, 10) + " tokens revoked."
	}
	http.Redirect(w, r, "/console/catalog?notice="+url.QueryEscape(notice), http.StatusSeeOther)
}

func (c *console) versions(w http.ResponseWriter, r *http.Request, v view) {
	versions, err := c.api.Store.CatalogVersions(r.Context(), 0, 100)
	if err != nil {
		c.fail(w, r, v, c.api.internalError(r, err))
		return
	}
	out := make([]versionBody, 0, len(versions))
	for _, cv := range versions {
		b, err := versionOf(cv, false)
		if err != nil {
			c.fail(w, r, v, c.api.internalError(r, err))
			return
		}
		out = append(out, b)
	}
	v.Title, v.Data = "Catalog versions", out
	c.render(w, http.StatusOK, "versions", v)
}

func (c *console) version(w http.ResponseWriter, r *http.Request, v view) {
	n, _ := strconv.ParseInt(mux.Vars(r)["number"], 10, 64)
	cv, err := c.api.Store.CatalogVersion(r.Context(), n)
	if errors.Is(err, storage.ErrNotFound) {
		c.fail(w, r, v, apiError(http.StatusNotFound, "not_found", "No such catalog version."))
		return
	}
	if err != nil {
		c.fail(w, r, v, c.api.internalError(r, err))
		return
	}
	b, err := versionOf(*cv, false)
	if err != nil {
		c.fail(w, r, v, c.api.internalError(r, err))
		return
	}
	v.Title, v.Data = "Catalog version "+strconv.FormatInt(n, 10), b
	c.render(w, http.StatusOK, "version", v)
}

func (c *console) clients(w http.ResponseWriter, r *http.Request, v view) {
	records, err := c.api.Store.Clients(r.Context())
	if err != nil {
		c.fail(w, r, v, c.api.internalError(r, err))
		return
	}
	out := make([]clientBody, 0, len(records))
	for _, rec := range records {
		cl, err := authz.ClientFromRecord(rec)
		if err != nil {
			c.fail(w, r, v, c.api.internalError(r, err))
			return
		}
		out = append(out, bodyOf(cl))
	}
	v.Title, v.Data, v.Notice = "Clients", out, r.URL.Query().Get("notice")
	c.render(w, http.StatusOK, "clients", v)
}

func (c *console) switchClient(w http.ResponseWriter, r *http.Request, v view) {
	id, op := r.PostFormValue("client_id"), r.PostFormValue("op")
	cl, e := c.api.storedClient(r, id)
	if e != nil {
		c.fail(w, r, v, e)
		return
	}
	before, _ := json.Marshal(bodyOf(cl))
	now := c.api.Now().UTC()
	switch op {
	case "disable":
		cl.DisabledAt = &now
	case "enable":
		cl.DisabledAt = nil
	default:
		c.fail(w, r, v, badRequest("Unknown kill switch operation."))
		return
	}
	rec := c.api.record(r.Context(), "clients."+op, id)
	after, _ := json.Marshal(bodyOf(cl))
	rec.Before, rec.After = string(before), string(after)
	if err := c.api.Store.UpdateClient(r.Context(), authz.RecordOf(cl, now), rec); err != nil {
		c.fail(w, r, v, c.api.internalError(r, err))
		return
	}
	c.api.refresh(r)
	notice := "The client " + id + " is " + op + "d."
	if op == "disable" && r.PostFormValue("revoke_tokens") == "true" {
		rec := c.api.record(r.Context(), "revoke.client", id)
		rec.Decision, rec.Reason = audit.DecisionRevoked, "client_disabled"
		n, err := c.api.Store.RevokeTokensWhere(r.Context(), storage.TokenFilter{ClientID: id}, now, rec)
		if err != nil {
			c.fail(w, r, v, c.api.internalError(r, err))
			return
		}
		c.api.sweepLater(storage.TokenFilter{ClientID: id}, rec)
		notice += " " + strconv.FormatInt(n, 10) + " tokens revoked."
	}
	http.Redirect(w, r, "/console/clients?notice="+url.QueryEscape(notice), http.StatusSeeOther)
}

type auditPage struct {
	Query   map[string]string
	Records []audit.Record
}

func (c *console) audit(w http.ResponseWriter, r *http.Request, v view) {
	q := r.URL.Query()
	f, e := auditFilter(q)
	if e != nil {
		c.fail(w, r, v, e)
		return
	}
	records, err := c.api.Store.AuditRecords(r.Context(), f)
	if err != nil {
		c.fail(w, r, v, c.api.internalError(r, err))
		return
	}
	page := auditPage{Query: map[string]string{}, Records: records}
	for _, k := range []string{"client_id", "subject", "action", "token_id", "request_id", "event"} {
		page.Query[k] = q.Get(k)
	}
	v.Title, v.Data = "Audit records", page
	c.render(w, http.StatusOK, "audit", v)
}

// tracePage is the data of the trace page.
type tracePage struct {
	ID    string
	Trace *storage.Trace
}

// trace shows everything the log holds about one action, like GET
// /v1/audit/trace/{id}.
func (c *console) trace(w http.ResponseWriter, r *http.Request, v view) {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	page := tracePage{ID: id}
	v.Title, v.Data = "Trace", page
	if id == "" {
		c.render(w, http.StatusOK, "trace", v)
		return
	}
	if len(id) > 255 {
		c.fail(w, r, v, badRequest("The id is longer than 255 characters; pass a token's jti or a request id."))
		return
	}
	t, err := c.api.Store.Trace(r.Context(), id)
	if err != nil {
		c.fail(w, r, v, c.api.internalError(r, err))
		return
	}
	if len(t.Tokens) == 0 && len(t.Records) == 0 {
		v.Notice = "No token or audit record has this id."
	} else {
		page.Trace = t
	}
	v.Data = page
	c.render(w, http.StatusOK, "trace", v)
}
