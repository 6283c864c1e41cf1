package stepup

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
)

// webFiles are the passkey page and its script and style sheet. The page
// has no inline script or style, so its Content-Security-Policy allows
// only files of this origin.
//
//go:embed web/passkey.html web/passkey.js web/passkey.css web/passkey.svg
var webFiles embed.FS

// passkeyCSP is the Content-Security-Policy of the page and its assets:
// scripts, styles and fetches from this origin only, no frames of it
// anywhere (WebAuthn Level 3, Section 7.2, step 13 refuses framed
// ceremonies anyway), no forms, no plugins.
const passkeyCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// HandlePasskeyPage serves GET PathPasskeyPage, the ceremony page. The
// challenge ID is in the URL fragment, which the browser never sends, so
// the page is the same for every challenge.
func (s *Service) HandlePasskeyPage(w http.ResponseWriter, r *http.Request) {
	servePasskeyFile(w, r, "web/passkey.html", "text/html; charset=utf-8")
}

// HandlePasskeyStatic serves GET PathPasskeyStatic/{name}: the page's
// script, style sheet and icon.
func (s *Service) HandlePasskeyStatic(w http.ResponseWriter, r *http.Request, name string) {
	switch name {
	case "passkey.js":
		servePasskeyFile(w, r, path.Join("web", name), "text/javascript; charset=utf-8")
	case "passkey.css":
		servePasskeyFile(w, r, path.Join("web", name), "text/css; charset=utf-8")
	case "passkey.svg":
		servePasskeyFile(w, r, path.Join("web", name), "image/svg+xml")
	default:
		http.NotFound(w, r)
	}
}

func servePasskeyFile(w http.ResponseWriter, r *http.Request, name, contentType string) {
	body, err := fs.ReadFile(webFiles, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Security-Policy", passkeyCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}
