package authz_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/sottotest"
	"github.com/sotto-auth/sotto/storage"
)

// basicITSM is the HTTP Basic credential of the example connector.
const basicITSM = "Basic aXRzbS1jb25uZWN0b3I6aXRzbS1jb25uZWN0b3ItZGV2LXNlY3JldA=="

// descriptionAllowed reports whether c may appear in an error_description:
// RFC 6749 §5.2 allows %x20-21 / %x23-5B / %x5D-7E.
func descriptionAllowed(c byte) bool {
	return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'
}

// checkDescription reports the first problem of an error_description: a
// byte outside the RFC 6749 §5.2 set or a length past maxLen.
func checkDescription(desc string, maxLen int) string {
	for i := 0; i < len(desc); i++ {
		if !descriptionAllowed(desc[i]) {
			return fmt.Sprintf("byte %#x at offset %d is outside %%x20-21 / %%x23-5B / %%x5D-7E", desc[i], i)
		}
	}
	if len(desc) > maxLen {
		return fmt.Sprintf("it is %d bytes, more than %d", len(desc), maxLen)
	}
	return ""
}

// TestAttackErrorDescriptionCharset sends requests that make the server
// repeat hostile input, or cite an RFC section, in error_description.
func TestAttackErrorDescriptionCharset(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	hostile := "pay\"roll\\\u00e9\x01"
	long := "https://" + strings.Repeat("a", 20000) + ".example"

	exchangeWith := func(edit func(url.Values)) func() response {
		return func() response {
			f := ts.exchangeForm(ts.idToken(nil))
			edit(f)
			return ts.exchange(dev, f)
		}
	}
	subjectWith := func(token string) func() response {
		return exchangeWith(func(f url.Values) { f.Set("subject_token", token) })
	}

	tests := []struct {
		name string
		send func() response
	}{
		{"unknown scope with quote, backslash and non-ASCII",
			exchangeWith(func(f url.Values) { f.Set("scope", hostile) })},
		{"several scopes with quotes",
			exchangeWith(func(f url.Values) { f.Set("scope", `a"b c\d`) })},
		{"several scopes of 20 KB",
			exchangeWith(func(f url.Values) { f.Set("scope", strings.Repeat("x ", 10000)) })},
		{"unknown grant type with a quote",
			exchangeWith(func(f url.Values) { f.Set("grant_type", hostile) })},
		{"unknown client_assertion_type with a backslash",
			exchangeWith(func(f url.Values) { f.Set("client_assertion_type", hostile) })},
		{"resource that is not an absolute URI",
			exchangeWith(func(f url.Values) { f.Del("audience"); f.Set("resource", "::"+hostile) })},
		{"audience of 20 KB that the action does not serve",
			exchangeWith(func(f url.Values) { f.Set("audience", long) })},
		{"two audiences of 20 KB",
			exchangeWith(func(f url.Values) { f["audience"] = []string{long, long + "x"} })},
		{"requested_token_type with a quote",
			exchangeWith(func(f url.Values) { f.Set("requested_token_type", hostile) })},
		{"subject_token_type of 20 KB",
			exchangeWith(func(f url.Values) { f.Set("subject_token_type", long) })},
		{"subject token from an issuer with a quote",
			subjectWith(ts.idToken(map[string]any{"iss": "https://evil\".example"}))},
		{"subject token with a kid that climbs the path",
			subjectWith(signJWT(t, ts.idpKey, "JWT", map[string]any{
				"iss": "https://sso.corp.example", "aud": "sotto", "sub": "alice",
				"exp": time.Now().Add(time.Minute).Unix(),
			}, map[jose.HeaderKey]any{"kid": `..\..\"etc"/passwd`}))},
		{"subject token whose header is broken JSON",
			subjectWith(b64(`{"alg" "ES256"}`) + "." + b64(`{}`) + ".c2ln")},
		{"subject token with a typ of quotes",
			subjectWith(signJWT(t, ts.idpKey, `x"y\z`, map[string]any{"iss": "https://sso.corp.example"}, nil))},
		{"DPoP proof with a quote in htm",
			func() response {
				return ts.post(authz.PathToken, ts.exchangeForm(ts.idToken(nil)), http.Header{
					"DPoP": {dev.proof(`PO"ST`, ts.issuer+authz.PathToken, nil)}})
			}},
		{"repeated parameter, whose answer cites RFC 6749",
			exchangeWith(func(f url.Values) { f["scope"] = []string{"a", "b"} })},
		{"introspection without a token, whose answer cites RFC 7662",
			func() response {
				return ts.post(authz.PathIntrospect, url.Values{"x": {"1"}}, http.Header{"Authorization": {basicITSM}})
			}},
		{"revocation without a token, whose answer cites RFC 7009",
			func() response {
				return ts.post(authz.PathRevoke, url.Values{"client_id": {"voice-assistant"}}, nil)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.send()
			desc := got.str("error_description")
			if got.str("error") == "" || desc == "" {
				t.Fatalf("status %d body %v, want an error with a description", got.status, got.body)
			}
			if problem := checkDescription(desc, 512); problem != "" {
				t.Errorf("error_description %.200q: %s (RFC 6749 §5.2)", desc, problem)
			}
		})
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestAttackScopeDelimiter checks that scope is split on spaces only (RFC
// 6749 §3.3): a tab, a newline or a no-break space is part of the scope
// token, which no catalog action matches.
func TestAttackScopeDelimiter(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	tests := []struct {
		name      string
		scope     string
		wantError string
	}{
		{"scope with a trailing tab is unknown", "ticket:create\t", "invalid_scope"},
		{"scope with a leading newline is unknown", "\nticket:create", "invalid_scope"},
		{"scope with a no-break space is unknown", "ticket:create\u00a0", "invalid_scope"},
		{"scope in upper case is unknown", "TICKET:CREATE", "invalid_scope"},
		{"scope with surrounding spaces is accepted", " ticket:create ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ts.exchangeForm(ts.idToken(nil))
			f.Set("scope", tt.scope)
			got := ts.exchange(dev, f)
			if got.str("error") != tt.wantError {
				t.Errorf("error = %q, want %q (status %d, description %q)",
					got.str("error"), tt.wantError, got.status, got.str("error_description"))
			}
			if tt.wantError != "" && got.str("access_token") != "" {
				t.Error("a refused scope returned an access token")
			}
		})
	}
}

// TestAttackClientAuthentication checks that a request uses one client
// authentication method (RFC 6749 §2.3) and that URL-encoded Basic
// credentials (RFC 6749 §2.3.1) work.
func TestAttackClientAuthentication(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	token := ts.exchange(dev, ts.exchangeForm(ts.idToken(nil))).str("access_token")
	if token == "" {
		t.Fatal("exchange failed")
	}
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	}

	tests := []struct {
		name       string
		path       string
		form       url.Values
		auth       string
		wantStatus int
		wantError  string
	}{
		{"introspection with Basic and a wrong client_secret in the body is refused", authz.PathIntrospect,
			url.Values{"token": {token}, "client_id": {"itsm-connector"}, "client_secret": {"wrong"}},
			basicITSM, 400, "invalid_request"},
		{"introspection with Basic and the right client_secret in the body is refused", authz.PathIntrospect,
			url.Values{"token": {token}, "client_secret": {"itsm-connector-dev-secret"}},
			basicITSM, 400, "invalid_request"},
		{"introspection with Basic for one client and client_id of another is refused", authz.PathIntrospect,
			url.Values{"token": {token}, "client_id": {"voice-assistant"}},
			basicITSM, 400, "invalid_request"},
		{"revocation with Basic and a client_secret in the body is refused", authz.PathRevoke,
			url.Values{"token": {token}, "client_secret": {"x"}},
			basicITSM, 400, "invalid_request"},
		{"introspection with Basic and the same client_id in the body is accepted", authz.PathIntrospect,
			url.Values{"token": {token}, "client_id": {"itsm-connector"}},
			basicITSM, 200, ""},
		{"introspection with URL-encoded Basic credentials is accepted", authz.PathIntrospect,
			url.Values{"token": {token}},
			basic(url.QueryEscape("itsm-connector"), url.QueryEscape("itsm-connector-dev-secret")), 200, ""},
		{"introspection with a secret that differs in its last byte is refused", authz.PathIntrospect,
			url.Values{"token": {token}},
			basic("itsm-connector", "itsm-connector-dev-secreT"), 401, "invalid_client"},
		{"introspection with an empty secret is refused", authz.PathIntrospect,
			url.Values{"token": {token}},
			basic("itsm-connector", ""), 401, "invalid_client"},
		{"introspection with the secret as client_id only is refused", authz.PathIntrospect,
			url.Values{"token": {token}, "client_id": {"itsm-connector"}},
			"", 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := http.Header{}
			if tt.auth != "" {
				header.Set("Authorization", tt.auth)
			}
			got := ts.post(tt.path, tt.form, header)
			if got.status != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %v)", got.status, tt.wantStatus, got.body)
			}
			if got.str("error") != tt.wantError {
				t.Errorf("error = %q, want %q", got.str("error"), tt.wantError)
			}
		})
	}

	t.Run("token request with Basic and a client_secret in the body is refused", func(t *testing.T) {
		f := ts.exchangeForm(ts.idToken(nil))
		f.Del("client_id")
		f.Set("client_secret", "itsm-connector-dev-secret")
		got := ts.post(authz.PathToken, f, http.Header{
			"Authorization": {basicITSM}, "DPoP": {dev.proof("POST", ts.issuer+authz.PathToken, nil)}})
		if got.str("error") != "invalid_request" {
			t.Errorf("error = %q, want invalid_request (status %d, body %v)", got.str("error"), got.status, got.body)
		}
	})
}

