package authz_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sotto-auth/sotto/authz"
)

// FuzzTokenEndpoint sends arbitrary bodies and DPoP headers to the token
// endpoint. Whatever arrives, the answer is a JSON error with a client
// error status and an error code, never a server error or a token.
func FuzzTokenEndpoint(f *testing.F) {
	ts := newTestServer(&testing.T{}, "", "")
	dev := newDevice(&testing.T{})
	handler := ts.http.Config.Handler
	valid := ts.exchangeForm(ts.idToken(nil)).Encode()
	f.Add(valid, dev.proof("POST", ts.issuer+authz.PathToken, nil))
	f.Add("grant_type=x&client_id=voice-assistant", "not.a.jwt")
	f.Add("client_id=voice-assistant&grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=a.b.c", "e30.e30.")
	f.Add(strings.Repeat("scope=a&", 50), "")
	f.Fuzz(func(t *testing.T, body, proof string) {
		r := httptest.NewRequest("POST", ts.issuer+authz.PathToken, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if proof != "" {
			r.Header.Set("DPoP", proof)
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)

		var answer map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Fatalf("status %d with a body that is not JSON: %q", w.Code, w.Body.String())
		}
		if w.Code == http.StatusOK {
			// Only a fresh, correctly signed proof can pass, which the
			// fuzzer cannot forge; the seed's proof is used at most once.
			if _, ok := answer["access_token"]; !ok {
				t.Fatalf("200 without an access token: %v", answer)
			}
			return
		}
		if w.Code >= http.StatusInternalServerError {
			t.Fatalf("status %d: %v", w.Code, answer)
		}
		if code, _ := answer["error"].(string); code == "" {
			t.Fatalf("status %d without an error code: %v", w.Code, answer)
		}
	})
}
