package connector

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// maxIntrospectionEntries bounds the cache of introspection responses.
const maxIntrospectionEntries = 10_000

// introspector queries the issuer whether a token is active (RFC 7662) and
// caches the responses briefly.
type introspector struct {
	client       *http.Client
	endpoint     string
	clientID     string
	clientSecret string
	ttl          time.Duration
	now          func() time.Time

	mu      sync.Mutex
	answers map[[sha256.Size]byte]cachedAnswer
}

type cachedAnswer struct {
	active bool
	until  time.Time
}

func newIntrospector(client *http.Client, md *metadata, cfg IntrospectionConfig, now func() time.Time) (*introspector, error) {
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = md.IntrospectionEndpoint
	}
	if endpoint == "" {
		return nil, errors.New("connector: the issuer metadata has no introspection_endpoint; set IntrospectionConfig.Endpoint")
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("connector: introspection needs IntrospectionConfig.ClientID and ClientSecret")
	}
	ttl := cfg.CacheTTL
	if ttl == 0 {
		ttl = defaultCacheTTL
	}
	return &introspector{
		client: client, endpoint: endpoint, clientID: cfg.ClientID, clientSecret: cfg.ClientSecret,
		ttl: ttl, now: now, answers: make(map[[sha256.Size]byte]cachedAnswer),
	}, nil
}

// active returns the active member of the introspection response for
// token. expiresAt caps how long an active response is cached.
func (in *introspector) active(ctx context.Context, token string, expiresAt time.Time) (bool, error) {
	// The cache key is a hash, so the cache holds no usable token.
	key := sha256.Sum256([]byte(token))
	now := in.now()
	if in.ttl > 0 {
		in.mu.Lock()
		answer, ok := in.answers[key]
		in.mu.Unlock()
		if ok && now.Before(answer.until) {
			return answer.active, nil
		}
	}

	active, err := in.ask(ctx, token)
	if err != nil {
		return false, err
	}

	if in.ttl > 0 {
		until := now.Add(in.ttl)
		if active && expiresAt.Before(until) {
			until = expiresAt
		}
		in.mu.Lock()
		if len(in.answers) >= maxIntrospectionEntries {
			for k, a := range in.answers {
				if !now.Before(a.until) {
					delete(in.answers, k)
				}
			}
		}
		if len(in.answers) < maxIntrospectionEntries {
			in.answers[key] = cachedAnswer{active: active, until: until}
		}
		in.mu.Unlock()
	}
	return active, nil
}

func (in *introspector) ask(ctx context.Context, token string) (bool, error) {
	// RFC 7662, Section 2.1: a form POST with token and token_type_hint.
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return false, fmt.Errorf("connector: introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749, Section 2.3.1: client_secret_basic form-encodes the client
	// id and secret before the Basic encoding.
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.clientSecret))

	resp, err := in.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("connector: introspection at %s failed: %w", in.endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("connector: introspection at %s returned status %d; check the client credentials",
			in.endpoint, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes))
	if err != nil {
		return false, fmt.Errorf("connector: read introspection response: %w", err)
	}
	// RFC 7662, Section 2.2: active is a required boolean.
	var answer struct {
		Active *bool `json:"active"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Active == nil {
		return false, fmt.Errorf("connector: introspection response from %s has no boolean active member", in.endpoint)
	}
	return *answer.Active, nil
}
