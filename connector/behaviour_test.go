package connector

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// serve runs r through Require and returns the recorder.
func serve(v *Validator, required Requirement, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	v.Require(required, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})).ServeHTTP(w, r)
	return w
}

func errorParam(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	return challengeParams(t, w.Header().Get("WWW-Authenticate"))["error"]
}

func TestReplayedProofRejected(t *testing.T) {
	iss := newTestIssuer(t)
	clock := newTestClock()
	v := newTestValidator(t, iss, clock, nil)
	f := &fixture{iss: iss, device: newTestDevice(t), now: clock.Now()}
	token := iss.token(f.device, f.now, nil)
	proof := f.proofFor(token, nil)

	if w := serve(v, Requirement{Scope: "ticket:create"}, f.send(token, proof)); w.Code != http.StatusCreated {
		t.Fatalf("first use: status = %d, want 201", w.Code)
	}
	w := serve(v, Requirement{Scope: "ticket:create"}, f.send(token, proof))
	if w.Code != http.StatusUnauthorized || errorParam(t, w) != CodeInvalidDPoPProof {
		t.Errorf("replay: status %d, error %q; want 401 invalid_dpop_proof", w.Code, errorParam(t, w))
	}
	if w := serve(v, Requirement{Scope: "ticket:create"}, f.send(token, f.proofFor(token, nil))); w.Code != http.StatusCreated {
		t.Errorf("fresh proof for the same token: status = %d, want 201", w.Code)
	}
}

func TestMemoryReplayCache(t *testing.T) {
	clock := newTestClock()
	c := NewMemoryReplayCache(2)
	c.now = clock.Now
	ctx := context.Background()
	until := clock.Now().Add(time.Minute)

	for _, step := range []struct {
		jti       string
		wantFresh bool
		wantErr   error
	}{
		{"a", true, nil},
		{"a", false, nil},
		{"b", true, nil},
		{"c", false, ErrReplayCacheFull},
	} {
		fresh, err := c.Claim(ctx, "jkt", step.jti, until)
		if fresh != step.wantFresh || !errors.Is(err, step.wantErr) {
			t.Errorf("Claim(%q) = %t, %v; want %t, %v", step.jti, fresh, err, step.wantFresh, step.wantErr)
		}
	}

	clock.Advance(2 * time.Minute)
	if fresh, err := c.Claim(ctx, "jkt", "c", clock.Now().Add(time.Minute)); !fresh || err != nil {
		t.Errorf("Claim after expiry = %t, %v; want true, nil", fresh, err)
	}
}

