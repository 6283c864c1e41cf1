package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
)

// dpopProofType is the JWS "typ" of a DPoP proof (RFC 9449, Section 4.2).
const dpopProofType = "dpop+jwt"

// dpopKey is the device key that the assistant proves possession of.
// It lives only in memory, as an ephemeral key for one run.
type dpopKey struct {
	public     jose.JSONWebKey
	thumbprint string
	signer     jose.Signer
}

// proofClaims are the claims of a DPoP proof (RFC 9449, Section 4.2).
type proofClaims struct {
	ID       string `json:"jti"`
	Method   string `json:"htm"`
	URL      string `json:"htu"`
	IssuedAt int64  `json:"iat"`
	Nonce    string `json:"nonce,omitempty"`
}

// newDPoPKey generates an ES256 key pair and a signer that embeds the
// public key as the "jwk" header of every proof.
func newDPoPKey() (*dpopKey, error) {
	private, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate DPoP key: %w", err)
	}

	public := jose.JSONWebKey{Key: &private.PublicKey, Algorithm: string(jose.ES256)}
	thumbprint, err := jwkThumbprint(public)
	if err != nil {
		return nil, err
	}

	options := (&jose.SignerOptions{EmbedJWK: true}).WithType(dpopProofType)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: private}, options)
	if err != nil {
		return nil, fmt.Errorf("create DPoP signer: %w", err)
	}

	return &dpopKey{public: public, thumbprint: thumbprint, signer: signer}, nil
}

// jwkThumbprint returns the RFC 7638 SHA-256 thumbprint of key, base64url
// encoded without padding, which is the form of "cnf.jkt" (RFC 9449, Section 6.1).
func jwkThumbprint(key jose.JSONWebKey) (string, error) {
	sum, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("compute JWK thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// proof signs a DPoP proof for one request. htu is the target URL without
// query and fragment; nonce is empty unless the server sent a DPoP-Nonce.
func (k *dpopKey) proof(htm, htu, nonce string, now time.Time) (string, error) {
	claims := proofClaims{
		ID:       uuid.NewString(),
		Method:   htm,
		URL:      htu,
		IssuedAt: now.Unix(),
		Nonce:    nonce,
	}

	proof, err := jwt.Signed(k.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign DPoP proof: %w", err)
	}
	return proof, nil
}
