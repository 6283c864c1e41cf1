package admin_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/exchange"
)

// startSession exchanges an ID token for subject with scope sotto:session
// and returns the refresh token.
func (in *instance) startSession(d *device, subject string) string {
	in.t.Helper()
	r := in.tokenRequest(d, url.Values{
		"grant_type":         {exchange.GrantType},
		"client_id":          {"voice-assistant"},
		"subject_token":      {subject},
		"subject_token_type": {exchange.TokenTypeIDToken},
		"scope":              {exchange.SessionScope},
	})
	if r.status != http.StatusOK || r.str("refresh_token") == "" {
		in.t.Fatalf("session request: status %d, body %s; want 200 with a refresh_token", r.status, r.raw)
	}
	return r.str("refresh_token")
}

// refresh sends a refresh token grant for refreshToken from d.
func (in *instance) refresh(d *device, refreshToken string) reply {
	in.t.Helper()
	return in.tokenRequest(d, url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {"voice-assistant"},
		"refresh_token": {refreshToken},
	})
}

func (in *instance) tokenRequest(d *device, form url.Values) reply {
	in.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, in.issuer+authz.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", d.proof(in.t, in.issuer+authz.PathToken))
	return do(in.t, req)
}

// TestSessionsAfterAdminRevocation checks that the admin kill switches
// and revocations reach sessions: a refresh token must not mint new
// tokens for a disabled client or for a user whose tokens were revoked.
func TestSessionsAfterAdminRevocation(t *testing.T) {
	tests := []struct {
		name      string
		path      string
		body      map[string]any
		wantError string
	}{
		{
			name:      "disabled client cannot refresh its session",
			path:      "/v1/clients/voice-assistant:disable",
			wantError: "unauthorized_client",
		},
		{
			name:      "disabled client with revoked tokens cannot refresh",
			path:      "/v1/clients/voice-assistant:disable",
			body:      map[string]any{"revoke_tokens": true},
			wantError: "unauthorized_client",
		},
		{
			name:      "revocation by subject ends the user's session",
			path:      "/v1/revocations",
			body:      map[string]any{"subject": "sso.corp.example|alice"},
			wantError: "invalid_grant",
		},
		{
			name:      "revocation by device key ends the session on it",
			path:      "/v1/revocations",
			body:      map[string]any{"device_jkt": ""},
			wantError: "invalid_grant",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := startInstance(t, newDir(t), instanceOptions{})
			d := newDevice(t)
			refreshToken := in.startSession(d, idToken(t, "alice", []string{"employees"}))

			body := tt.body
			if _, ok := body["device_jkt"]; ok {
				body = map[string]any{"device_jkt": d.jkt}
			}
			if r := in.call(http.MethodPost, tt.path, in.rootToken(), body, nil); r.status != http.StatusOK {
				t.Fatalf("POST %s: status %d, body %s; want 200", tt.path, r.status, r.raw)
			}

			got := in.refresh(d, refreshToken)
			if got.status != http.StatusBadRequest {
				t.Errorf("refresh: status %d, body %s; want 400", got.status, got.raw)
			}
			if got.str("error") != tt.wantError {
				t.Errorf("refresh: error %q, want %q", got.str("error"), tt.wantError)
			}
		})
	}
}
