package authz_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/devicebind"
	"github.com/sotto-auth/sotto/exchange"
)

// BenchmarkExchangeHTTP runs whole token exchanges over loopback HTTP
// against a server on SQLite, proofs signed before the timer starts.
// Compare it with BenchmarkCryptoFloor from the same run.
func BenchmarkExchangeHTTP(b *testing.B) {
	t := &testing.T{}
	ts := newTestServer(t, "", "")
	b.Cleanup(ts.stop)
	dev := newDevice(t)
	subject := ts.idToken(nil)
	form := ts.exchangeForm(subject).Encode()
	proofs := make(chan string, b.N)
	for range b.N {
		proofs <- dev.proof("POST", ts.issuer+authz.PathToken, nil)
	}
	close(proofs)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	b.SetParallelism(8) // 16 concurrent clients on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, ts.issuer+authz.PathToken, strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("DPoP", <-proofs)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body) // drained, so the connection is reused
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkCryptoFloor measures the work no exchange can skip: verify the
// subject token (uncached), verify the DPoP proof, sign the action token.
func BenchmarkCryptoFloor(b *testing.B) {
	t := &testing.T{}
	ts := newTestServer(t, "", "")
	b.Cleanup(ts.stop)
	dev := newDevice(t)
	subjects, err := exchange.NewSubjectVerifier([]exchange.TrustedIssuer{{
		Issuer: "https://sso.corp.example", Audience: "sotto", SubjectPrefix: "sso.corp.example",
		JWKSFile: ts.dir + "/idp.jwks.json", Algorithms: []jose.SignatureAlgorithm{jose.ES256},
	}}, exchange.SubjectOptions{CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	verifier := &devicebind.Verifier{}
	keys := newKeyring(b, ts)
	subject := ts.idToken(nil)
	tokenURL := ts.issuer + authz.PathToken
	proofs := make(chan string, b.N)
	for range b.N {
		proofs <- dev.proof("POST", tokenURL, nil)
	}
	close(proofs)
	payload := []byte(`{"iss":"x","sub":"y","aud":"z","exp":1,"iat":1,"jti":"abc","scope":"ticket:create","cnf":{"jkt":"k"}}`)

	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := subjects.Verify(context.Background(), subject); err != nil {
				b.Error(err)
				return
			}
			if _, err := verifier.Verify(devicebind.Request{Headers: []string{<-proofs}, Method: "POST", URI: tokenURL}); err != nil {
				b.Error(err)
				return
			}
			if _, err := keys.SignAccessToken(payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSignAccessToken measures signing one action token.
func BenchmarkSignAccessToken(b *testing.B) {
	ts := newTestServer(&testing.T{}, "", "")
	b.Cleanup(ts.stop)
	keys := newKeyring(b, ts)
	payload := []byte(`{"iss":"x","sub":"y","aud":"z","exp":1,"iat":1,"jti":"abc","scope":"ticket:create","cnf":{"jkt":"k"}}`)
	b.ResetTimer()
	for b.Loop() {
		if _, err := keys.SignAccessToken(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func newKeyring(b *testing.B, ts *testServer) *authz.Keyring {
	b.Helper()
	kek, _, err := authz.LoadKEK("", ts.dir+"/sotto.kek")
	if err != nil {
		b.Fatal(err)
	}
	keys, err := authz.NewKeyring(context.Background(), ts.store, kek, authz.KeyringOptions{Algorithm: "ES256", Retention: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	return keys
}