// TestAttackProofReplay replays DPoP proofs (RFC 9449 §11.1): at once,
// after a refusal, and across a restart, and checks that every attempt
// leaves an audit record.
func TestAttackProofReplay(t *testing.T) {
	t.Run("same proof 50 times at once is accepted once", func(t *testing.T) {
		ts := newTestServer(t, "", "")
		dev := newDevice(t)
		proof := dev.proof("POST", ts.issuer+authz.PathToken, nil)
		subject := ts.idToken(nil)

		const attempts = 50
		var wg sync.WaitGroup
		results := make([]response, attempts)
		for i := range attempts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = ts.post(authz.PathToken, ts.exchangeForm(subject), http.Header{"DPoP": {proof}})
			}()
		}
		wg.Wait()

		issued, replays := 0, 0
		for _, r := range results {
			switch {
			case r.status == http.StatusOK:
				issued++
			case r.str("error") == "invalid_dpop_proof":
				replays++
			default:
				t.Errorf("unexpected response: status %d body %v", r.status, r.body)
			}
		}
		if issued != 1 || replays != attempts-1 {
			t.Errorf("got %d tokens and %d replay refusals, want 1 and %d", issued, replays, attempts-1)
		}

		records, err := ts.store.AuditRecords(context.Background(), storage.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, r := range records {
			counts[string(r.Decision)+"/"+r.Reason]++
		}
		if counts[string(audit.DecisionIssued)+"/"] != 1 || counts[string(audit.DecisionRefused)+"/dpop_replay"] != attempts-1 {
			t.Errorf("audit records %v, want 1 issued and %d refused as dpop_replay", counts, attempts-1)
		}
	})

	t.Run("proof used by a refused exchange cannot be reused after a restart", func(t *testing.T) {
		ts := newTestServer(t, "", "")
		dev := newDevice(t)
		proof := dev.proof("POST", ts.issuer+authz.PathToken, nil)
		refused := ts.exchangeForm(ts.idToken(nil))
		refused.Set("scope", "payroll:export")
		if got := ts.post(authz.PathToken, refused, http.Header{"DPoP": {proof}}); got.str("error") != "invalid_scope" {
			t.Fatalf("first use: error %q, want invalid_scope", got.str("error"))
		}

		dir, addr := ts.dir, ts.addr
		ts.stop()
		ts = newTestServer(t, dir, addr)
		got := ts.post(authz.PathToken, ts.exchangeForm(ts.idToken(nil)), http.Header{"DPoP": {proof}})
		if got.status != http.StatusBadRequest || got.str("error") != "invalid_dpop_proof" {
			t.Errorf("replay after restart: status %d body %v, want 400 invalid_dpop_proof", got.status, got.body)
		}
	})

	t.Run("same jti under another device key is a new proof", func(t *testing.T) {
		ts := newTestServer(t, "", "")
		jti := map[string]any{"jti": "shared-jti"}
		for i, dev := range []*device{newDevice(t), newDevice(t)} {
			got := ts.post(authz.PathToken, ts.exchangeForm(ts.idToken(nil)), http.Header{
				"DPoP": {dev.proof("POST", ts.issuer+authz.PathToken, jti)}})
			if got.status != http.StatusOK {
				t.Errorf("device %d: status %d body %v, want 200: replay records are per key", i, got.status, got.body)
			}
		}
	})

	t.Run("replay after a restart with a longer iat window is refused", func(t *testing.T) {
		ts := newTestServer(t, "", "")
		dev := newDevice(t)
		proof := dev.proof("POST", ts.issuer+authz.PathToken, nil)
		if got := ts.post(authz.PathToken, ts.exchangeForm(ts.idToken(nil)), http.Header{"DPoP": {proof}}); got.status != 200 {
			t.Fatalf("first use: status %d body %v", got.status, got.body)
		}
		dir, addr := ts.dir, ts.addr
		ts.stop()
		t.Setenv("SOTTO_DPOP_IAT_WINDOW", "120s")
		ts = newTestServer(t, dir, addr)
		got := ts.post(authz.PathToken, ts.exchangeForm(ts.idToken(nil)), http.Header{"DPoP": {proof}})
		if got.str("error") != "invalid_dpop_proof" {
			t.Errorf("replay after restart with a longer window: status %d body %v, want invalid_dpop_proof", got.status, got.body)
		}
	})
}

