package connector

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fixture is what a test case needs to build its request.
type fixture struct {
	iss    *testIssuer
	device *testDevice
	now    time.Time
}

// send builds a DPoP request for POST /tickets with token and a proof.
func (f *fixture) send(token, proof string) *http.Request {
	return request(http.MethodPost, "/tickets", "DPoP "+token, proof)
}

func (f *fixture) proofFor(token string, override map[string]any) string {
	return f.device.proof(http.MethodPost, testPublicURL+"/tickets", token, f.now, override)
}

// valid returns a request with a valid token, changed by tokenOverride,
// and a valid proof, changed by proofOverride.
func (f *fixture) valid(tokenOverride, proofOverride map[string]any) *http.Request {
	token := f.iss.token(f.device, f.now, tokenOverride)
	return f.send(token, f.proofFor(token, proofOverride))
}

func TestRequire(t *testing.T) {
	iss := newTestIssuer(t)
	clock := newTestClock()
	v := newTestValidator(t, iss, clock, nil)
	f := &fixture{iss: iss, device: newTestDevice(t), now: clock.Now()}
	ticketCreate := Requirement{Scope: "ticket:create"}

	hmacKey := make([]byte, 32)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	tests := []struct {
		name       string
		request    func() *http.Request
		required   Requirement
		wantStatus int
		wantError  string
	}{
		{name: "valid token and proof pass", request: func() *http.Request { return f.valid(nil, nil) },
			wantStatus: http.StatusOK},
		{name: "scheme is case-insensitive", request: func() *http.Request {
			token := f.iss.token(f.device, f.now, nil)
			return request(http.MethodPost, "/tickets", "dpop "+token, f.proofFor(token, nil))
		}, wantStatus: http.StatusOK},
		{name: "missing Authorization gets a bare challenge", request: func() *http.Request {
			return request(http.MethodPost, "/tickets", "")
		}, wantStatus: http.StatusUnauthorized, wantError: ""},
		{name: "Bearer scheme is rejected", request: func() *http.Request {
			token := f.iss.token(f.device, f.now, nil)
			return request(http.MethodPost, "/tickets", "Bearer "+token, f.proofFor(token, nil))
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "two Authorization headers are rejected", request: func() *http.Request {
			r := f.valid(nil, nil)
			r.Header.Add("Authorization", "DPoP x")
			return r
		}, wantStatus: http.StatusBadRequest, wantError: CodeInvalidRequest},
		{name: "token that is not token68 is rejected", request: func() *http.Request {
			return request(http.MethodPost, "/tickets", "DPoP a b", f.proofFor("a b", nil))
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "missing DPoP header is rejected", request: func() *http.Request {
			return request(http.MethodPost, "/tickets", "DPoP "+f.iss.token(f.device, f.now, nil))
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "two DPoP headers are rejected", request: func() *http.Request {
			token := f.iss.token(f.device, f.now, nil)
			return request(http.MethodPost, "/tickets", "DPoP "+token, f.proofFor(token, nil), f.proofFor(token, nil))
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "DPoP header with a list is rejected", request: func() *http.Request {
			token := f.iss.token(f.device, f.now, nil)
			return request(http.MethodPost, "/tickets", "DPoP "+token, f.proofFor(token, nil)+","+f.proofFor(token, nil))
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},

		// The access token (RFC 9068, Section 4).
		{name: "ID token typ JWT is rejected", request: func() *http.Request {
			token := signCompact(t, jose.ES256, iss.key, map[jose.HeaderKey]any{"typ": "JWT", "kid": iss.kid},
				map[string]any{"iss": iss.url, "sub": "alice", "aud": testAudience, "exp": f.now.Add(time.Minute).Unix(),
					"iat": f.now.Unix(), "jti": "1", "client_id": "c", "scope": "ticket:create", "cnf": map[string]string{"jkt": f.device.jkt}})
			return f.send(token, f.proofFor(token, nil))
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "typ application/at+jwt passes", request: func() *http.Request {
			token := signCompact(t, jose.ES256, iss.key, map[jose.HeaderKey]any{"typ": "application/at+jwt", "kid": iss.kid},
				map[string]any{"iss": iss.url, "sub": "alice", "aud": testAudience, "exp": f.now.Add(time.Minute).Unix(),
					"iat": f.now.Unix(), "jti": "1", "client_id": "c", "scope": "ticket:create", "cnf": map[string]string{"jkt": f.device.jkt}})
			return f.send(token, f.proofFor(token, nil))
		}, wantStatus: http.StatusOK},
		{name: "token with crit is rejected", request: func() *http.Request {
			token := signCompact(t, jose.ES256, iss.key, map[jose.HeaderKey]any{"typ": "at+jwt", "kid": iss.kid,
				"crit": []string{"exp"}, "exp": 1}, map[string]any{"iss": iss.url})
			return f.send(token, f.proofFor(token, nil))
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "token signed with HS256 is rejected", request: func() *http.Request {
			token := signCompact(t, jose.HS256, hmacKey, map[jose.HeaderKey]any{"typ": "at+jwt", "kid": iss.kid},
				map[string]any{"iss": iss.url})
			return f.send(token, f.proofFor(token, nil))
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "token signed by another key is rejected", request: func() *http.Request {
			token := signCompact(t, jose.ES256, otherKey, map[jose.HeaderKey]any{"typ": "at+jwt", "kid": iss.kid},
				map[string]any{"iss": iss.url})
			return f.send(token, f.proofFor(token, nil))
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "unknown kid is rejected", request: func() *http.Request {
			token := signCompact(t, jose.ES256, iss.key, map[jose.HeaderKey]any{"typ": "at+jwt", "kid": "nope"},
				map[string]any{"iss": iss.url})
			return f.send(token, f.proofFor(token, nil))
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "other issuer is rejected", request: func() *http.Request { return f.valid(map[string]any{"iss": "https://evil.example"}, nil) },
			wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "other audience is rejected", request: func() *http.Request { return f.valid(map[string]any{"aud": "https://erp.corp.example"}, nil) },
			wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "audience list containing ours passes", request: func() *http.Request {
			return f.valid(map[string]any{"aud": []string{"https://erp.corp.example", testAudience}}, nil)
		}, wantStatus: http.StatusOK},
		{name: "expired token is rejected", request: func() *http.Request {
			return f.valid(map[string]any{"exp": f.now.Add(-11 * time.Second).Unix()}, nil)
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "expiry within the leeway passes", request: func() *http.Request {
			return f.valid(map[string]any{"exp": f.now.Add(-5 * time.Second).Unix()}, nil)
		}, wantStatus: http.StatusOK},
		{name: "nbf in the future is rejected", request: func() *http.Request {
			return f.valid(map[string]any{"nbf": f.now.Add(time.Minute).Unix()}, nil)
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "iat in the future is rejected", request: func() *http.Request {
			return f.valid(map[string]any{"iat": f.now.Add(time.Minute).Unix()}, nil)
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "missing exp is rejected", request: func() *http.Request { return f.valid(map[string]any{"exp": nil}, nil) },
			wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "missing sub is rejected", request: func() *http.Request { return f.valid(map[string]any{"sub": nil}, nil) },
			wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "missing client_id is rejected", request: func() *http.Request { return f.valid(map[string]any{"client_id": nil}, nil) },
			wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "missing jti is rejected", request: func() *http.Request { return f.valid(map[string]any{"jti": nil}, nil) },
			wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "unbound token is rejected", request: func() *http.Request { return f.valid(map[string]any{"cnf": nil}, nil) },
			wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},
		{name: "exp as a string is rejected", request: func() *http.Request { return f.valid(map[string]any{"exp": "tomorrow"}, nil) },
			wantStatus: http.StatusUnauthorized, wantError: CodeInvalidToken},

		// Scope (RFC 6750, Section 3.1).
		{name: "missing scope gets 403", request: func() *http.Request { return f.valid(map[string]any{"scope": "ticket:read"}, nil) },
			wantStatus: http.StatusForbidden, wantError: CodeInsufficientScope},
		{name: "scope prefix does not count", request: func() *http.Request { return f.valid(map[string]any{"scope": "ticket:created"}, nil) },
			wantStatus: http.StatusForbidden, wantError: CodeInsufficientScope},
		{name: "scope among several passes", request: func() *http.Request {
			return f.valid(map[string]any{"scope": "ticket:read ticket:create"}, nil)
		}, wantStatus: http.StatusOK},

		// The DPoP proof (RFC 9449, Section 4.3).
		{name: "proof typ JWT is rejected", request: func() *http.Request {
			token := f.iss.token(f.device, f.now, nil)
			proof := signCompact(t, jose.ES256, f.device.key, map[jose.HeaderKey]any{"typ": "JWT",
				"jwk": jose.JSONWebKey{Key: f.device.key.Public()}}, map[string]any{"jti": "1", "htm": "POST",
				"htu": testPublicURL + "/tickets", "iat": f.now.Unix(), "ath": sha256B64(token)})
			return f.send(token, proof)
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof with a private jwk is rejected", request: func() *http.Request {
			token := f.iss.token(f.device, f.now, nil)
			proof := signCompact(t, jose.ES256, f.device.key, map[jose.HeaderKey]any{"typ": "dpop+jwt",
				"jwk": jose.JSONWebKey{Key: f.device.key}}, map[string]any{"jti": "1", "htm": "POST",
				"htu": testPublicURL + "/tickets", "iat": f.now.Unix(), "ath": sha256B64(token)})
			return f.send(token, proof)
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof without jwk is rejected", request: func() *http.Request {
			token := f.iss.token(f.device, f.now, nil)
			proof := signCompact(t, jose.ES256, f.device.key, map[jose.HeaderKey]any{"typ": "dpop+jwt"},
				map[string]any{"jti": "1", "htm": "POST", "htu": testPublicURL + "/tickets", "iat": f.now.Unix(), "ath": sha256B64(token)})
			return f.send(token, proof)
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof by another key is rejected", request: func() *http.Request {
			token := f.iss.token(f.device, f.now, nil)
			return f.send(token, newTestDevice(t).proof(http.MethodPost, testPublicURL+"/tickets", token, f.now, nil))
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof for another method is rejected", request: func() *http.Request {
			return f.valid(nil, map[string]any{"htm": "GET"})
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof for another path is rejected", request: func() *http.Request {
			return f.valid(nil, map[string]any{"htu": testPublicURL + "/admin"})
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof for the listen address is rejected", request: func() *http.Request {
			return f.valid(nil, map[string]any{"htu": "http://127.0.0.1:8090/tickets"})
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof htu is compared after normalization", request: func() *http.Request {
			return f.valid(nil, map[string]any{"htu": "HTTPS://ITSM-API.corp.example:443/a/../%74ickets?x=1#f"})
		}, wantStatus: http.StatusOK},
		{name: "proof iat too old is rejected", request: func() *http.Request {
			return f.valid(nil, map[string]any{"iat": f.now.Add(-61 * time.Second).Unix()})
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof iat in the future is rejected", request: func() *http.Request {
			return f.valid(nil, map[string]any{"iat": f.now.Add(61 * time.Second).Unix()})
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof without ath is rejected", request: func() *http.Request {
			return f.valid(nil, map[string]any{"ath": nil})
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof ath of another token is rejected", request: func() *http.Request {
			return f.valid(nil, map[string]any{"ath": sha256B64("another token")})
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof without jti is rejected", request: func() *http.Request {
			return f.valid(nil, map[string]any{"jti": nil})
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},
		{name: "proof htu as a number is rejected", request: func() *http.Request {
			return f.valid(nil, map[string]any{"htu": 7})
		}, wantStatus: http.StatusUnauthorized, wantError: CodeInvalidDPoPProof},

		// Step-up (RFC 9470, Section 3).
		{name: "acr outside ACRValues needs step-up", request: func() *http.Request { return f.valid(nil, nil) },
			required:   Requirement{Scope: "ticket:create", ACRValues: []string{"urn:sotto:acr:passkey"}},
			wantStatus: http.StatusUnauthorized, wantError: CodeInsufficientUserAuthentication},
		{name: "acr among ACRValues passes", request: func() *http.Request {
			return f.valid(map[string]any{"acr": "urn:sotto:acr:passkey"}, nil)
		}, required: Requirement{Scope: "ticket:create", ACRValues: []string{"urn:sotto:acr:passkey"}}, wantStatus: http.StatusOK},
		{name: "old auth_time needs step-up", request: func() *http.Request {
			return f.valid(map[string]any{"auth_time": f.now.Add(-10 * time.Minute).Unix()}, nil)
		}, required: Requirement{Scope: "ticket:create", MaxAge: 5 * time.Minute},
			wantStatus: http.StatusUnauthorized, wantError: CodeInsufficientUserAuthentication},
		{name: "missing auth_time with MaxAge needs step-up", request: func() *http.Request {
			return f.valid(map[string]any{"auth_time": nil}, nil)
		}, required: Requirement{Scope: "ticket:create", MaxAge: 5 * time.Minute},
			wantStatus: http.StatusUnauthorized, wantError: CodeInsufficientUserAuthentication},
		{name: "recent auth_time passes", request: func() *http.Request { return f.valid(nil, nil) },
			required: Requirement{Scope: "ticket:create", MaxAge: 5 * time.Minute}, wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			required := tt.required
			if required.Scope == "" && required.MaxAge == 0 {
				required = ticketCreate
			}
			w := httptest.NewRecorder()
			v.Require(required, okHandler(t)).ServeHTTP(w, tt.request())

			if w.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d; WWW-Authenticate: %s", w.Code, tt.wantStatus, w.Header().Get("WWW-Authenticate"))
			}
			if tt.wantStatus == http.StatusOK {
				return
			}
			params := challengeParams(t, w.Header().Get("WWW-Authenticate"))
			if params["error"] != tt.wantError {
				t.Errorf("error = %q, want %q (%s)", params["error"], tt.wantError, params["error_description"])
			}
			if params["algs"] != "ES256 ES384 EdDSA RS256 PS256" {
				t.Errorf("algs = %q, want the default algorithms", params["algs"])
			}
			checkDescription(t, params["error_description"])
			switch tt.wantError {
			case CodeInsufficientScope:
				if params["scope"] != required.Scope {
					t.Errorf("scope = %q, want %q", params["scope"], required.Scope)
				}
			case CodeInsufficientUserAuthentication:
				if want := strings.Join(required.ACRValues, " "); params["acr_values"] != want {
					t.Errorf("acr_values = %q, want %q", params["acr_values"], want)
				}
				if required.MaxAge > 0 && params["max_age"] != "300" {
					t.Errorf("max_age = %q, want 300", params["max_age"])
				}
			}
		})
	}
}

// okHandler responds 200 with the claims it found in the context.
func okHandler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, ok := ClaimsFrom(r.Context())
		if !ok {
			t.Error("ClaimsFrom found no claims in the context of an accepted request")
		}
		_ = json.NewEncoder(w).Encode(claims)
	})
}

// checkDescription fails when description has a character RFC 6749,
// Section 5.2 does not allow.
func checkDescription(t *testing.T, description string) {
	t.Helper()
	for i := 0; i < len(description); i++ {
		if !allowedDescriptionByte(description[i]) {
			t.Errorf("error_description %q contains the byte %#x", description, description[i])
		}
	}
}

func sha256B64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
