package exchange

import (
	"context"
	"encoding/json"

	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MaxAttestationSize bounds the device attestation JWTs Verify parses.
const MaxAttestationSize = 16 << 10

// Attester is a device management service whose attestation JWTs can make
// a device managed.
type Attester struct {
	// Issuer is compared as an exact string with the iss claim.
	Issuer string
	// Audience is the aud the attestation must contain, usually Sotto's
	// issuer URL.
	Audience string
	// JWKSFile or JWKSURI locates the attester's public keys; exactly one
	// is set.
	JWKSFile string
	JWKSURI  string
	// Algorithms are the accepted JWS algorithms, all asymmetric.
	Algorithms []jose.SignatureAlgorithm
}

// Attestation is the content of a verified device attestation.
type Attestation struct {
	Issuer string
	// Subject is the attester's identifier of the device, if it sent one.
	Subject   string
	JKT       string
	ExpiresAt time.Time
}

// AttestationVerifier verifies device attestation JWTs. It is safe for
// concurrent use.
type AttestationVerifier struct {
	attesters map[string]*attester
	algs      []jose.SignatureAlgorithm
	leeway    time.Duration
	now       func() time.Time
}

type attester struct {
	Attester
	keys *keySet
}

// NewAttestationVerifier loads the keys of every attester. Options has the
// same meaning as for NewSubjectVerifier.
func NewAttestationVerifier(attesters []Attester, opts SubjectOptions) (*AttestationVerifier, error) {
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	v := &AttestationVerifier{attesters: map[string]*attester{}, leeway: opts.Leeway, now: opts.Now}
	for _, a := range attesters {
		for _, alg := range a.Algorithms {
			// RFC 8725 §3.1 and §3.2: only asymmetric algorithms, chosen
			// by the verifier.
			if !slices.Contains(asymmetricAlgorithms, alg) {
				return nil, fmt.Errorf("attester %s: algorithm %s is not allowed: use one of %v", a.Issuer, alg, asymmetricAlgorithms)
			}
			if !slices.Contains(v.algs, alg) {
				v.algs = append(v.algs, alg)
			}
		}
		ti, err := newTrustedIssuer(TrustedIssuer{
			Issuer: a.Issuer, Audience: a.Audience, JWKSFile: a.JWKSFile, JWKSURI: a.JWKSURI,
			Algorithms: a.Algorithms, SubjectPrefix: "attester",
		}, opts)
		if err != nil {
			return nil, fmt.Errorf("attester %s: %w", a.Issuer, err)
		}
		v.attesters[a.Issuer] = &attester{Attester: a, keys: ti.keys}
	}
	return v, nil
}

// Len returns the number of configured attesters.
func (v *AttestationVerifier) Len() int {
	if v == nil {
		return 0
	}
	return len(v.attesters)
}

// Verify checks a device attestation JWT for the device key jkt, in this
// order: size and syntax, typ, iss, alg, signature, aud, exp, nbf, iat,
// cnf.jkt, compliant. A failed check returns a *SubjectError whose Check
// names it.
func (v *AttestationVerifier) Verify(ctx context.Context, token, jkt string) (*Attestation, error) {
	if v == nil || len(v.attesters) == 0 {
		return nil, rejectf("iss", "this server trusts no device attester: omit the attestation, or ask an administrator to configure device_attesters")
	}
	if len(token) > MaxAttestationSize {
		return nil, rejectf("size", "the attestation is %d bytes, more than the %d-byte limit", len(token), MaxAttestationSize)
	}
	// RFC 8725 §3.1: the allowlist rejects none and HMAC before any key
	// is chosen.
	parsed, err := jwt.ParseSigned(token, v.algs)
	if err != nil {
		return nil, rejectf("syntax", "the attestation is not a compact JWS signed with one of %v", v.algs)
	}
	if len(parsed.Headers) != 1 {
		return nil, rejectf("syntax", "the attestation has %d signatures, expected exactly one", len(parsed.Headers))
	}
	header := parsed.Headers[0]
	// RFC 8725 §3.11: an access token or a DPoP proof is never an
	// attestation, even when an attester's key signed it.
	if typ, _ := header.ExtraHeaders[jose.HeaderType].(string); strings.Contains(strings.ToLower(typ), "at+jwt") ||
		strings.Contains(strings.ToLower(typ), "dpop+jwt") {
		return nil, rejectf("typ", "typ %s marks another kind of JWT: send the attestation of the device management service", safeQuote(typ))
	}

	var unverified map[string]json.RawMessage
	if err := parsed.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, rejectf("syntax", "the attestation payload is not a JSON object")
	}
	iss, _ := claimString(unverified, "iss")
	a, ok := v.attesters[iss]
	if !ok {
		return nil, rejectf("iss", "the attestation issuer %s is not a configured device attester", safeQuote(iss))
	}
	alg := jose.SignatureAlgorithm(header.Algorithm)
	if !slices.Contains(a.Algorithms, alg) {
		return nil, rejectf("alg", "alg %s is not accepted from attester %s, which signs with %v", safeQuote(header.Algorithm), a.Issuer, a.Algorithms)
	}

	// RFC 7515 §5.2 and RFC 8725 §3.10: only the attester's own keys,
	// chosen by kid, never keys embedded in the token.
	keys, err := a.keys.candidates(ctx, header.KeyID, alg)
	if err != nil {
		return nil, err
	}
	var claims map[string]json.RawMessage
	verified := false
	for _, key := range keys {
		if err := parsed.Claims(key.Key, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, rejectf("signature", "the attestation signature does not verify with any %s key of attester %s", alg, a.Issuer)
	}
	return v.checkClaims(claims, a, jkt)
}

func (v *AttestationVerifier) checkClaims(claims map[string]json.RawMessage, a *attester, jkt string) (*Attestation, error) {
	now := v.now()
	// RFC 7519 §4.1.1: iss, checked again on the verified claims.
	if iss, _ := claimString(claims, "iss"); iss != a.Issuer {
		return nil, rejectf("iss", "the verified iss does not match attester %s", a.Issuer)
	}
	// RFC 7519 §4.1.3: aud, a string or an array, contains this server.
	var aud []string
	switch value, _ := claimValue(claims, "aud"); value := value.(type) {
	case string:
		aud = []string{value}
	case []any:
		for _, item := range value {
			if s, ok := item.(string); ok {
				aud = append(aud, s)
			}
		}
	}
	if !slices.Contains(aud, a.Audience) {
		return nil, rejectf("aud", "the attestation aud does not contain %s: request an attestation for this server", a.Audience)
	}
	// RFC 7519 §4.1.4: exp is required here, with no leeway, so an
	// attestation cannot be used after the attester stopped vouching.
	exp, present, err := claimNumericDate(claims, "exp")
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, rejectf("exp", "the attestation has no exp: attestations must expire")
	}
	if !now.Before(exp) {
		return nil, rejectf("exp", "the attestation expired at %s: request a fresh one from device management", exp.UTC().Format(time.RFC3339))
	}
	// RFC 7519 §4.1.5 and §4.1.6: nbf and iat not in the future beyond
	// the leeway.
	for _, name := range []string{"nbf", "iat"} {
		t, present, err := claimNumericDate(claims, name)
		if err != nil {
			return nil, err
		}
		if present && t.After(now.Add(v.leeway)) {
			return nil, rejectf(name, "the attestation %s is %s ahead of this server's clock", name, t.Sub(now).Round(time.Second))
		}
	}
	// RFC 7800 §3.1 and RFC 9449 §6.1: cnf.jkt names the device key.
	var cnf struct {
		JKT string `json:"jkt"`
	}
	if raw, ok := claims["cnf"]; !ok || json.Unmarshal(raw, &cnf) != nil || cnf.JKT == "" {
		return nil, rejectf("cnf", "the attestation has no cnf.jkt naming the device key thumbprint")
	}
	if cnf.JKT != jkt {
		return nil, rejectf("cnf", "the attestation cnf.jkt names another key than the one that signed the DPoP proof")
	}
	// The compliance claim: device management vouches that the device
	// meets its policy now. Anything but the JSON value true refuses.
	if value, _ := claimValue(claims, "compliant"); value != true {
		return nil, rejectf("compliant", "the attestation does not state compliant: true; bring the device into compliance and request a new attestation")
	}
	sub, _ := claimString(claims, "sub")
	return &Attestation{Issuer: a.Issuer, Subject: sub, JKT: cnf.JKT, ExpiresAt: exp}, nil
}

// safeQuote returns s in single quotes for an error description, with the
// characters RFC 6749 §5.2 forbids there replaced by '?' and cut to 64
// bytes.
func safeQuote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b[i] = '?'
		}
	}
	return "'" + string(b) + "'"
}
