package main

import (
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
	idTokenLifetime   = 10 * time.Minute
)

// idTokenClaims are the claims of the corporate OpenID Connect ID token
// that the assistant presents as the subject_token.
type idTokenClaims struct {
	jwt.Claims
	Groups   []string `json:"groups,omitempty"`
	AuthTime int64    `json:"auth_time"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
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

	switch {
	case !key.Valid() || key.IsPublic():
		return key, fmt.Errorf("IdP key %s is not a private JWK", path)
	case key.Algorithm != string(jose.ES256):
		return key, fmt.Errorf("IdP key %s has alg %q, expected ES256", path, key.Algorithm)
	case key.KeyID == "":
		return key, fmt.Errorf("IdP key %s has no kid", path)
	}
	return key, nil
}

// signIDToken signs an ID token for subject with key, as the corporate IdP
// would after a login with password and one-time code at time now.
func signIDToken(key jose.JSONWebKey, subject string, groups []string, now time.Time) (string, error) {
	options := (&jose.SignerOptions{}).WithType("JWT")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, options)
	if err != nil {
		return "", fmt.Errorf("create IdP signer: %w", err)
	}

	claims := idTokenClaims{
		Claims: jwt.Claims{
			Issuer:   corporateIssuer,
			Audience: jwt.Audience{corporateAudience},
			Subject:  subject,
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(idTokenLifetime)),
			ID:       uuid.NewString(),
		},
		Groups:   groups,
		AuthTime: now.Unix(),
		ACR:      "urn:corp:acr:mfa",
		AMR:      []string{"pwd", "otp"},
	}

	token, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign ID token: %w", err)
	}
	return token, nil
}
