package devicebind

import (
	"errors"
	"testing"
)

func TestVerifyAcceptNonce(t *testing.T) {
	k := loadKeys(t)
	es256 := func(claims map[string]any) proofSpec { return proofSpec{alg: "ES256", key: k.p256, claims: claims} }
	accept := func(n string) bool { return n == "current" || n == "previous" }
	tests := []struct {
		name      string
		claims    map[string]any
		wantCheck string // empty when the proof passes
	}{
		{"current nonce passes", map[string]any{"nonce": "current"}, ""},
		{"previous nonce passes", map[string]any{"nonce": "previous"}, ""},
		{"stale nonce fails the nonce check", map[string]any{"nonce": "older"}, "nonce"},
		{"missing nonce fails the nonce check", nil, "nonce"},
		{"wrong htu fails before the nonce", map[string]any{"htu": "https://elsewhere.example/token"}, "htu"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := validRequest(signProof(t, es256(tc.claims)))
			req.AcceptNonce = accept
			_, err := testVerifier().Verify(req)
			if tc.wantCheck == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Verify error = %v, want *Error", err)
			}
			if e.Check != tc.wantCheck {
				t.Errorf("Check = %q, want %q", e.Check, tc.wantCheck)
			}
		})
	}
}

func TestVerifyWithoutAcceptNonceIgnoresNonce(t *testing.T) {
	k := loadKeys(t)
	spec := proofSpec{alg: "ES256", key: k.p256, claims: map[string]any{"nonce": "anything"}}
	req := validRequest(signProof(t, spec))
	if _, err := testVerifier().Verify(req); err != nil {
		t.Fatalf("Verify without a nonce requirement: %v", err)
	}
}