// TestAttackProofVariants sends proofs whose htu, iat, jwk or alg is
// bent, and checks which the token endpoint accepts (RFC 9449 §4.3).
func TestAttackProofVariants(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	u, err := url.Parse(ts.issuer)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	hostPort := u.Host
	now := time.Now()

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tokenURL := ts.issuer + authz.PathToken
	claims := func() map[string]any {
		return map[string]any{"jti": randomString(), "htm": "POST", "htu": tokenURL, "iat": time.Now().Unix()}
	}
	ecJWK := publicJWK(t, &ecKey.PublicKey)

	tests := []struct {
		name   string
		proof  string
		wantOK bool
	}{
		{"htu with upper-case scheme is accepted", dev.proof("POST", "HTTP://"+hostPort+authz.PathToken, nil), true},
		{"htu with dot segments is accepted", dev.proof("POST", "http://"+hostPort+"/x/.."+authz.PathToken, nil), true},
		{"htu with an encoded unreserved character is accepted", dev.proof("POST", "http://"+hostPort+"/%6Fauth2/token", nil), true},
		{"htu with query and fragment is accepted", dev.proof("POST", tokenURL+"?a=1#b", nil), true},
		{"htu with a trailing dot on the host is refused", dev.proof("POST", "http://127.0.0.1.:"+u.Port()+authz.PathToken, nil), false},
		{"htu naming localhost is refused", dev.proof("POST", "http://localhost:"+u.Port()+authz.PathToken, nil), false},
		{"htu naming the IPv6 loopback is refused", dev.proof("POST", "http://[::1]:"+u.Port()+authz.PathToken, nil), false},
		{"htu with another port is refused", dev.proof("POST", "http://127.0.0.1:"+strconv.Itoa(port+1)+authz.PathToken, nil), false},
		{"htu with https is refused", dev.proof("POST", "https://"+hostPort+authz.PathToken, nil), false},
		{"htu with a trailing slash is refused", dev.proof("POST", tokenURL+"/", nil), false},
		{"htu with an encoded slash is refused", dev.proof("POST", "http://"+hostPort+"/oauth2%2Ftoken", nil), false},
		{"htu with a path in upper case is refused", dev.proof("POST", "http://"+hostPort+"/OAUTH2/TOKEN", nil), false},
		{"htu with userinfo is refused", dev.proof("POST", "http://user@"+hostPort+authz.PathToken, nil), false},
		{"htu with an encoded NUL is refused", dev.proof("POST", tokenURL+"%00", nil), false},
		{"htu that climbs above the root is accepted as the root path", dev.proof("POST", "http://"+hostPort+"/../../oauth2/token", nil), true},
		{"iat 55 seconds old is accepted", dev.proof("POST", tokenURL, map[string]any{"iat": now.Add(-55 * time.Second).Unix()}), true},
		{"iat 55 seconds ahead is accepted", dev.proof("POST", tokenURL, map[string]any{"iat": now.Add(55 * time.Second).Unix()}), true},
		{"iat 65 seconds old is refused", dev.proof("POST", tokenURL, map[string]any{"iat": now.Add(-65 * time.Second).Unix()}), false},
		{"iat 65 seconds ahead is refused", dev.proof("POST", tokenURL, map[string]any{"iat": now.Add(65 * time.Second).Unix()}), false},
		{"iat as a huge number is refused", dev.proof("POST", tokenURL, map[string]any{"iat": 1e300}), false},
		{"iat as a negative number is refused", dev.proof("POST", tokenURL, map[string]any{"iat": -1}), false},
		{"jwk with the private member d is refused",
			rawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": withMember(ecJWK, "d",
				base64.RawURLEncoding.EncodeToString(ecKey.D.FillBytes(make([]byte, 32))))}, claims(), signerES256(ecKey)), false},
		{"alg none is refused",
			rawProof(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": ecJWK}, claims(), func([]byte) []byte { return nil }), false},
		{"HS256 keyed with the jwk is refused",
			rawProof(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": ecJWK}, claims(), func(in []byte) []byte {
				m := hmac.New(sha256.New, []byte(ecJWK["x"].(string)))
				m.Write(in)
				return m.Sum(nil)
			}), false},
		{"ES256 header over an RSA key is refused",
			rawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": publicJWK(t, &rsaKey.PublicKey)}, claims(),
				func(in []byte) []byte {
					sum := sha256.Sum256(in)
					sig, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, sum[:])
					return sig
				}), false},
		{"jwk of kty oct is refused",
			rawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}},
				claims(), signerES256(ecKey)), false},
		{"jwk with an unknown kty is refused",
			rawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": map[string]any{"kty": "XYZ", "crv": "P-256"}},
				claims(), signerES256(ecKey)), false},
		{"claims with a duplicated htu are refused",
			rawProofPayload(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": ecJWK},
				`{"jti":"`+randomString()+`","htm":"POST","htu":"https://evil.example/","htu":"`+tokenURL+`","iat":`+
					strconv.FormatInt(time.Now().Unix(), 10)+`}`, signerES256(ecKey)), false},
		{"a proof padded to 8 KB with junk claims is refused",
			dev.proof("POST", tokenURL, map[string]any{"pad": strings.Repeat("p", 8000)}), false},
		{"a well-formed proof built by hand is accepted",
			rawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": ecJWK}, claims(), signerES256(ecKey)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ts.post(authz.PathToken, ts.exchangeForm(ts.idToken(nil)), http.Header{"DPoP": {tt.proof}})
			if tt.wantOK && got.status != http.StatusOK {
				t.Errorf("status %d body %v, want 200", got.status, got.body)
			}
			if !tt.wantOK && (got.status != http.StatusBadRequest || got.str("error") != "invalid_dpop_proof") {
				t.Errorf("status %d body %v, want 400 invalid_dpop_proof", got.status, got.body)
			}
		})
	}
}

