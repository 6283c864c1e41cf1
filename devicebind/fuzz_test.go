package devicebind

import (
	"errors"
	"strings"
	"testing"
)

func FuzzVerify(f *testing.F) {
	k := loadKeys(f)
	for _, spec := range []proofSpec{
		{alg: "ES256", key: k.p256},
		{alg: "ES384", key: k.p384},
		{alg: "EdDSA", key: k.ed},
		{alg: "RS256", key: k.rsa2048},
		{alg: "PS256", key: k.rsa2048},
		{alg: "none", key: k.p256},
		{alg: "ES256", key: k.p256, header: map[string]any{"crit": []string{"b64"}, "b64": false}},
		{alg: "ES256", key: k.p256, jwk: map[string]any{"d": "AAAA"}},
	} {
		f.Add(signProof(f, spec))
	}
	f.Add("")
	f.Add("..")
	f.Add("e30.e30.")
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.AAAA")

	v := testVerifier()
	f.Fuzz(func(t *testing.T, header string) {
		proof, err := v.Verify(Request{Headers: []string{header}, Method: "POST", URI: testURI})
		if err != nil {
			var verr *Error
			if !errors.As(err, &verr) {
				t.Fatalf("Verify: got error %v of type %T, want an *Error", err, err)
			}
			if verr.Check == "" || verr.Description == "" {
				t.Fatalf("Verify: got error %+v, want a check and a description", verr)
			}
			return
		}
		if proof.JKT == "" {
			t.Fatalf("Verify: accepted a proof with an empty JKT")
		}
		if !proof.Key.IsPublic() {
			t.Fatalf("Verify: accepted a proof whose key is not public")
		}
	})
}

func FuzzNormalizeURI(f *testing.F) {
	for _, seed := range []string{
		"https://sotto.example/token",
		"HTTP://Sotto.Example:80/a/./b/../c?q#f",
		"https://[::1]:443/%7e%2f",
		"https://%53otto.example:/a/%2E%2E/%2e/",
		"http://a/b/c/./../../g",
		"https:x",
		"",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		got, err := NormalizeURI(raw)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "http://") && !strings.HasPrefix(got, "https://") {
			t.Fatalf("NormalizeURI(%q) = %q, want an http or https URI", raw, got)
		}
		if strings.ContainsAny(got, "?#") {
			t.Fatalf("NormalizeURI(%q) = %q, want no query or fragment", raw, got)
		}
		again, err := NormalizeURI(got)
		if err != nil {
			t.Fatalf("NormalizeURI(%q) = %q, which fails to normalize again: %v", raw, got, err)
		}
		if again != got {
			t.Fatalf("NormalizeURI is not idempotent: %q gives %q, then %q", raw, got, again)
		}
	})
}
