package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ory/fosite"
)

func TestQuote(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain value is quoted", "ticket:create", "'ticket:create'"},
		{"double quote and backslash are replaced", `a"b\c`, "'a?b?c'"},
		{"control and non-ASCII bytes are replaced", "a\nb\u00e9", "'a?b??'"},
		{"long value is cut to 64 bytes", strings.Repeat("x", 70), "'" + strings.Repeat("x", 64) + "...'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quote(tt.in); got != tt.want {
				t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestWriteCharset checks that every written description stays inside the
// RFC 6749 §5.2 character set, whatever the error carried.
func TestWriteCharset(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"section sign becomes a word", New("invalid_request", "r", "Send each parameter once (RFC 6749 §3.2)."),
			"Send each parameter once (RFC 6749 Section 3.2)."},
		{"double quote becomes a single quote", New("invalid_scope", "r", `The scope "x" is unknown.`),
			"The scope 'x' is unknown."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			Write(w, httptest.NewRequest("POST", "/token", nil), nil, tt.err)
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body["error_description"] != tt.want {
				t.Errorf("error_description = %q, want %q", body["error_description"], tt.want)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
		})
	}
}

// TestServerErrorHidesCause checks that a server_error says nothing of its
// cause (RFC 6749 §5.2 descriptions are for the client).
func TestServerErrorHidesCause(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, httptest.NewRequest("POST", "/token", nil), nil, errors.New("pq: password authentication failed for user sotto"))
	if w.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", w.Code)
	}
	if strings.Contains(w.Body.String(), "password") || strings.Contains(w.Body.String(), "pq:") {
		t.Errorf("body %q leaks the cause", w.Body.String())
	}
}

func TestFromFositeError(t *testing.T) {
	e := From(fosite.ErrInvalidClient.WithHint("hint text").WithDebug("secret debug"))
	if e.Code != "invalid_client" || e.Status != http.StatusUnauthorized {
		t.Errorf("From = %s %d, want invalid_client 401", e.Code, e.Status)
	}
	if strings.Contains(e.Description, "secret debug") {
		t.Errorf("description %q carries fosite's debug text", e.Description)
	}
}