func publicJWK(t *testing.T, key any) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func withMember(jwk map[string]any, name string, value any) map[string]any {
	out := make(map[string]any, len(jwk)+1)
	for k, v := range jwk {
		out[k] = v
	}
	out[name] = value
	return out
}

// signerES256 returns a JWS ES256 signer: r and s of 32 bytes each (RFC
// 7518 §3.4).
func signerES256(key *ecdsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		sum := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
		if err != nil {
			panic(err)
		}
		return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	}
}

// rawProof builds a compact JWS from header and claims without go-jose,
// so a test can send what go-jose would refuse to produce.
func rawProof(header, claims map[string]any, sign func([]byte) []byte) string {
	payload, _ := json.Marshal(claims)
	return rawProofPayload(header, string(payload), sign)
}

func rawProofPayload(header map[string]any, payload string, sign func([]byte) []byte) string {
	h, _ := json.Marshal(header)
	input := b64(string(h)) + "." + b64(payload)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

// TestAttackSubjectTokens presents subject tokens that must not be
// exchanged and checks that each is invalid_request (RFC 8693 §2.2.2).
func TestAttackSubjectTokens(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	now := time.Now()
	base := func() map[string]any {
		return map[string]any{
			"iss": "https://sso.corp.example", "aud": "sotto", "sub": "alice", "groups": []string{"employees"},
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		}
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := jose.JSONWebKey{Key: otherKey, KeyID: ts.idpKey.KeyID, Algorithm: "ES256"}
	idpPublic, _ := json.Marshal(ts.idpKey.Public())
	actionToken := ts.exchange(dev, ts.exchangeForm(ts.idToken(nil))).str("access_token")
	if actionToken == "" {
		t.Fatal("exchange failed")
	}
	payload, _ := json.Marshal(base())

	tests := []struct {
		name  string
		token string
	}{
		{"ID token typed at+jwt is refused", signJWT(t, ts.idpKey, "at+jwt", base(), nil)},
		{"ID token typed dpop+jwt is refused", signJWT(t, ts.idpKey, "dpop+jwt", base(), nil)},
		{"ID token with alg none is refused", b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(string(payload)) + "."},
		{"ID token with HS256 keyed by the IdP public key is refused",
			rawProofPayload(map[string]any{"alg": "HS256", "typ": "JWT", "kid": ts.idpKey.KeyID}, string(payload),
				func(in []byte) []byte {
					m := hmac.New(sha256.New, idpPublic)
					m.Write(in)
					return m.Sum(nil)
				})},
		{"ID token signed by another key under the IdP kid is refused", signJWT(t, forged, "JWT", base(), nil)},
		{"ID token with an unknown kid is refused",
			signJWT(t, ts.idpKey, "JWT", base(), map[jose.HeaderKey]any{"kid": "unknown"})},
		{"ID token with an embedded jwk of the attacker is refused",
			signJWT(t, forged, "JWT", base(), map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: otherKey.Public()}})},
		{"ID token for another audience is refused", ts.idToken(map[string]any{"aud": "someone-else"})},
		{"ID token with aud in another case is refused", ts.idToken(map[string]any{"aud": "SOTTO"})},
		{"ID token valid from an hour ahead is refused", ts.idToken(map[string]any{"nbf": now.Add(time.Hour).Unix()})},
		{"ID token issued an hour ahead is refused", ts.idToken(map[string]any{"iat": now.Add(time.Hour).Unix()})},
		{"ID token that expired a second ago is refused", ts.idToken(map[string]any{"exp": now.Add(-time.Second).Unix()})},
		{"ID token with exp as a string is refused", ts.idToken(map[string]any{"exp": strconv.FormatInt(now.Add(time.Hour).Unix(), 10)})},
		{"ID token with exp past year 9999 is refused", ts.idToken(map[string]any{"exp": 1e12})},
		{"ID token without exp is refused", ts.idToken(map[string]any{"exp": nil})},
		{"ID token without sub is refused", ts.idToken(map[string]any{"sub": nil})},
		{"ID token with a sub of 256 bytes is refused", ts.idToken(map[string]any{"sub": strings.Repeat("s", 256)})},
		{"ID token with iss in another case is refused", ts.idToken(map[string]any{"iss": "https://SSO.corp.example"})},
		{"ID token over 16 KB is refused", ts.idToken(map[string]any{"pad": strings.Repeat("p", 17000)})},
		{"action token presented as an ID token is refused", actionToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ts.exchangeForm(tt.token)
			got := ts.exchange(dev, f)
			if got.status != http.StatusBadRequest || got.str("error") != "invalid_request" {
				t.Errorf("status %d body %v, want 400 invalid_request", got.status, got.body)
			}
			if got.str("access_token") != "" {
				t.Error("a refused subject token returned an access token")
			}
		})
	}

	t.Run("action token presented as an access token is refused", func(t *testing.T) {
		f := ts.exchangeForm(actionToken)
		f.Set("subject_token_type", exchange.TokenTypeAccessToken)
		got := ts.exchange(dev, f)
		if got.str("error") != "invalid_request" || !strings.Contains(got.str("error_description"), "action token") {
			t.Errorf("status %d body %v, want invalid_request naming the action token", got.status, got.body)
		}
	})
}

