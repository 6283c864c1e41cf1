package authz

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/crypto/bcrypt"

	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/oauth"
)

// Client is a registered client, loaded from the clients file.
type Client struct {
	ID          string
	Name        string
	Public      bool
	SecretHash  []byte // bcrypt, or plainDigestPrefix + hex SHA-256 of a plaintext secret
	GrantTypes  fosite.Arguments
	RequireDPoP bool
	// RequireDPoPNonce makes the token endpoint demand a server nonce in
	// the client's proofs (RFC 9449, Section 8).
	RequireDPoPNonce bool
	Audiences        []string
	// AdminScopes are the admin scopes the client may request with the
	// client_credentials grant.
	AdminScopes []string
	// DisabledAt is when an administrator turned the client's kill switch
	// on, or nil.
	DisabledAt   *time.Time
	RedirectURIs []string
	// FirstParty skips the consent page.
	FirstParty   bool
	hasPlaintext bool
}

var _ exchange.Client = (*Client)(nil)

// plainDigestPrefix marks a secret given in plaintext in the clients file.
// It is compared as a SHA-256 digest in constant time, never with bcrypt.
const plainDigestPrefix = "sha256:"

// NewClient converts a configured client.
func NewClient(c config.Client) *Client {
	out := &Client{
		ID:               c.ClientID,
		Name:             c.Name,
		Public:           c.Public,
		GrantTypes:       fosite.Arguments(c.GrantTypes),
		RequireDPoP:      c.RequireDPoP,
		RequireDPoPNonce: c.RequireDPoPNonce,
		Audiences:        c.Audiences,
		AdminScopes:      c.AdminScopes,
		RedirectURIs:     c.RedirectURIs,
		FirstParty:       c.FirstParty,
	}
	switch {
	case c.ClientSecretHash != "":
		out.SecretHash = []byte(c.ClientSecretHash)
	case c.ClientSecret != "":
		sum := sha256.Sum256([]byte(c.ClientSecret))
		out.SecretHash = []byte(plainDigestPrefix + hex.EncodeToString(sum[:]))
		out.hasPlaintext = true
	}
	return out
}

// GetID implements fosite.Client.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret implements fosite.Client.
func (c *Client) GetHashedSecret() []byte { return c.SecretHash }

// GetRedirectURIs implements fosite.Client.
func (c *Client) GetRedirectURIs() []string { return c.RedirectURIs }

// GetGrantTypes implements fosite.Client.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes implements fosite.Client.
func (c *Client) GetResponseTypes() fosite.Arguments { return nil }

// GetScopes implements fosite.Client. Scopes are governed by the catalog,
// not per client.
func (c *Client) GetScopes() fosite.Arguments { return nil }

// IsPublic implements fosite.Client.
func (c *Client) IsPublic() bool { return c.Public }

// GetAudience implements fosite.Client: the audiences whose tokens the
// client may see at introspection.
func (c *Client) GetAudience() fosite.Arguments { return c.Audiences }

// Disabled implements exchange.DisabledClient.
func (c *Client) Disabled() bool { return c.DisabledAt != nil }

// DPoPRequired implements exchange.Client.
func (c *Client) DPoPRequired() bool { return c.RequireDPoP }

// checkOneAuthMethod rejects a request that authenticates the client in
// more than one way. RFC 6749 §2.3: the client must not use more than one
// authentication method in a request. fosite takes the HTTP Basic
// credentials and ignores a client_secret or client_id in the body, so
// without this check a request could name two clients at once.
func checkOneAuthMethod(r *http.Request, form url.Values) error {
	basicID, _, ok := r.BasicAuth()
	if !ok {
		return nil
	}
	if form.Has("client_secret") || form.Has("client_assertion") || form.Has("client_assertion_type") {
		return oauth.InvalidRequest("client_auth_several",
			"The request authenticates the client with HTTP Basic and in the body; use one method (RFC 6749 §2.3).")
	}
	// RFC 6749 §2.3.1: the Basic user name is the form-encoded client_id.
	// An undecodable one is left for fosite to report.
	if bodyID := form.Get("client_id"); bodyID != "" {
		if decoded, err := url.QueryUnescape(basicID); err == nil && decoded != bodyID {
			return oauth.InvalidRequest("client_id_mismatch",
				"The client_id in the body differs from the client in the HTTP Basic credentials; send one client.")
		}
	}
	return nil
}

