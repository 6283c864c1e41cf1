package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
)

// floorResult is the crypto floor: how often this machine does the
// signature work that every exchange needs, with no server and no I/O.
type floorResult struct {
	Workers          int     `json:"workers"`
	Seconds          float64 `json:"seconds"`
	Exchanges        int64   `json:"exchanges"`
	PerSecond        float64 `json:"exchanges_per_second"`
	SubjectVerifyUS  float64 `json:"subject_verify_us"`
	ProofVerifyUS    float64 `json:"proof_verify_us"`
	TokenSignUS      float64 `json:"token_sign_us"`
	CachedSubjectEst float64 `json:"cached_subject_per_second_estimate"`
}

// floorInputs are the fixed inputs of the floor loop. Reusing one proof is
// fine here because nothing checks replay.
type floorInputs struct {
	subject     string
	subjectKey  jose.JSONWebKey
	proof       string
	proofHTU    string
	tokenSigner jose.Signer
}

// floorCounts are one worker's totals.
type floorCounts struct {
	exchanges                     int64
	subjectTime, proofTime, signs time.Duration
}

// measureFloor runs the floor loop on workers goroutines for duration.
// Each iteration verifies an ES256 subject token (parse, signature and
// claims) and verifies a DPoP proof with its embedded jwk, then computes
// the RFC 7638 thumbprint and signs an ES256 access token with the jwt
// builder. A server can skip only the first part, by caching subjects.
func measureFloor(duration time.Duration, workers int) (*floorResult, error) {
	in, err := newFloorInputs()
	if err != nil {
		return nil, err
	}
	if _, err := floorExchange(in, time.Now()); err != nil {
		return nil, fmt.Errorf("crypto floor self-check: %w", err)
	}

	counts := make([]floorCounts, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(duration)
	for w := range workers {
		wg.Go(func() { counts[w], errs[w] = runFloorWorker(in, deadline) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("crypto floor: %w", err)
	}

	var total floorCounts
	for _, c := range counts {
		total.exchanges += c.exchanges
		total.subjectTime += c.subjectTime
		total.proofTime += c.proofTime
		total.signs += c.signs
	}
	if total.exchanges == 0 {
		return nil, errors.New("crypto floor completed no iteration")
	}

	n := float64(total.exchanges)
	result := &floorResult{
		Workers:         workers,
		Seconds:         elapsed.Seconds(),
		Exchanges:       total.exchanges,
		PerSecond:       n / elapsed.Seconds(),
		SubjectVerifyUS: float64(total.subjectTime.Microseconds()) / n,
		ProofVerifyUS:   float64(total.proofTime.Microseconds()) / n,
		TokenSignUS:     float64(total.signs.Microseconds()) / n,
	}
	// Derived, not measured: the same workers without the subject check,
	// the best case of a server that caches verified subject tokens.
	cachedUS := result.ProofVerifyUS + result.TokenSignUS
	result.CachedSubjectEst = float64(workers) * 1e6 / cachedUS
	return result, nil
}

func runFloorWorker(in *floorInputs, deadline time.Time) (floorCounts, error) {
	var c floorCounts
	for {
		t0 := time.Now()
		if !t0.Before(deadline) {
			return c, nil
		}
		times, err := floorExchange(in, t0)
		if err != nil {
			return c, err
		}
		c.exchanges++
		c.subjectTime += times[0]
		c.proofTime += times[1]
		c.signs += times[2]
	}
}

// floorExchange does one exchange's crypto and returns the time of each
// of its three parts.
func floorExchange(in *floorInputs, now time.Time) ([3]time.Duration, error) {
	var times [3]time.Duration
	t0 := time.Now()

	subject, err := jwt.ParseSigned(in.subject, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return times, err
	}
	var claims subjectClaims
	if err := subject.Claims(&in.subjectKey, &claims); err != nil {
		return times, err
	}
	expected := jwt.Expected{Issuer: corporateIssuer, AnyAudience: jwt.Audience{corporateAudience}}
	if err := claims.Validate(expected.WithTime(now)); err != nil {
		return times, err
	}
	t1 := time.Now()

	jkt, err := verifyProof(in.proof, in.proofHTU)
	if err != nil {
		return times, err
	}
	t2 := time.Now()

	_, err = jwt.Signed(in.tokenSigner).Claims(accessTokenClaims(claims.Subject, jkt, now)).Serialize()
	if err != nil {
		return times, err
	}
	t3 := time.Now()

	times[0], times[1], times[2] = t1.Sub(t0), t2.Sub(t1), t3.Sub(t2)
	return times, nil
}

// verifyProof does the CPU work of the DPoP proof checks of RFC 9449,
// Section 4.3: typ, the signature with the embedded public jwk, htm and
// htu. It returns the RFC 7638 thumbprint of that jwk. The iat and
// replay checks are left out because they cost the server storage, not
// crypto.
func verifyProof(proof, htu string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, err
	}
	header := jws.Signatures[0].Protected
	if header.ExtraHeaders[jose.HeaderType] != "dpop+jwt" {
		return nil, errors.New("proof typ is not dpop+jwt")
	}
	if header.JSONWebKey == nil || !header.JSONWebKey.IsPublic() {
		return nil, errors.New("proof has no public jwk")
	}

	payload, err := jws.Verify(header.JSONWebKey)
	if err != nil {
		return nil, err
	}
	var claims proofClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	if claims.Method != "POST" || claims.URL != htu || claims.ID == "" {
		return nil, errors.New("proof claims do not match the request")
	}
	return header.JSONWebKey.Thumbprint(crypto.SHA256)
}

// accessTokenClaims builds claims shaped like an RFC 9068 action token.
func accessTokenClaims(subject string, jkt []byte, now time.Time) map[string]any {
	return map[string]any{
		"iss":       "http://127.0.0.1:8080",
		"sub":       corporateIssuer + "|" + subject,
		"aud":       "https://itsm.corp.example",
		"exp":       now.Add(5 * time.Minute).Unix(),
		"iat":       now.Unix(),
		"jti":       uuid.NewString(),
		"client_id": "voice-assistant",
		"scope":     "ticket:create",
		"cnf":       map[string]string{"jkt": base64.RawURLEncoding.EncodeToString(jkt)},
		"acr":       "urn:corp:acr:mfa",
		"auth_time": now.Unix(),
	}
}

func newFloorInputs() (*floorInputs, error) {
	idpKey, err := generateIdPKey()
	if err != nil {
		return nil, err
	}
	subjects, err := newSubjectSigner(idpKey, []string{"employees"})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	subject, err := subjects.sign("floor-user", now)
	if err != nil {
		return nil, err
	}

	proofs, err := newProofSigner()
	if err != nil {
		return nil, err
	}
	const htu = "http://127.0.0.1:8080/oauth2/token"
	proof, err := proofs.sign(htu, now)
	if err != nil {
		return nil, err
	}

	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate access token key: %w", err)
	}
	signingKey := jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: serverKey, KeyID: "floor"}}
	tokenSigner, err := jose.NewSigner(signingKey, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return nil, fmt.Errorf("create access token signer: %w", err)
	}

	return &floorInputs{
		subject:     subject,
		subjectKey:  subjects.public,
		proof:       proof,
		proofHTU:    htu,
		tokenSigner: tokenSigner,
	}, nil
}
