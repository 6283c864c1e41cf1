package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// errUnreachable marks a failure to connect to the server.
var errUnreachable = errors.New("server not reachable")

// metadata is the part of the RFC 8414 authorization server metadata that
// the load tool uses.
type metadata struct {
	Issuer         string   `json:"issuer"`
	TokenEndpoint  string   `json:"token_endpoint"`
	DPoPAlgorithms []string `json:"dpop_signing_alg_values_supported"`
}

// checkLoopback returns an error unless rawURL is an http(s) URL whose host
// is localhost or a loopback address.
func checkLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("invalid URL %q: scheme must be http or https", rawURL)
	}

	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("target %q is not a loopback address. Pass -allow-remote to load a remote server", rawURL)
}

// newTransport returns a keep-alive transport with an idle connection
// for every worker, so the timed part opens no new connections.
func newTransport(workers int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * workers,
		MaxIdleConnsPerHost: workers,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// fetchMetadata reads the server metadata (RFC 8414, Section 3) and checks
// its issuer (Section 3.3) and token endpoint.
func fetchMetadata(ctx context.Context, client *http.Client, issuer string, allowRemote bool) (*metadata, error) {
	metadataURL := strings.TrimSuffix(issuer, "/") + "/.well-known/oauth-authorization-server"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metadataURL, nil)
	if err != nil {
		return nil, err
	}

	resp, err := client.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return nil, fmt.Errorf("%w at %s", errUnreachable, issuer)
		}
		return nil, fmt.Errorf("read metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read metadata: GET %s returned HTTP %d", metadataURL, resp.StatusCode)
	}

	var meta metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&meta); err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	if meta.Issuer != issuer {
		return nil, fmt.Errorf("metadata issuer %q does not match -issuer %q", meta.Issuer, issuer)
	}
	if meta.TokenEndpoint == "" {
		return nil, errors.New("metadata has no token_endpoint")
	}
	if !allowRemote {
		if err := checkLoopback(meta.TokenEndpoint); err != nil {
			return nil, fmt.Errorf("metadata token_endpoint: %w", err)
		}
	}
	return &meta, nil
}
