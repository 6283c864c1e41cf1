package connector

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseCredentials checks that any Authorization and DPoP header pair
// is either accepted as one token68 token and one compact JWS, or rejected
// with an Error whose description fits RFC 6749, Section 5.2.
func FuzzParseCredentials(f *testing.F) {
	f.Add("DPoP abc.def.ghi", "aaa.bbb.ccc", false)
	f.Add("Bearer abc", "", false)
	f.Add("dpop  a+/b==", "a.b.c,d.e.f", true)
	f.Add("DPoP", "a.b", false)
	f.Add("Basic dXNlcjpwYXNz", "\"x\\", false)
	f.Fuzz(func(t *testing.T, authorization, proof string, twoProofs bool) {
		dpop := []string{proof}
		if twoProofs {
			dpop = append(dpop, proof)
		}
		token, gotProof, err := parseCredentials([]string{authorization}, dpop)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			for i := 0; i < len(e.Description); i++ {
				if !allowedDescriptionByte(e.Description[i]) {
					t.Fatalf("description %q has byte %#x", e.Description, e.Description[i])
				}
			}
			return
		}
		if !isToken68(token) || len(token) > maxTokenBytes {
			t.Fatalf("accepted token %q is not token68 within the limit", token)
		}
		if twoProofs || strings.Count(gotProof, ".") != 2 || strings.ContainsAny(gotProof, ", ") {
			t.Fatalf("accepted proof %q from %d DPoP headers", gotProof, len(dpop))
		}
	})
}