func TestFullReplayCacheFailsClosed(t *testing.T) {
	iss := newTestIssuer(t)
	clock := newTestClock()
	v := newTestValidator(t, iss, clock, func(c *Config) { c.ReplayCache = NewMemoryReplayCache(0) })
	f := &fixture{iss: iss, device: newTestDevice(t), now: clock.Now()}

	w := serve(v, Requirement{}, f.valid(nil, nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", w.Code)
	}
}

func TestKeyRotationRefetchesJWKS(t *testing.T) {
	iss := newTestIssuer(t)
	clock := newTestClock()
	v := newTestValidator(t, iss, clock, nil)
	device := newTestDevice(t)
	send := func() int {
		token := iss.token(device, clock.Now(), nil)
		proof := device.proof(http.MethodPost, testPublicURL+"/tickets", token, clock.Now(), nil)
		return serve(v, Requirement{}, request(http.MethodPost, "/tickets", "DPoP "+token, proof)).Code
	}

	iss.rotate("key-2")
	if got := send(); got != http.StatusUnauthorized {
		t.Errorf("new kid within a minute of the first fetch: status = %d, want 401", got)
	}
	clock.Advance(61 * time.Second)
	if got := send(); got != http.StatusCreated {
		t.Errorf("new kid after a minute: status = %d, want 201", got)
	}
	iss.rotate("key-3")
	for range 3 {
		send()
	}
	if fetches, _ := iss.counts(); fetches != 2 {
		t.Errorf("JWKS fetches = %d, want 2 (refetch at most once a minute)", fetches)
	}
}

func TestIntrospection(t *testing.T) {
	iss := newTestIssuer(t)
	clock := newTestClock()
	v := newTestValidator(t, iss, clock, nil)
	f := &fixture{iss: iss, device: newTestDevice(t), now: clock.Now()}
	required := Requirement{Scope: "ticket:create", Introspect: true}
	token := iss.token(f.device, f.now, nil)

	if w := serve(v, required, f.send(token, f.proofFor(token, nil))); w.Code != http.StatusCreated {
		t.Fatalf("active token: status = %d, want 201", w.Code)
	}
	iss.mu.Lock()
	iss.revoked[token] = true
	iss.mu.Unlock()

	if w := serve(v, required, f.send(token, f.proofFor(token, nil))); w.Code != http.StatusCreated {
		t.Errorf("revoked token within the cache time: status = %d, want 201 from the cached answer", w.Code)
	}
	if _, n := iss.counts(); n != 1 {
		t.Errorf("introspection calls = %d, want 1 (the second answer is cached)", n)
	}

	clock.Advance(6 * time.Second)
	f.now = clock.Now()
	w := serve(v, required, f.send(token, f.proofFor(token, nil)))
	if w.Code != http.StatusUnauthorized || errorParam(t, w) != CodeInvalidToken {
		t.Errorf("revoked token after the cache time: status %d, error %q; want 401 invalid_token", w.Code, errorParam(t, w))
	}
	if w := serve(v, Requirement{Scope: "ticket:create"}, f.send(token, f.proofFor(token, nil))); w.Code != http.StatusCreated {
		t.Errorf("revoked token on a route without introspection: status = %d, want 201", w.Code)
	}
}

func TestIntrospectionErrorsAreNotCached(t *testing.T) {
	iss := newTestIssuer(t)
	clock := newTestClock()
	v := newTestValidator(t, iss, clock, func(c *Config) {
		c.Introspection = &IntrospectionConfig{ClientID: testClientID, ClientSecret: "wrong"}
	})
	f := &fixture{iss: iss, device: newTestDevice(t), now: clock.Now()}
	required := Requirement{Introspect: true}

	for range 2 {
		if w := serve(v, required, f.valid(nil, nil)); w.Code != http.StatusServiceUnavailable {
			t.Errorf("introspection with a wrong secret: status = %d, want 503", w.Code)
		}
	}
	// A failed call is not counted by the test issuer, so check that the
	// validator asked twice by fixing the secret and expecting a call.
	v.introspect.clientSecret = testSecret
	if w := serve(v, required, f.valid(nil, nil)); w.Code != http.StatusCreated {
		t.Errorf("after fixing the secret: status = %d, want 201", w.Code)
	}
}

func TestIntrospectWithoutConfig(t *testing.T) {
	iss := newTestIssuer(t)
	clock := newTestClock()
	v := newTestValidator(t, iss, clock, func(c *Config) { c.Introspection = nil })
	f := &fixture{iss: iss, device: newTestDevice(t), now: clock.Now()}
	if w := serve(v, Requirement{Introspect: true}, f.valid(nil, nil)); w.Code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", w.Code)
	}
}

