package devicebind

import (
	"strings"
	"testing"
)

func TestNormalizeURI(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // empty means an error is expected
	}{
		{"plain URI is unchanged", "https://sotto.example/token", "https://sotto.example/token"},
		{"scheme is lower-cased", "HTTPS://sotto.example/token", "https://sotto.example/token"},
		{"host is lower-cased", "https://Sotto.EXAMPLE/token", "https://sotto.example/token"},
		{"path keeps its case", "https://sotto.example/Token", "https://sotto.example/Token"},
		{"https default port is removed", "https://sotto.example:443/token", "https://sotto.example/token"},
		{"http default port is removed", "http://sotto.example:80/token", "http://sotto.example/token"},
		{"empty port is removed", "https://sotto.example:/token", "https://sotto.example/token"},
		{"other port is kept", "https://sotto.example:8443/token", "https://sotto.example:8443/token"},
		{"http port 443 is kept", "http://sotto.example:443/token", "http://sotto.example:443/token"},
		{"port leading zeros are dropped", "https://sotto.example:08443/token", "https://sotto.example:8443/token"},
		{"empty path becomes slash", "https://sotto.example", "https://sotto.example/"},
		{"query is dropped", "https://sotto.example/token?a=b", "https://sotto.example/token"},
		{"fragment is dropped", "https://sotto.example/token#frag", "https://sotto.example/token"},
		{"query on empty path is dropped", "https://sotto.example?a=b", "https://sotto.example/"},
		{"percent hex is upper-cased", "https://sotto.example/a%2fb", "https://sotto.example/a%2Fb"},
		{"encoded unreserved is decoded", "https://sotto.example/%74%6F%6b%65%6E", "https://sotto.example/token"},
		{"encoded tilde is decoded", "https://sotto.example/%7Euser", "https://sotto.example/~user"},
		{"encoded space stays encoded", "https://sotto.example/a%20b", "https://sotto.example/a%20b"},
		{"encoded host letter is decoded and lowered", "https://%53otto.example/", "https://sotto.example/"},
		{"single dot segment is removed", "https://sotto.example/./token", "https://sotto.example/token"},
		{"double dot segment is removed", "https://sotto.example/a/b/../token", "https://sotto.example/a/token"},
		{"double dot above root stays at root", "https://sotto.example/../../token", "https://sotto.example/token"},
		{"trailing double dot leaves a slash", "https://sotto.example/a/b/..", "https://sotto.example/a/"},
		{"encoded dot segment is removed", "https://sotto.example/a/%2E%2e/token", "https://sotto.example/token"},
		{"dots inside a segment are kept", "https://sotto.example/a..b/.c", "https://sotto.example/a..b/.c"},
		{"IPv6 host is canonical", "https://[0:0:0:0:0:0:0:1]:443/token", "https://[::1]/token"},
		{"IPv6 host with port keeps it", "http://[::1]:8080/token", "http://[::1]:8080/token"},
		{"IPv4 host is kept", "http://127.0.0.1:8080/token", "http://127.0.0.1:8080/token"},
		{"relative URI is rejected", "/token", ""},
		{"URI without scheme is rejected", "sotto.example/token", ""},
		{"other scheme is rejected", "ftp://sotto.example/token", ""},
		{"URI without authority is rejected", "https:/token", ""},
		{"empty host is rejected", "https:///token", ""},
		{"empty host with port is rejected", "https://:443/token", ""},
		{"userinfo is rejected", "https://user@sotto.example/token", ""},
		{"non-numeric port is rejected", "https://sotto.example:https/token", ""},
		{"port above 65535 is rejected", "https://sotto.example:65536/token", ""},
		{"space is rejected", "https://sotto.example/to ken", ""},
		{"non-ASCII is rejected", "https://sotto.example/tökén", ""},
		{"truncated percent-encoding is rejected", "https://sotto.example/a%2", ""},
		{"percent-encoding with non-hex is rejected", "https://sotto.example/a%zz", ""},
		{"bracket in path is rejected", "https://sotto.example/a[b]", ""},
		{"unclosed IPv6 bracket is rejected", "https://[::1/token", ""},
		{"IPv4 in brackets is rejected", "https://[127.0.0.1]/token", ""},
		{"IPv6 zone is rejected", "https://[fe80::1%25eth0]/token", ""},
		{"text after IPv6 bracket is rejected", "https://[::1]x/token", ""},
		{"empty string is rejected", "", ""},
		{"overlong URI is rejected", "https://sotto.example/" + strings.Repeat("a", 9000), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeURI(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("NormalizeURI(%q): got %q, want an error", tc.in, got)
				}
				if !strings.HasPrefix(err.Error(), "devicebind: invalid URI: ") {
					t.Errorf("NormalizeURI(%q): got error %q, want an invalid URI error", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeURI(%q): got error %v, want %q", tc.in, err, tc.want)
			}
			if got != tc.want {
				t.Errorf("NormalizeURI(%q): got %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
