package admin_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestAdminMalformedInput sends malformed requests to the admin API and
// checks that none gets a 5xx and every error_description keeps to the
// printable ASCII without '"' or '\' that RFC 6749 §5.2 allows.
func TestAdminMalformedInput(t *testing.T) {
	in := startInstance(t, newDir(t), instanceOptions{})
	token := in.rootToken()
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		ctype  string
		header http.Header
	}{
		{"catalog write with broken JSON", "POST", "/v1/catalog/actions", `{"scope":`, "application/json", nil},
		{"catalog write with a JSON array", "POST", "/v1/catalog/actions", `[]`, "application/json", nil},
		{"catalog write with a null body", "POST", "/v1/catalog/actions", `null`, "application/json", nil},
		{"catalog write with wrong types", "POST", "/v1/catalog/actions", `{"scope":1,"audiences":"x"}`, "application/json", nil},
		{"catalog write with a huge duration", "POST", "/v1/catalog/actions",
			`{"scope":"x:y","description":"d","audiences":["https://a.example"],"max_ttl":"99999999999h"}`, "application/json", nil},
		{"catalog put with a quote in If-Match", "PUT", "/v1/catalog/actions/ticket:create",
			`{"scope":"ticket:create","description":"d","audiences":["https://itsm.corp.example"],"max_ttl":"5m"}`,
			"application/json", http.Header{"If-Match": {`"\"\\x`}}},
		{"client create with an unknown grant", "POST", "/v1/clients", `{"client_id":"a\"b\\c","grant_types":["x\u0000"]}`, "application/json", nil},
		{"audit search with a bad limit", "GET", "/v1/audit?limit=-1&before=abc", "", "", nil},
		{"audit search with a huge limit", "GET", "/v1/audit?limit=99999999999999999999", "", "", nil},
		{"device revoke of a bad key", "POST", "/v1/devices/%00:revoke", "", "", nil},
		{"revocation with a non-JSON body", "POST", "/v1/revocations", "subject=x", "application/x-www-form-urlencoded", nil},
		{"explain with broken JSON", "POST", "/v1/explain", "{", "application/json", nil},
		{"unknown client method", "POST", "/v1/clients/voice-assistant:explode", "", "", nil},
		{"version diff of nonsense", "GET", "/v1/catalog/versions/abc/diff?against=%ff", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, in.admin.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			for k, vs := range tt.header {
				req.Header[k] = vs
			}
			got := do(t, req)
			if got.status >= 500 {
				t.Errorf("status %d, body %s; want a 4xx", got.status, got.raw)
			}
			for _, c := range got.str("error_description") {
				if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
					t.Errorf("error_description %q has the character %q outside RFC 6749 Section 5.2", got.str("error_description"), c)
					break
				}
			}
		})
	}
}
