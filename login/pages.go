package login

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"

	"github.com/sotto-auth/sotto/internal/oauth"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// pages are the server-rendered pages and their static files. Pages
// load nothing but the style sheet of assetFiles, so the
// Content-Security-Policy allows no script and no inline style.
type pages struct {
	error, consent, logout *template.Template
	assets                 http.Handler
}

func newPages() (*pages, error) {
	parse := func(name string) (*template.Template, error) {
		t, err := template.ParseFS(templateFiles, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, err
		}
		return t.Lookup(name), nil
	}
	var p pages
	var err error
	if p.error, err = parse("error.html"); err != nil {
		return nil, err
	}
	if p.consent, err = parse("consent.html"); err != nil {
		return nil, err
	}
	if p.logout, err = parse("logout.html"); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(assetFiles, "assets")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(sub)
	p.assets = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
	return &p, nil
}

// pageData is the data of every page.
type pageData struct {
	Title  string
	Assets string
}

// render writes a page with the headers every page carries: a strict
// Content-Security-Policy (no script, styles and images from this server
// only, forms only to formTargets), no framing and no caching.
func (h *Handler) render(w http.ResponseWriter, status int, t *template.Template, data any, formTargets ...string) {
	formAction := "'none'"
	if len(formTargets) > 0 {
		formAction = strings.Join(formTargets, " ")
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; "+
		"form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.Execute(w, data); err != nil {
		h.Logger.Error("page not rendered", "error", err)
	}
}

// showError shows an error that cannot be redirected to the client
// (RFC 6749 §4.1.2.1).
func (h *Handler) showError(w http.ResponseWriter, r *http.Request, status int, e *oauth.Error) {
	if e.Status >= http.StatusInternalServerError {
		status = e.Status
		h.Logger.ErrorContext(r.Context(), "request failed",
			"path", r.URL.Path, "request_id", oauth.RequestID(r.Context()), "error", e.Cause)
	}
	h.render(w, status, h.pages.error, struct {
		pageData
		Code, Description, RequestID string
	}{
		pageData:    pageData{Title: "Sign-in failed", Assets: h.base + PathAssets},
		Code:        e.Code,
		Description: e.Description,
		RequestID:   oauth.RequestID(r.Context()),
	})
}

func (h *Handler) serverError(w http.ResponseWriter, r *http.Request, err error) {
	h.showError(w, r, http.StatusInternalServerError, oauth.ServerError(err))
}

func (h *Handler) jsonServerError(w http.ResponseWriter, r *http.Request, err error) {
	oauth.Write(w, r, h.Logger, oauth.ServerError(err))
}

// showConsent shows the consent page of a client that is not first-party.
// The form posts to this server, which responds with a redirect to the
// client, so form-action names the redirect URI's origin too: browsers
// apply form-action to the redirects that follow a form submission.
func (h *Handler) showConsent(w http.ResponseWriter, r *http.Request, client Client, st *loginState) {
	name := client.Name
	if name == "" {
		name = client.ID
	}
	h.render(w, http.StatusOK, h.pages.consent, struct {
		pageData
		Client, Subject, Action, CSRF string
		Actions                       []Action
	}{
		pageData: pageData{Title: "Allow " + name + "?", Assets: h.base + PathAssets},
		Client:   name,
		Subject:  st.Identity.Subject,
		Action:   h.base + PathConsent,
		CSRF:     st.CSRF,
		Actions:  h.consentActions(st.Identity),
	}, "'self'", cspSource(st.Request.RedirectURI))
}

// cspSource returns the CSP source expression of a redirect URI: its
// origin, or its scheme for a private-use scheme (RFC 8252 §7.1).
func cspSource(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "'none'"
	}
	if u.Host == "" {
		return u.Scheme + ":"
	}
	return u.Scheme + "://" + u.Host
}
