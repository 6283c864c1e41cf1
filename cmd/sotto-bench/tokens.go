package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
)

// The demonstration corporate IdP that examples/sotto.yaml trusts.
const (
	corporateIssuer   = "https://sso.corp.example"
	corporateAudience = "sotto"
	subjectLifetime   = 10 * time.Minute
)

// subjectClaims are the claims of a corporate OpenID Connect ID token.
type subjectClaims struct {
	jwt.Claims
	Groups   []string `json:"groups,omitempty"`
	AuthTime int64    `json:"auth_time"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
}

// proofClaims are the claims of a DPoP proof (RFC 9449, Section 4.2).
type proofClaims struct {
	ID       string `json:"jti"`
	Method   string `json:"htm"`
	URL      string `json:"htu"`
	IssuedAt int64  `json:"iat"`
}

// subjectSigner signs corporate ID tokens as the demonstration IdP.
type subjectSigner struct {
	signer  jose.Signer
	private jose.JSONWebKey
	public  jose.JSONWebKey
	groups  []string
}

// proofSigner signs DPoP proofs with one ES256 key, embedding its public
// JWK in each proof header. One worker owns one proofSigner.
type proofSigner struct {
	signer     jose.Signer
	thumbprint string
}

// loadIdPKey reads the private ES256 JWK of the demonstration IdP from path.
func loadIdPKey(path string) (jose.JSONWebKey, error) {
	var key jose.JSONWebKey

	data, err := os.ReadFile(path)
	if err != nil {
		return key, fmt.Errorf("read IdP key (run from the repository root or set -idp-key): %w", err)
	}
	if err := json.Unmarshal(data, &key); err != nil {
		return key, fmt.Errorf("parse IdP key %s: %w", path, err)
	}
	if !key.Valid() || key.IsPublic() || key.Algorithm != string(jose.ES256) || key.KeyID == "" {
		return key, fmt.Errorf("IdP key %s must be a private ES256 JWK with a kid", path)
	}
	return key, nil
}

// generateIdPKey creates a throwaway ES256 IdP key, for the crypto floor,
// which needs no key that a server trusts.
func generateIdPKey() (jose.JSONWebKey, error) {
	private, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("generate IdP key: %w", err)
	}
	return jose.JSONWebKey{Key: private, KeyID: "floor", Algorithm: string(jose.ES256)}, nil
}

func newSubjectSigner(key jose.JSONWebKey, groups []string) (*subjectSigner, error) {
	options := (&jose.SignerOptions{}).WithType("JWT")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, options)
	if err != nil {
		return nil, fmt.Errorf("create IdP signer: %w", err)
	}
	return &subjectSigner{signer: signer, private: key, public: key.Public(), groups: groups}, nil
}

// clone returns a signer with the same key for another goroutine, because
// go-jose does not document its signers as safe for concurrent use.
func (s *subjectSigner) clone() (*subjectSigner, error) {
	return newSubjectSigner(s.private, s.groups)
}

// sign returns an ID token for subject, valid for subjectLifetime from now.
func (s *subjectSigner) sign(subject string, now time.Time) (string, error) {
	claims := subjectClaims{
		Claims: jwt.Claims{
			Issuer:   corporateIssuer,
			Audience: jwt.Audience{corporateAudience},
			Subject:  subject,
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(subjectLifetime)),
			ID:       uuid.NewString(),
		},
		Groups:   s.groups,
		AuthTime: now.Unix(),
		ACR:      "urn:corp:acr:mfa",
		AMR:      []string{"pwd", "otp"},
	}
	return signCompact(s.signer, claims)
}

func newProofSigner() (*proofSigner, error) {
	private, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate DPoP key: %w", err)
	}

	public := jose.JSONWebKey{Key: &private.PublicKey, Algorithm: string(jose.ES256)}
	sum, err := public.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("compute JWK thumbprint: %w", err)
	}

	options := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: private}, options)
	if err != nil {
		return nil, fmt.Errorf("create DPoP signer: %w", err)
	}
	return &proofSigner{signer: signer, thumbprint: base64.RawURLEncoding.EncodeToString(sum)}, nil
}

// sign returns a DPoP proof for a POST to htu with a random jti.
func (p *proofSigner) sign(htu string, issuedAt time.Time) (string, error) {
	claims := proofClaims{
		ID:       uuid.NewString(),
		Method:   "POST",
		URL:      htu,
		IssuedAt: issuedAt.Unix(),
	}
	return signCompact(p.signer, claims)
}

// signCompact signs the JSON form of claims with the signer directly,
// which costs less client CPU than the jwt builder.
func signCompact(signer jose.Signer, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	return jws.CompactSerialize()
}
