package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
)

// sessionScope is the reserved scope that requests a Sotto session.
const sessionScope = "sotto:session"

// stepSession exchanges the ID token for a session, refreshes it once,
// and returns the new session access token and refresh token.
func stepSession(ctx context.Context, c *client, opts options, idToken string, key *dpopKey) (string, string, error) {
	fmt.Println("\n3a. Start a session: exchange the ID token with scope sotto:session and a fresh DPoP proof")
	session, status, err := c.exchange(ctx, key, url.Values{
		"grant_type":         {tokenExchangeGrant},
		"client_id":          {opts.clientID},
		"subject_token":      {idToken},
		"subject_token_type": {idTokenType},
		"scope":              {sessionScope},
	})
	if err != nil {
		return "", "", fmt.Errorf("session request: %w", err)
	}
	detail("HTTP status", fmt.Sprint(status))
	detail("expires_in", fmt.Sprintf("%d s", session.ExpiresIn))
	detail("session access token", prefix(session.AccessToken))
	detail("refresh_token", prefix(session.RefreshToken))
	if session.AccessToken == "" || session.RefreshToken == "" {
		return "", "", errors.New("session request: the response lacks access_token or refresh_token")
	}

	fmt.Println("\n3b. Refresh the session (RFC 6749, Section 6) with a proof from the same key")
	refreshed, status, err := c.exchange(ctx, key, url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {opts.clientID},
		"refresh_token": {session.RefreshToken},
	})
	if err != nil {
		return "", "", fmt.Errorf("refresh: %w", err)
	}
	detail("HTTP status", fmt.Sprint(status))
	detail("session access token", prefix(refreshed.AccessToken))
	detail("refresh_token", prefix(refreshed.RefreshToken)+" (the previous one is spent)")
	return refreshed.AccessToken, refreshed.RefreshToken, nil
}