// TestAttackIntrospectionInactive checks that introspection returns exactly
// {"active": false} for every token a connector may not use (RFC 7662 §2.2).
func TestAttackIntrospectionInactive(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	issue := func(claims map[string]any, edit func(url.Values)) string {
		f := ts.exchangeForm(ts.idToken(claims))
		if edit != nil {
			edit(f)
		}
		got := ts.exchange(dev, f)
		if got.status != http.StatusOK {
			t.Fatalf("exchange: status %d body %v", got.status, got.body)
		}
		return got.str("access_token")
	}

	revoked := issue(nil, nil)
	if got := ts.post(authz.PathRevoke, url.Values{"token": {revoked}, "client_id": {"voice-assistant"}}, nil); got.status != 200 {
		t.Fatalf("revocation: status %d body %v", got.status, got.body)
	}
	expiring := issue(map[string]any{"exp": time.Now().Add(2 * time.Second).Unix()}, nil)
	calendar := issue(nil, func(f url.Values) { f.Set("scope", "calendar:read"); f.Del("audience") })
	live := issue(nil, nil)
	parts := strings.Split(live, ".")
	tampered := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	var claims map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(raw, &claims)
	claims["aud"] = "https://calendar.corp.example"
	edited, _ := json.Marshal(claims)
	reaudienced := parts[0] + "." + b64(string(edited)) + "." + parts[2]

	// The expiring token's lifetime is capped at its subject token's exp.
	time.Sleep(time.Until(time.Unix(time.Now().Add(2*time.Second).Unix(), 0)) + 100*time.Millisecond)

	tests := []struct {
		name  string
		token string
	}{
		{"revoked token is inactive", revoked},
		{"expired token is inactive", expiring},
		{"token for another audience is inactive", calendar},
		{"token with a forged signature and a real jti is inactive", tampered},
		{"token with its audience rewritten is inactive", reaudienced},
		{"garbage is inactive", "garbage"},
		{"three empty parts are inactive", ".."},
		{"token of 20 KB is inactive", strings.Repeat("a", 20000)},
		{"ID token is inactive", ts.idToken(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ts.introspect(tt.token)
			if got.status != http.StatusOK || len(got.body) != 1 || got.body["active"] != false {
				t.Errorf("status %d body %v, want 200 and exactly {\"active\": false}", got.status, got.body)
			}
		})
	}
	if got := ts.introspect(live); got.body["active"] != true {
		t.Errorf("live token: %v, want active", got.body)
	}
}

