package devicebind

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// rfc7638Key is the RSA key of RFC 7638, Section 3.1.
const rfc7638Key = `{
	"kty": "RSA",
	"n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
	"e": "AQAB",
	"alg": "RS256",
	"kid": "2011-04-29"
}`

func TestThumbprintRFC7638Example(t *testing.T) {
	var key jose.JSONWebKey
	if err := json.Unmarshal([]byte(rfc7638Key), &key); err != nil {
		t.Fatalf("unmarshal the RFC 7638 key: %v", err)
	}

	got, err := Thumbprint(&key)
	if err != nil {
		t.Fatalf("Thumbprint: got error %v", err)
	}
	// RFC 7638, Section 3.1 gives this value for the key above.
	const want = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	if got != want {
		t.Errorf("Thumbprint: got %q, want %q", got, want)
	}
}

func TestThumbprintKeyTypes(t *testing.T) {
	k := loadKeys(t)
	tests := []struct {
		name    string
		key     *jose.JSONWebKey
		members string // the RFC 7638, Section 3.2 input; empty means an error is expected
	}{
		{"EC key hashes crv, kty, x, y", &jose.JSONWebKey{Key: k.p256.Public()},
			`{"crv":"P-256","kty":"EC","x":"` + b64(padded(k.p256.X.Bytes(), 32)) +
				`","y":"` + b64(padded(k.p256.Y.Bytes(), 32)) + `"}`},
		{"Ed25519 key hashes crv, kty, x", &jose.JSONWebKey{Key: k.ed.Public()},
			`{"crv":"Ed25519","kty":"OKP","x":"` + b64(k.ed.Public().(ed25519.PublicKey)) + `"}`},
		{"private key hashes its public half", &jose.JSONWebKey{Key: k.p256},
			`{"crv":"P-256","kty":"EC","x":"` + b64(padded(k.p256.X.Bytes(), 32)) +
				`","y":"` + b64(padded(k.p256.Y.Bytes(), 32)) + `"}`},
		{"nil key is rejected", nil, ""},
		{"empty key is rejected", &jose.JSONWebKey{}, ""},
		{"symmetric key is rejected", &jose.JSONWebKey{Key: []byte("secret")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Thumbprint(tc.key)
			if tc.members == "" {
				if err == nil {
					t.Errorf("Thumbprint: got %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Thumbprint: got error %v", err)
			}
			sum := sha256.Sum256([]byte(tc.members))
			if want := b64(sum[:]); got != want {
				t.Errorf("Thumbprint: got %q, want %q, the hash of %s", got, want, tc.members)
			}
		})
	}
}

func b64(b []byte) string {
	return base64.RawURLEncoding.EncodeToString(b)
}

// padded left-pads b with zeros to size bytes (RFC 7518, Section 6.2.1.2).
func padded(b []byte, size int) []byte {
	out := make([]byte, size)
	copy(out[size-len(b):], b)
	return out
}
