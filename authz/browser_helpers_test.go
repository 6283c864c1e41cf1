package authz_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/sotto-auth/sotto/internal/sottotest"
	"html"
	"io"
	"net"
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

	"golang.org/x/oauth2"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/login"
)

// appRedirect is the redirect URI the test assistant sends: a loopback
// port that nobody listens on, registered without a port (RFC 8252
// §7.3). The browser stops at it, as the app would take over there.
const appRedirect = "http://127.0.0.1:53682/callback"

// browserServer is a Sotto server whose login section points at a real
// OpenID provider, npm's oidc-provider, on loopback.
type browserServer struct {
	*testServer
	idp string
}

// startIDP starts interop/oidc-provider/idp.mjs for the Sotto issuer and
// returns the provider's issuer. The test is skipped when node or the
// package is missing.
func startIDP(t *testing.T, sottoIssuer string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; install Node.js 20 or newer to run the browser login tests against oidc-provider")
	}
	dir := filepath.Join("..", "interop", "oidc-provider")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		t.Skip("oidc-provider is not installed; run `npm ci --prefix interop/oidc-provider` first")
	}
	cmd := exec.Command(node, "idp.mjs", sottoIssuer)
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if issuer, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- issuer
			}
		}
		close(ready)
	}()
	select {
	case issuer, ok := <-ready:
		if !ok {
			t.Fatalf("oidc-provider exited before it was ready:\n%s", stderr.String())
		}
		return issuer
	case <-time.After(20 * time.Second):
		t.Fatalf("oidc-provider not ready after 20s:\n%s", stderr.String())
	}
	return ""
}

// newBrowserServer starts oidc-provider and a Sotto server that trusts
// it as the login issuer, with a first-party and a third-party browser
// client.
func newBrowserServer(t *testing.T) *browserServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	idp := startIDP(t, "http://"+addr)

	dir := sottotest.CopyExamples(t, filepath.Join("..", "examples"))
	config := fmt.Sprintf(`issuer: http://127.0.0.1:8080
storage:
  driver: sqlite
  dsn: sotto.db
clients_file: clients.yaml
catalog_file: catalog.yaml
trusted_issuers:
  - issuer: https://sso.corp.example
    jwks_file: idp.jwks.json
    audience: sotto
  - issuer: %[1]s
    jwks_uri: %[1]s/jwks
    audience: sotto
    subject_prefix: corp
login:
  issuer: %[1]s
  client_id: sotto
  client_secret: sotto-login-test-secret
  scopes: [openid, profile, email, groups]
`, idp)
	if err := os.WriteFile(filepath.Join(dir, "sotto.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(dir, "clients.yaml"), `
  - client_id: voice-browser
    public: true
    first_party: true
    grant_types: [authorization_code, refresh_token, urn:ietf:params:oauth:grant-type:token-exchange]
    redirect_uris: [http://127.0.0.1/callback]
    require_dpop: true
  - client_id: partner-app
    name: Partner notes app
    public: true
    grant_types: [authorization_code, refresh_token]
    redirect_uris: [http://127.0.0.1/callback]
`)
	return &browserServer{testServer: newTestServer(t, dir, addr), idp: idp}
}

// browser is a user agent with cookies that stops at the app's redirect.
func newBrowser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar:     jar,
		Timeout: 20 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), appRedirect) || len(via) > 20 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// page is a response a browser shows.
type page struct {
	status   int
	url      *url.URL
	location *url.URL
	header   http.Header
	body     string
}

func browse(t *testing.T, b *http.Client, req *http.Request) page {
	t.Helper()
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, url: resp.Request.URL, header: resp.Header, body: string(body)}
	if loc, err := resp.Location(); err == nil {
		p.location = loc
	}
	return p
}

func browseGet(t *testing.T, b *http.Client, u string) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return browse(t, b, req)
}

var (
	formAction  = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
)

// submit posts the first form of p with its hidden inputs and fields.
func submit(t *testing.T, b *http.Client, p page, fields url.Values) page {
	t.Helper()
	m := formAction.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no form on the page at %s (status %d):\n%s", p.url, p.status, p.body)
	}
	action, err := p.url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{}
	for _, in := range hiddenInput.FindAllStringSubmatch(p.body, -1) {
		form.Set(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
	}
	for k, vs := range fields {
		form[k] = vs
	}
	req, err := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return browse(t, b, req)
}

// signIn follows authURL through Sotto to oidc-provider, fills its
// development login and consent forms as user when it shows them, and
// returns the page the browser ends on: the redirect to the app, or
// Sotto's consent page.
func signIn(t *testing.T, b *http.Client, authURL, user string) page {
	t.Helper()
	p := browseGet(t, b, authURL)
	for range 4 {
		switch {
		case p.status == http.StatusOK && strings.Contains(p.body, `name="prompt" value="login"`):
			p = submit(t, b, p, url.Values{"login": {user}, "password": {"any"}})
		case p.status == http.StatusOK && strings.Contains(p.body, `name="prompt" value="consent"`):
			p = submit(t, b, p, nil)
		default:
			return p
		}
	}
	return p
}

// appConfig is the assistant's x/oauth2 configuration for client id.
func (bs *browserServer) appConfig(clientID string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID,
		Endpoint: oauth2.Endpoint{
			AuthURL:   bs.issuer + login.PathAuthorize,
			TokenURL:  bs.issuer + authz.PathToken,
			AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: appRedirect,
		Scopes:      []string{exchange.SessionScope},
	}
}

// dpopTransport adds a fresh DPoP proof of its device to every request.
type dpopTransport struct {
	d *device
}

func (tr dpopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	u := *req.URL
	u.RawQuery = ""
	req.Header.Set("DPoP", tr.d.proof(req.Method, u.String(), nil))
	return http.DefaultTransport.RoundTrip(req)
}

// dpopContext returns a context whose x/oauth2 calls carry proofs of d.
func dpopContext(d *device) context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: dpopTransport{d}})
}

// codeFrom returns the code of a redirect to the app, checking state and
// iss (RFC 9207 §2).
func (bs *browserServer) codeFrom(t *testing.T, p page, state string) string {
	t.Helper()
	if p.location == nil || !strings.HasPrefix(p.location.String(), appRedirect) {
		t.Fatalf("browser ended at %s with status %d, want a redirect to the app:\n%s", p.url, p.status, p.body)
	}
	q := p.location.Query()
	if q.Get("error") != "" {
		t.Fatalf("redirect carries error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != state {
		t.Errorf("state = %q, want %q", q.Get("state"), state)
	}
	if q.Get("iss") != bs.issuer {
		t.Errorf("iss = %q, want %q (RFC 9207)", q.Get("iss"), bs.issuer)
	}
	return q.Get("code")
}

// login runs a whole sign-in for client id with dev's key as dpop_jkt
// and returns the code and its verifier.
func (bs *browserServer) login(t *testing.T, b *http.Client, clientID string, dev *device) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	state := randomString()
	authURL := bs.appConfig(clientID).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("dpop_jkt", dev.jkt))
	return bs.codeFrom(t, signIn(t, b, authURL, "alice"), state), verifier
}

// retrieveError returns the OAuth error code of an x/oauth2 error.
func retrieveError(t *testing.T, err error) (code, description string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not an *oauth2.RetrieveError", err)
	}
	return re.ErrorCode, re.ErrorDescription
}
