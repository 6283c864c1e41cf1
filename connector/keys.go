package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// maxDocumentBytes bounds a metadata, JWKS or introspection response.
const maxDocumentBytes = 1 << 20

// metadata holds the members of the authorization server metadata
// (RFC 8414, Section 2) that the connector uses.
type metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// metadataURL returns the well-known URI of RFC 8414, Section 3.1: the
// well-known segment goes between the host and any path of the issuer.
func metadataURL(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("connector: issuer %q is not an absolute http or https URL", issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		// RFC 8414, Section 2: the issuer has no query or fragment.
		return "", fmt.Errorf("connector: issuer %q must have no query or fragment", issuer)
	}
	u.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

func fetchMetadata(ctx context.Context, client *http.Client, issuer string) (*metadata, error) {
	address, err := metadataURL(issuer)
	if err != nil {
		return nil, err
	}
	var md metadata
	if err := getJSON(ctx, client, address, &md); err != nil {
		return nil, fmt.Errorf("connector: read issuer metadata: %w", err)
	}
	// RFC 8414, Section 3.3: the issuer in the metadata is identical to the
	// issuer the metadata was fetched for, or the metadata must not be used.
	if md.Issuer != issuer {
		return nil, fmt.Errorf("connector: metadata at %s names issuer %q, expected %q", address, md.Issuer, issuer)
	}
	if md.JWKSURI == "" {
		return nil, fmt.Errorf("connector: metadata at %s has no jwks_uri", address)
	}
	return &md, nil
}

func getJSON(ctx context.Context, client *http.Client, address string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, address, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", address, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", address, err)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("GET %s: response exceeds %d bytes", address, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("GET %s: invalid JSON: %w", address, err)
	}
	return nil
}

// keySet is the issuer's JWKS, fetched from jwks_uri and cached.
type keySet struct {
	client  *http.Client
	address string
	now     func() time.Time
	logger  *slog.Logger

	mu          sync.Mutex
	keys        jose.JSONWebKeySet
	fetchedAt   time.Time
	attemptedAt time.Time
}

var errUnknownKey = errors.New("connector: no key with this kid in the issuer's JWKS")

// fetch replaces the cached keys. The caller holds mu.
func (s *keySet) fetch(ctx context.Context) error {
	s.attemptedAt = s.now()
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, s.client, s.address, &set); err != nil {
		return fmt.Errorf("connector: read JWKS: %w", err)
	}
	s.keys = set
	s.fetchedAt = s.now()
	return nil
}

// key returns the public signing key with kid. An unknown kid refetches
// the JWKS, because the issuer may have rotated its key, and a JWKS older
// than keySetMaxAge is refetched too. Either happens at most once a
// minute, counting failed attempts.
func (s *keySet) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	now := s.now()
	mayFetch := now.Sub(s.attemptedAt) >= keySetMinInterval
	if mayFetch && now.Sub(s.fetchedAt) > keySetMaxAge {
		if err := s.fetch(ctx); err != nil {
			// An issuer outage must not stop offline validation, so the
			// cached keys stay in use until the next attempt.
			s.logger.WarnContext(ctx, "connector: JWKS refresh failed, keeping the cached keys",
				"jwks_uri", s.address, "error", err)
		}
		mayFetch = false
	}
	if k := s.lookup(kid); k != nil {
		return k, nil
	}
	if !mayFetch {
		return nil, errUnknownKey
	}
	if err := s.fetch(ctx); err != nil {
		return nil, err
	}
	if k := s.lookup(kid); k != nil {
		return k, nil
	}
	return nil, errUnknownKey
}

func (s *keySet) lookup(kid string) *jose.JSONWebKey {
	for _, k := range s.keys.Key(kid) {
		// RFC 7517, Section 4.2: a key whose use is not "sig" does not
		// verify signatures. A private key in a JWKS is a publishing error
		// that this connector does not use.
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.IsPublic() || !k.Valid() {
			continue
		}
		return &k
	}
	return nil
}
