package admin_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/admin"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/sottotest"
	"github.com/sotto-auth/sotto/storage"
)

// bootstrapSecret is the secret of the bootstrap admin client "root" in
// the test configuration.
const bootstrapSecret = "test-bootstrap-secret-0123456789"

// newDir copies the example configuration into a new folder and adds the
// bootstrap admin client.
func newDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"sotto.yaml", "clients.yaml", "catalog.yaml", "idp.jwks.json"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "sotto.yaml" {
			b = append(b, []byte("admin:\n  bootstrap_client_id: root\n  bootstrap_client_secret_file: admin.secret\n")...)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "admin.secret"), []byte(bootstrapSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// instance is one Sotto server on the database of dir, with its token
// endpoint and its admin API each on a loopback listener.
type instance struct {
	t      *testing.T
	issuer string
	srv    *authz.Server
	store  *storage.Store
	keys   *authz.Keyring
	public *httptest.Server
	admin  *httptest.Server
}

type instanceOptions struct {
	now  func() time.Time
	poll time.Duration
}

func startInstance(t *testing.T, dir string, o instanceOptions) *instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	t.Setenv("SOTTO_ISSUER", issuer)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	built := sottotest.Open(t, filepath.Join(dir, "sotto.yaml"), sottotest.Options{Logger: logger, Now: o.now})
	store, keys, srv := built.Store, built.Keys, built.Server
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.ImportConfigured(ctx, store); err != nil {
		t.Fatal(err)
	}
	if err := srv.Refresh(ctx, store); err != nil {
		t.Fatal(err)
	}
	if o.poll > 0 {
		go srv.Watch(ctx, store, o.poll)
	}

	public := httptest.NewUnstartedServer(srv.Handler())
	public.Listener.Close()
	public.Listener = ln
	public.Start()
	adminHTTP := httptest.NewServer(admin.Handler(admin.Options{Server: srv, Store: store, Logger: logger, Now: o.now}))
	in := &instance{t: t, issuer: issuer, srv: srv, store: store, keys: keys, public: public, admin: adminHTTP}
	t.Cleanup(func() {
		cancel()
		adminHTTP.Close()
		public.Close()
		srv.Close()
		store.Close()
	})
	return in
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r reply) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", req.Method, req.URL, raw)
		}
	}
	return out
}

// token gets an admin token with the client_credentials grant.
func (in *instance) token(clientID, secret, scope string) string {
	in.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	req, _ := http.NewRequest(http.MethodPost, in.issuer+authz.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	r := do(in.t, req)
	if r.status != http.StatusOK {
		in.t.Fatalf("client_credentials for %s: status %d, body %s", clientID, r.status, r.raw)
	}
	return r.str("access_token")
}

func (in *instance) rootToken() string { return in.token("root", bootstrapSecret, "") }

// call sends an admin API request with token and a JSON body.
func (in *instance) call(method, path, token string, body any, header http.Header) reply {
	in.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			in.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, in.admin.URL+path, rd)
	if err != nil {
		in.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	return do(in.t, req)
}

// createAdminClient creates a confidential admin client with scopes and
// returns its secret.
func (in *instance) createAdminClient(id string, scopes ...string) string {
	in.t.Helper()
	r := in.call(http.MethodPost, "/v1/clients", in.rootToken(), map[string]any{
		"client_id": id, "grant_types": []string{"client_credentials"}, "admin_scopes": scopes,
	}, nil)
	if r.status != http.StatusCreated {
		in.t.Fatalf("create client %s: status %d, body %s", id, r.status, r.raw)
	}
	return r.str("client_secret")
}

// device is an assistant's DPoP key.
type device struct {
	key *ecdsa.PrivateKey
	jkt string
}

func newDevice(t *testing.T) *device {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	thumb, err := (&jose.JSONWebKey{Key: k.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &device{key: k, jkt: base64.RawURLEncoding.EncodeToString(thumb)}
}

func (d *device) proof(t *testing.T, uri string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jose.JSONWebKey{Key: d.key.Public()})
	return sign(t, jose.SigningKey{Algorithm: jose.ES256, Key: d.key}, opts, map[string]any{
		"jti": randomString(), "htm": "POST", "htu": uri, "iat": time.Now().Unix(),
	})
}

func sign(t *testing.T, key jose.SigningKey, opts *jose.SignerOptions, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func randomString() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// idToken signs a corporate ID token for sub with the example IdP key.
func idToken(t *testing.T, sub string, groups []string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "idp-dev-key.jwk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.KeyID)
	return sign(t, jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: k.Key}, opts, map[string]any{
		"iss": "https://sso.corp.example", "aud": "sotto", "sub": sub, "groups": groups,
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": randomString(),
	})
}

// exchange asks in for a ticket:create token for subject from d.
func (in *instance) exchange(d *device, subject string) reply {
	in.t.Helper()
	form := url.Values{
		"grant_type":         {exchange.GrantType},
		"client_id":          {"voice-assistant"},
		"subject_token":      {subject},
		"subject_token_type": {exchange.TokenTypeIDToken},
		"scope":              {"ticket:create"},
		"audience":           {"https://itsm.corp.example"},
	}
	req, _ := http.NewRequest(http.MethodPost, in.issuer+authz.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", d.proof(in.t, in.issuer+authz.PathToken))
	return do(in.t, req)
}