// TestAttackRevocationRace revokes tokens while connectors introspect
// them, and checks that no introspection after a completed revocation
// returns the token as active.
func TestAttackRevocationRace(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	const tokens = 10
	var wg sync.WaitGroup
	for range tokens {
		token := ts.exchange(dev, ts.exchangeForm(ts.idToken(nil))).str("access_token")
		if token == "" {
			t.Fatal("exchange failed")
		}
		var mu sync.Mutex
		revoked := false
		stop := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				after := revoked
				mu.Unlock()
				got := ts.introspect(token)
				if after && got.body["active"] != false {
					t.Errorf("introspection after the revocation completed: %v, want inactive", got.body)
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer close(stop)
			got := ts.post(authz.PathRevoke, url.Values{"token": {token}, "client_id": {"voice-assistant"}}, nil)
			if got.status != http.StatusOK {
				t.Errorf("revocation: status %d body %v", got.status, got.body)
			}
			mu.Lock()
			revoked = true
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}()
	}
	wg.Wait()
}

// TestAttackRestartMidTraffic closes the store while exchanges run, then
// restarts, and checks that every token sent to a client is stored and
// that no error response carries internals.
func TestAttackRestartMidTraffic(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	subject := ts.idToken(nil)
	const workers = 20

	var wg sync.WaitGroup
	var mu sync.Mutex
	var issued []string
	var failures []response
	start := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range 5 {
				got := ts.exchange(dev, ts.exchangeForm(subject))
				mu.Lock()
				if got.status == http.StatusOK {
					issued = append(issued, got.str("access_token"))
				} else {
					failures = append(failures, got)
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	time.Sleep(20 * time.Millisecond)
	if err := ts.store.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	for _, f := range failures {
		desc := strings.ToLower(f.str("error_description"))
		if f.status < 500 || f.str("error") != "server_error" ||
			strings.Contains(desc, "storage") || strings.Contains(desc, "sql") || strings.Contains(desc, "closed") {
			t.Errorf("failure during shutdown: status %d body %v, want 500 server_error without internals", f.status, f.body)
		}
	}

	dir, addr := ts.dir, ts.addr
	ts.stop()
	ts = newTestServer(t, dir, addr)
	for _, token := range issued {
		if got := ts.introspect(token); got.body["active"] != true {
			t.Errorf("a token issued before the shutdown is %v after the restart, want active", got.body)
		}
	}
	t.Logf("%d tokens issued and %d requests failed during the shutdown", len(issued), len(failures))
}

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newLoggedTestServer starts a server like newTestServer whose server,
// exchange and storage logs go to the returned buffer at debug level.
func newLoggedTestServer(t *testing.T) (*testServer, *lockedBuffer) {
	t.Helper()
	dir := sottotest.CopyExamples(t, filepath.Join("..", "examples"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	t.Setenv("SOTTO_ISSUER", issuer)
	t.Setenv("SOTTO_LISTEN", ln.Addr().String())
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	built := sottotest.Open(t, filepath.Join(dir, "sotto.yaml"), sottotest.Options{Logger: logger})
	store, srv := built.Store, built.Server
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Config.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	hs.Start()

	ts := &testServer{t: t, dir: dir, addr: ln.Addr().String(), issuer: issuer, http: hs, store: store}
	ts.idpKey = loadIDPKey(t)
	t.Cleanup(ts.stop)
	return ts, logs
}

// TestAttackLogsHoldNoSecrets runs issuance, refusals, introspection with
// good and bad secrets, revocation and a storage failure, and checks that
// the log holds no token, proof or secret.
func TestAttackLogsHoldNoSecrets(t *testing.T) {
	ts, logs := newLoggedTestServer(t)
	dev := newDevice(t)
	subject := ts.idToken(nil)
	proof := dev.proof("POST", ts.issuer+authz.PathToken, nil)

	got := ts.post(authz.PathToken, ts.exchangeForm(subject), http.Header{"DPoP": {proof}})
	token := got.str("access_token")
	if token == "" {
		t.Fatalf("exchange: status %d body %v", got.status, got.body)
	}
	ts.post(authz.PathToken, ts.exchangeForm(subject), http.Header{"DPoP": {proof}})
	refused := ts.exchangeForm(subject)
	refused.Set("scope", "payroll:export")
	ts.exchange(dev, refused)
	ts.introspect(token)
	badSecret := "wrong-secret-" + randomString()
	ts.post(authz.PathIntrospect, url.Values{"token": {token}}, http.Header{
		"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("itsm-connector:"+badSecret))}})
	ts.post(authz.PathIntrospect, url.Values{"token": {token}}, http.Header{"Authorization": {"Bearer " + token}})
	ts.post(authz.PathRevoke, url.Values{"token": {token}}, http.Header{"Authorization": {basicITSM}})
	ts.post(authz.PathRevoke, url.Values{"token": {token}, "client_id": {"voice-assistant"}}, nil)
	if err := ts.store.Close(); err != nil {
		t.Fatal(err)
	}
	lateProof := dev.proof("POST", ts.issuer+authz.PathToken, nil)
	ts.post(authz.PathToken, ts.exchangeForm(subject), http.Header{"DPoP": {lateProof}})
	ts.introspect(token)

	out := logs.String()
	if !strings.Contains(out, "request_id") {
		t.Fatalf("the log has no request lines, so the check below proves nothing:\n%s", out)
	}
	secrets := map[string]string{
		"access token signature": strings.Split(token, ".")[2],
		"access token payload":   strings.Split(token, ".")[1],
		"ID token signature":     strings.Split(subject, ".")[2],
		"DPoP proof signature":   strings.Split(proof, ".")[2],
		"late proof signature":   strings.Split(lateProof, ".")[2],
		"client secret":          "itsm-connector-dev-secret",
		"wrong secret":           badSecret,
		"Basic credential":       strings.TrimPrefix(basicITSM, "Basic "),
	}
	for name, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
}

// TestAttackJWKSPublicOnly checks that the JWKS and the metadata carry no
// private key member (RFC 7517 §4, RFC 7518 §6).
func TestAttackJWKSPublicOnly(t *testing.T) {
	ts := newTestServer(t, "", "")
	for _, path := range []string{authz.PathJWKS, "/.well-known/oauth-authorization-server"} {
		resp, err := http.Get(ts.issuer + path)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
					if _, ok := v[private]; ok {
						t.Errorf("%s has the private member %q", path, private)
					}
				}
				for _, member := range v {
					walk(member)
				}
			case []any:
				for _, member := range v {
					walk(member)
				}
			}
		}
		walk(doc)
	}
}