func TestNonces(t *testing.T) {
	iss := newTestIssuer(t)
	clock := newTestClock()
	nonces, err := NewHMACNonces([]byte(strings.Repeat("k", 32)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v := newTestValidator(t, iss, clock, func(c *Config) { c.Nonces = nonces })
	f := &fixture{iss: iss, device: newTestDevice(t), now: clock.Now()}

	w := serve(v, Requirement{}, f.valid(nil, nil))
	if w.Code != http.StatusUnauthorized || errorParam(t, w) != CodeUseDPoPNonce {
		t.Fatalf("proof without nonce: status %d, error %q; want 401 use_dpop_nonce", w.Code, errorParam(t, w))
	}
	nonce := w.Header().Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce challenge has no DPoP-Nonce header")
	}

	w = serve(v, Requirement{}, f.valid(nil, map[string]any{"nonce": nonce}))
	if w.Code != http.StatusCreated {
		t.Errorf("proof with the nonce: status = %d, want 201", w.Code)
	}
	if w.Header().Get("DPoP-Nonce") == "" {
		t.Error("successful response has no DPoP-Nonce header for the next request")
	}

	clock.Advance(time.Minute)
	f.now = clock.Now()
	if w := serve(v, Requirement{}, f.valid(nil, map[string]any{"nonce": nonce})); w.Code != http.StatusCreated {
		t.Errorf("nonce of the previous slot: status = %d, want 201", w.Code)
	}

	clock.Advance(time.Minute)
	f.now = clock.Now()
	w = serve(v, Requirement{}, f.valid(nil, map[string]any{"nonce": nonce}))
	if w.Code != http.StatusUnauthorized || errorParam(t, w) != CodeUseDPoPNonce {
		t.Errorf("nonce two slots old: status %d, error %q; want 401 use_dpop_nonce", w.Code, errorParam(t, w))
	}
	if fresh := w.Header().Get("DPoP-Nonce"); fresh == "" || fresh == nonce {
		t.Errorf("DPoP-Nonce = %q, want a new nonce", fresh)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	iss := newTestIssuer(t)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing audience", Config{Issuer: iss.url, PublicURL: testPublicURL}, "Audience"},
		{"relative public URL", Config{Issuer: iss.url, Audience: testAudience, PublicURL: "/tickets"}, "PublicURL"},
		{"symmetric algorithm", Config{Issuer: iss.url, Audience: testAudience, PublicURL: testPublicURL,
			Algorithms: []jose.SignatureAlgorithm{jose.HS256}}, "HS256"},
		{"issuer mismatch in metadata", Config{Issuer: iss.url + "/other", Audience: testAudience, PublicURL: testPublicURL}, "metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestErrorDescriptionIsSanitized(t *testing.T) {
	iss := newTestIssuer(t)
	clock := newTestClock()
	v := newTestValidator(t, iss, clock, nil)
	f := &fixture{iss: iss, device: newTestDevice(t), now: clock.Now()}

	w := serve(v, Requirement{}, f.valid(map[string]any{"iss": "evil\", error=\"none\\\u00e9"}, nil))
	header := w.Header().Get("WWW-Authenticate")
	params := challengeParams(t, header)
	if params["error"] != CodeInvalidToken {
		t.Errorf("error = %q, want invalid_token; header %s", params["error"], header)
	}
	checkDescription(t, params["error_description"])
}

func TestClaimsFrom(t *testing.T) {
	iss := newTestIssuer(t)
	clock := newTestClock()
	v := newTestValidator(t, iss, clock, nil)
	f := &fixture{iss: iss, device: newTestDevice(t), now: clock.Now()}
	r := f.valid(map[string]any{
		"jti":                   "token-1",
		"act":                   map[string]any{"sub": "assistant-broker"},
		"authorization_details": []map[string]string{{"type": "ticket"}},
	}, nil)

	claims, err := v.Validate(r, Requirement{Scope: "ticket:create"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"Subject", claims.Subject, "sso.corp.example|alice"},
		{"ClientID", claims.ClientID, "voice-assistant"},
		{"Scope", claims.Scope, "ticket:create"},
		{"ACR", claims.ACR, "urn:corp:acr:mfa"},
		{"AMR", strings.Join(claims.AMR, " "), "pwd otp"},
		{"JKT", claims.JKT, f.device.jkt},
		{"TokenID", claims.TokenID, "token-1"},
		{"Audience", strings.Join(claims.Audience, " "), testAudience},
		{"Actor.Subject", claims.Actor.Subject, "assistant-broker"},
		{"AuthorizationDetails", string(claims.AuthorizationDetails), `[{"type":"ticket"}]`},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !claims.AuthTime.Equal(f.now.Add(-time.Minute)) {
		t.Errorf("AuthTime = %v, want %v", claims.AuthTime, f.now.Add(-time.Minute))
	}
	if !claims.ExpiresAt.Equal(f.now.Add(5 * time.Minute)) {
		t.Errorf("ExpiresAt = %v, want %v", claims.ExpiresAt, f.now.Add(5*time.Minute))
	}
}

func TestNormalizeURI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://Example.COM", "https://example.com/"},
		{"https://example.com:443/a", "https://example.com/a"},
		{"http://example.com:80/a", "http://example.com/a"},
		{"http://example.com:8090/a", "http://example.com:8090/a"},
		{"https://example.com/a/./b/../c", "https://example.com/a/c"},
		{"https://example.com/%7euser/%2f", "https://example.com/~user/%2F"},
		{"https://example.com/a?q=1#frag", "https://example.com/a"},
		{"https://example.com//a", "https://example.com//a"},
		{"http://[::1]:8090/t", "http://[::1]:8090/t"},
		{"ftp://example.com/", ""},
		{"https://user@example.com/", ""},
		{"/tickets", ""},
		{"https://example.com/a b", ""},
	}
	for _, tt := range tests {
		got, err := normalizeURI(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("normalizeURI(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("normalizeURI(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
