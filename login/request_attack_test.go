package login

import "testing"

// TestMatchRedirectAttacks pins the redirect_uri comparison of RFC 6749
// §3.1.2.2 and RFC 8252 §7.3 against URIs an attacker would send.
func TestMatchRedirectAttacks(t *testing.T) {
	public := Client{Public: true, RedirectURIs: []string{
		"http://127.0.0.1/callback", "https://app.example/cb",
	}}
	confidential := Client{RedirectURIs: []string{"http://127.0.0.1:8000/callback"}}
	tests := []struct {
		name   string
		client Client
		uri    string
		want   bool
	}{
		{"registered URI matches", public, "https://app.example/cb", true},
		{"loopback IP with another port matches", public, "http://127.0.0.1:53111/callback", true},
		{"prefix of a registered path is refused", public, "https://app.example/cb/evil", false},
		{"registered URI with extra query is refused", public, "https://app.example/cb?x=1", false},
		{"another port on a domain name is refused", public, "https://app.example:8443/cb", false},
		{"localhost for a 127.0.0.1 registration is refused", public, "http://localhost:53111/callback", false},
		{"loopback with userinfo is refused", public, "http://evil@127.0.0.1:53111/callback", false},
		{"loopback over https is refused", public, "https://127.0.0.1:53111/callback", false},
		{"loopback with a fragment is refused", public, "http://127.0.0.1:53111/callback#frag", false},
		{"loopback with an empty fragment is refused", public, "http://127.0.0.1:53111/callback#", false},
		{"loopback with an encoded path is refused", public, "http://127.0.0.1:53111/%63allback", false},
		{"confidential client gets no port leeway", confidential, "http://127.0.0.1:8001/callback", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchRedirect(tt.client, tt.uri); got != tt.want {
				t.Errorf("matchRedirect(%q) = %v, want %v", tt.uri, got, tt.want)
			}
		})
	}
}
