package exchange

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestCheckDevice(t *testing.T) {
	tests := []struct {
		trust, required string
		wantReason      string // empty when allowed
	}{
		{DeviceUnregistered, DeviceTrustAny, ""},
		{DeviceUnregistered, DeviceTrustRegistered, "device_trust_insufficient"},
		{DeviceTrustRegistered, DeviceTrustRegistered, ""},
		{DeviceTrustRegistered, DeviceTrustManaged, "device_trust_insufficient"},
		{DeviceTrustManaged, DeviceTrustRegistered, ""},
		{DeviceTrustManaged, DeviceTrustManaged, ""},
		{DeviceRevoked, DeviceTrustAny, "device_revoked"},
		{DeviceRevoked, DeviceTrustManaged, "device_revoked"},
	}
	for _, tc := range tests {
		t.Run(tc.trust+" for "+tc.required, func(t *testing.T) {
			e := checkDevice(tc.trust, &Action{Scope: "a:b", DeviceTrust: tc.required})
			switch {
			case tc.wantReason == "" && e != nil:
				t.Fatalf("checkDevice = %v, want allowed", e)
			case tc.wantReason != "" && e == nil:
				t.Fatalf("checkDevice allowed, want %s", tc.wantReason)
			case e != nil && (e.Code != "access_denied" || e.Reason != tc.wantReason):
				t.Errorf("checkDevice = %s/%s, want access_denied/%s", e.Code, e.Reason, tc.wantReason)
			}
		})
	}
}

func TestAttestationVerify(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := jose.JSONWebKey{Key: priv, KeyID: "mdm-1", Algorithm: "ES256", Use: "sig"}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key.Public()}})
	jwks := filepath.Join(t.TempDir(), "mdm.jwks.json")
	if err := os.WriteFile(jwks, set, 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 18, 9, 0, 0, 0, time.UTC)
	v, err := NewAttestationVerifier([]Attester{{
		Issuer: "https://mdm.example", Audience: "https://sotto.example", JWKSFile: jwks,
		Algorithms: []jose.SignatureAlgorithm{jose.ES256},
	}}, SubjectOptions{Leeway: 30 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	sign := func(signer *ecdsa.PrivateKey, typ string, edit map[string]any) string {
		claims := map[string]any{
			"iss": "https://mdm.example", "aud": []string{"https://sotto.example"},
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"cnf": map[string]any{"jkt": "device-jkt"}, "compliant": true,
		}
		for k, val := range edit {
			if val == nil {
				delete(claims, k)
			} else {
				claims[k] = val
			}
		}
		opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", "mdm-1")
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: signer}, opts)
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(claims)
		jws, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := jws.CompactSerialize()
		return out
	}

	tests := []struct {
		name      string
		token     string
		wantCheck string // empty when valid
	}{
		{"valid attestation", sign(priv, "JWT", nil), ""},
		{"garbage", "not-a-jwt", "syntax"},
		{"access token typ", sign(priv, "at+jwt", nil), "typ"},
		{"unknown issuer", sign(priv, "JWT", map[string]any{"iss": "https://other.example"}), "iss"},
		{"signed by another key", sign(other, "JWT", nil), "signature"},
		{"wrong audience", sign(priv, "JWT", map[string]any{"aud": "https://other.example"}), "aud"},
		{"missing exp", sign(priv, "JWT", map[string]any{"exp": nil}), "exp"},
		{"expired", sign(priv, "JWT", map[string]any{"exp": now.Add(-time.Second).Unix()}), "exp"},
		{"nbf in the future", sign(priv, "JWT", map[string]any{"nbf": now.Add(time.Minute).Unix()}), "nbf"},
		{"iat in the future", sign(priv, "JWT", map[string]any{"iat": now.Add(time.Minute).Unix()}), "iat"},
		{"iat within the leeway", sign(priv, "JWT", map[string]any{"iat": now.Add(20 * time.Second).Unix()}), ""},
		{"missing cnf", sign(priv, "JWT", map[string]any{"cnf": nil}), "cnf"},
		{"cnf for another key", sign(priv, "JWT", map[string]any{"cnf": map[string]any{"jkt": "other"}}), "cnf"},
		{"not compliant", sign(priv, "JWT", map[string]any{"compliant": false}), "compliant"},
		{"compliant as a string", sign(priv, "JWT", map[string]any{"compliant": "true"}), "compliant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tc.token, "device-jkt")
			if tc.wantCheck == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.JKT != "device-jkt" {
					t.Errorf("JKT = %q, want device-jkt", got.JKT)
				}
				return
			}
			var se *SubjectError
			if !errors.As(err, &se) {
				t.Fatalf("Verify error = %v, want *SubjectError", err)
			}
			if se.Check != tc.wantCheck {
				t.Errorf("Check = %q (%s), want %q", se.Check, se.Description, tc.wantCheck)
			}
		})
	}

	t.Run("HMAC algorithm is refused", func(t *testing.T) {
		_, err := NewAttestationVerifier([]Attester{{Issuer: "https://mdm.example", JWKSFile: jwks,
			Algorithms: []jose.SignatureAlgorithm{jose.HS256}}}, SubjectOptions{})
		if err == nil {
			t.Error("NewAttestationVerifier accepted HS256")
		}
	})
}