// DPoPNonceRequired implements exchange.NonceClient.
func (c *Client) DPoPNonceRequired() bool { return c.RequireDPoPNonce }

// clientStore is the fosite.Storage of the provider: the registered
// clients. Client assertions (RFC 7523) are not offered, so their jti
// methods refuse. The map is replaced whole when the stored clients
// change and is never modified, so reads take no lock.
type clientStore struct {
	clients atomic.Pointer[map[string]*Client]
}

var _ fosite.Storage = (*clientStore)(nil)

func newClientStore(clients []*Client) *clientStore {
	s := &clientStore{}
	s.replace(clients)
	return s
}

func (s *clientStore) replace(clients []*Client) {
	m := make(map[string]*Client, len(clients))
	for _, c := range clients {
		m[c.ID] = c
	}
	s.clients.Store(&m)
}

func (s *clientStore) lookup(id string) (*Client, bool) {
	c, ok := (*s.clients.Load())[id]
	return c, ok
}

func (s *clientStore) GetClient(_ context.Context, id string) (fosite.Client, error) {
	c, ok := s.lookup(id)
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return c, nil
}

func (s *clientStore) ClientAssertionJWTValid(context.Context, string) error {
	return errors.New("client assertions are not supported")
}

func (s *clientStore) SetClientAssertionJWT(context.Context, string, time.Time) error {
	return errors.New("client assertions are not supported")
}

// secretHasher is fosite's ClientSecretsHasher. bcrypt at a useful cost
// takes tens to hundreds of milliseconds, and a connector that
// introspects every request would pay it each time, so a successful
// comparison is remembered for a while under the SHA-256 of the stored
// hash and the presented secret. Failures are never remembered.
type secretHasher struct {
	mu       sync.Mutex
	verified map[[sha256.Size]byte]time.Time
	ttl      time.Duration
	now      func() time.Time
}

func newSecretHasher() *secretHasher {
	return &secretHasher{verified: map[[sha256.Size]byte]time.Time{}, ttl: 10 * time.Minute, now: time.Now}
}

const maxVerifiedSecrets = 1024

// Compare implements fosite.Hasher.
func (h *secretHasher) Compare(_ context.Context, hash, secret []byte) error {
	if len(hash) == 0 {
		return errors.New("the client has no secret")
	}
	if digest, ok := bytesCutPrefix(hash, plainDigestPrefix); ok {
		sum := sha256.Sum256(secret)
		want := make([]byte, hex.EncodedLen(len(sum)))
		hex.Encode(want, sum[:])
		if subtle.ConstantTimeCompare(want, digest) != 1 {
			return errors.New("client secret mismatch")
		}
		return nil
	}

	key := sha256.Sum256(append(append(append([]byte{}, hash...), 0), secret...))
	now := h.now()
	h.mu.Lock()
	until, ok := h.verified[key]
	h.mu.Unlock()
	if ok && now.Before(until) {
		return nil
	}
	if err := bcrypt.CompareHashAndPassword(hash, secret); err != nil {
		return err
	}
	h.mu.Lock()
	if len(h.verified) >= maxVerifiedSecrets {
		clear(h.verified)
	}
	h.verified[key] = now.Add(h.ttl)
	h.mu.Unlock()
	return nil
}

// Hash implements fosite.Hasher.
func (h *secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return bcrypt.GenerateFromPassword(data, bcrypt.DefaultCost)
}

func bytesCutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return nil, false
	}
	return b[len(prefix):], true
}
