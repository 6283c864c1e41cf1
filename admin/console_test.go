package admin_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so each answer can be checked.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func getPage(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values) *http.Response {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestConsoleSignInCSRFAndEdit(t *testing.T) {
	in := startInstance(t, newDir(t), instanceOptions{})
	base := in.admin.URL + "/console"
	c := browser(t)

	resp, body := getPage(t, c, base+"/login")
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") ||
		strings.Contains(got, "unsafe-inline") || !strings.Contains(got, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q, want a strict policy without unsafe-inline", got)
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "style=") {
		t.Error("the login page has a script or an inline style")
	}
	csrf := csrfField.FindStringSubmatch(body)
	if csrf == nil {
		t.Fatal("the login form has no csrf field")
	}
	var csrfCookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "sotto_csrf" {
			csrfCookie = ck
		}
	}
	if csrfCookie == nil || !csrfCookie.HttpOnly || csrfCookie.SameSite != http.SameSiteStrictMode {
		t.Errorf("CSRF cookie %v, want HttpOnly and SameSite=Strict", csrfCookie)
	}

	creds := url.Values{"client_id": {"root"}, "client_secret": {bootstrapSecret}}
	if r := postForm(t, c, base+"/login", creds); r.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in without the csrf field: status %d, want 403", r.StatusCode)
	}
	creds.Set("csrf", csrf[1])
	r := postForm(t, c, base+"/login", creds)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/console/catalog" {
		t.Fatalf("sign-in: status %d Location %q, want 303 to the catalog", r.StatusCode, r.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range r.Cookies() {
		if ck.Name == "sotto_console" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/console/" {
		t.Fatalf("session cookie %v, want HttpOnly, SameSite=Strict, Path /console/", session)
	}

	resp, body = getPage(t, c, base+"/catalog")
	if resp.StatusCode != 200 || !strings.Contains(body, "ticket:create") {
		t.Fatalf("catalog page: status %d", resp.StatusCode)
	}

	edit := url.Values{
		"scope": {"ticket:create"}, "description": {"Edited"}, "audiences": {"https://itsm.corp.example"},
		"max_ttl": {"4m"}, "step_up": {"none"}, "device_trust": {"any"}, "groups": {"employees"}, "version": {"1"},
	}
	if r := postForm(t, c, base+"/actions/ticket:create", edit); r.StatusCode != http.StatusForbidden {
		t.Errorf("edit without the csrf field: status %d, want 403", r.StatusCode)
	}
	edit.Set("csrf", csrf[1])
	// A form from another origin is refused even with the right token.
	req, _ := http.NewRequest(http.MethodPost, base+"/actions/ticket:create", strings.NewReader(edit.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://attacker.example")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("edit from another origin: %v %v, want 403", resp.StatusCode, err)
	}

	edit.Set("max_ttl", "soon")
	if r := postForm(t, c, base+"/actions/ticket:create", edit); r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("invalid max_ttl: status %d, want 422 with the form again", r.StatusCode)
	}
	edit.Set("max_ttl", "4m")
	r = postForm(t, c, base+"/actions/ticket:create", edit)
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "version+2") {
		t.Fatalf("edit: status %d Location %q, want 303 naming catalog version 2", r.StatusCode, r.Header.Get("Location"))
	}
	if in.srv.Catalog().Number != 2 {
		t.Errorf("live catalog %d after the console edit, want 2", in.srv.Catalog().Number)
	}
	// The form still says version 1: a second save must not overwrite.
	if r := postForm(t, c, base+"/actions/ticket:create", edit); r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("save based on an old version: status %d, want 422", r.StatusCode)
	}

	_, body = getPage(t, c, base+"/versions/2")
	if !strings.Contains(body, "4m0s") || !strings.Contains(body, "5m0s") {
		t.Error("the version page does not show the before and after of max_ttl")
	}
	_, body = getPage(t, c, base+"/audit?action=ticket:create")
	if !strings.Contains(body, "catalog.update") {
		t.Error("the audit search does not list the console's update")
	}
}

// TestConsoleInChromium runs interop/console/run.mjs, which drives the
// console in headless Chromium with playwright-core.
func TestConsoleInChromium(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; install Node.js 20 or newer to run the console browser test")
	}
	chromium := os.Getenv("SOTTO_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("Chromium is not at %s; install Debian's chromium package or set SOTTO_CHROMIUM", chromium)
	}
	dir, _ := filepath.Abs(filepath.Join("..", "interop", "console"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Skip("playwright-core is not installed; run `npm ci --prefix interop/console` first")
	}

	in := startInstance(t, newDir(t), instanceOptions{})
	issued := in.exchange(newDevice(t), idToken(t, "alice", []string{"employees"}))
	jti := tokenID(t, issued.str("access_token"))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "run.mjs", in.admin.URL, "root", bootstrapSecret, jti)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SOTTO_CHROMIUM="+chromium)
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node run.mjs failed: %v\n%s", err, output)
	}
	t.Logf("%s", output)
	if in.srv.Catalog().Number != 2 {
		t.Errorf("live catalog %d after the browser edit, want 2", in.srv.Catalog().Number)
	}
}
