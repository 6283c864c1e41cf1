package exchange

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// subjectChecks are the documented values of SubjectError.Check.
var subjectChecks = []string{
	"syntax", "size", "typ", "alg", "iss", "kid", "signature",
	"aud", "exp", "nbf", "iat", "sub", "jwks",
}

func FuzzSubjectVerify(f *testing.F) {
	fx := newFixture(f, SubjectOptions{CacheSize: 64})
	a := baseClaims(issuerA)

	valid := signToken(f, fx.keyA, false, map[jose.HeaderKey]any{"typ": "JWT"},
		with(with(a, "groups", []string{"sre"}), "amr", []string{"pwd"}))
	parts := strings.Split(valid, ".")
	seeds := []string{
		valid,
		signToken(f, fx.keyA, true, nil, a),
		signToken(f, fx.keyB, false, nil, with(baseClaims(issuerB), "roles", "approver")),
		signToken(f, fx.keyA, false, map[jose.HeaderKey]any{"typ": "at+jwt"}, a),
		signToken(f, fx.keyA, false, nil, with(a, "exp", 1e300)),
		signToken(f, fx.keyA, false, nil, with(a, "aud", []any{nil, 1})),
		unsignedToken(map[string]any{"alg": "none"}, a, nil),
		unsignedToken(map[string]any{"alg": "ES256", "crit": []string{"exp"}}, a, []byte("sig")),
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		"..",
		"a.b.c.d.e",
		`{"payload":"e30","signatures":[]}`,
		"",
	}
	for _, seed := range seeds {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, token string) {
		s, err := fx.verifier.Verify(context.Background(), token)
		if err != nil {
			var se *SubjectError
			if !errors.As(err, &se) {
				t.Fatalf("Verify error %v is not a *SubjectError", err)
			}
			if !slices.Contains(subjectChecks, se.Check) {
				t.Errorf("check %q is not a documented check", se.Check)
			}
			if se.Description == "" {
				t.Errorf("check %q has no description", se.Check)
			}
			if s != nil {
				t.Errorf("Verify returned a subject with error %v", err)
			}
			return
		}
		if s == nil {
			t.Fatal("Verify returned neither a subject nor an error")
		}
		if s.Subject == "" || !strings.HasSuffix(s.ID, "|"+s.Subject) {
			t.Errorf("subject %q has ID %q, want prefix|sub", s.Subject, s.ID)
		}
		if !s.ExpiresAt.After(fx.clock.Now()) {
			t.Errorf("accepted a token that expired at %v", s.ExpiresAt)
		}
	})
}
