package devicebind

import (
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func BenchmarkVerify(b *testing.B) {
	k := loadKeys(b)
	for _, spec := range []proofSpec{
		{alg: "ES256", key: k.p256},
		{alg: "EdDSA", key: k.ed},
		{alg: "RS256", key: k.rsa2048},
	} {
		b.Run(spec.alg, func(b *testing.B) {
			v := testVerifier()
			req := validRequest(signProof(b, spec))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(req); err != nil {
					b.Fatalf("Verify: %v", err)
				}
			}
		})
	}
}

func BenchmarkThumbprint(b *testing.B) {
	k := loadKeys(b)
	key := &jose.JSONWebKey{Key: k.p256.Public()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Thumbprint(key); err != nil {
			b.Fatalf("Thumbprint: %v", err)
		}
	}
}

func BenchmarkNormalizeURI(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NormalizeURI("HTTPS://Sotto.example:443/a/../token?x=1"); err != nil {
			b.Fatalf("NormalizeURI: %v", err)
		}
	}
}
