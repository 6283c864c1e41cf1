package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
)

// resourceProofClaims are the claims of a DPoP proof sent to a resource
// server, which adds ath to the proof of the token request (RFC 9449,
// Section 7).
type resourceProofClaims struct {
	proofClaims
	AccessTokenHash string `json:"ath"`
}

// resourceProof signs a DPoP proof for a request to a resource server
// that carries token.
func (k *dpopKey) resourceProof(htm, htu, token, nonce string, now time.Time) (string, error) {
	sum := sha256.Sum256([]byte(token))
	claims := resourceProofClaims{
		proofClaims: proofClaims{
			ID: uuid.NewString(), Method: htm, URL: htu, IssuedAt: now.Unix(), Nonce: nonce,
		},
		AccessTokenHash: base64.RawURLEncoding.EncodeToString(sum[:]),
	}
	proof, err := jwt.Signed(k.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign DPoP proof: %w", err)
	}
	return proof, nil
}

// stepConnector creates a ticket at the example ITSM connector with the
// action token and a DPoP proof, and retries once with the connector's
// nonce when it answers use_dpop_nonce (RFC 9449, Section 9).
func stepConnector(ctx context.Context, c *client, opts options, token string, key *dpopKey) error {
	fmt.Println("\n5a. Create a ticket at the connector with the action token and a DPoP proof (RFC 9449, Section 7)")
	target := strings.TrimSuffix(opts.connector, "/") + "/tickets"
	if err := c.checkTarget(target); err != nil {
		return err
	}

	nonce := ""
	for attempt := 0; ; attempt++ {
		proof, err := key.resourceProof(http.MethodPost, target, token, nonce, time.Now())
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target,
			strings.NewReader(`{"title":"The printer on floor 3 is jammed"}`))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "DPoP "+token)
		req.Header.Set("DPoP", proof)

		resp, err := c.http.Do(req)
		if err != nil {
			return fmt.Errorf("connector: POST %s: %w", target, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("connector: read response: %w", err)
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 &&
			strings.Contains(challenge, `error="use_dpop_nonce"`) && resp.Header.Get("DPoP-Nonce") != "" {
			nonce = resp.Header.Get("DPoP-Nonce")
			detail("nonce challenge", "retrying with the DPoP-Nonce of the connector")
			continue
		}

		detail("HTTP status", fmt.Sprint(resp.StatusCode))
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("connector: POST %s returned status %d, expected 201; WWW-Authenticate: %s",
				target, resp.StatusCode, challenge)
		}
		var ticket map[string]any
		if err := json.Unmarshal(body, &ticket); err != nil {
			return fmt.Errorf("connector: the response is not JSON: %w", err)
		}
		return printJSON(ticket)
	}
}
