package authz

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/storage"
)

// KeyStore is the storage of signing keys.
type KeyStore interface {
	SigningKeys(ctx context.Context) ([]storage.SigningKey, error)
	AddSigningKey(ctx context.Context, k storage.SigningKey, now time.Time) error
}

// Keyring holds the server's signing keys: the current one signs, and
// retired ones stay in the JWKS until every token they signed has
// expired. Private keys are stored sealed with AES-256-GCM under the
// key-encryption key, with the key id as additional data.
type Keyring struct {
	store      KeyStore
	kek        []byte
	alg        jose.SignatureAlgorithm
	retention  time.Duration
	activation time.Duration
	now        func() time.Time
	logger     *slog.Logger

	mu      sync.RWMutex
	current *signingKey
	public  jose.JSONWebKeySet
	jwks    []byte
}

type signingKey struct {
	kid    string
	signer jose.Signer
	// checkpoint signs audit checkpoints with the same key but its own
	// typ, so neither can pass for the other.
	checkpoint jose.Signer
}

// KeyringOptions configure a Keyring.
type KeyringOptions struct {
	Algorithm string
	// Retention is how long a retired key stays published: at least the
	// longest token lifetime plus Activation, so every token it signed can
	// be verified.
	Retention time.Duration
	// Activation is how long a new key is published before it signs, so
	// connectors that cache the JWKS fetch it before they meet a token
	// signed with it. The first key of a new server signs at once.
	Activation time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// NewKeyring loads the signing keys, generating the first one when the
// store has none.
func NewKeyring(ctx context.Context, store KeyStore, kek []byte, o KeyringOptions) (*Keyring, error) {
	if len(kek) != 32 {
		return nil, fmt.Errorf("key-encryption key is %d bytes, want 32", len(kek))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	k := &Keyring{
		store: store, kek: kek, alg: jose.SignatureAlgorithm(o.Algorithm),
		retention: o.Retention, activation: o.Activation, now: o.Now, logger: o.Logger,
	}
	keys, err := store.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	if len(keys) == 0 {
		if _, err := k.Rotate(ctx); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err := k.install(keys); err != nil {
		return nil, err
	}
	return k, nil
}

// Rotate generates a new signing key, makes it current and retires the
// previous one, which stays in the JWKS for the retention period. It
// returns the new key id.
func (k *Keyring) Rotate(ctx context.Context) (string, error) {
	priv, err := generateKey(k.alg)
	if err != nil {
		return "", err
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: string(k.alg), Use: "sig"}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(thumb)[:16]

	privJSON, err := jwk.MarshalJSON()
	if err != nil {
		return "", err
	}
	sealed, err := seal(k.kek, privJSON, jwk.KeyID)
	if err != nil {
		return "", err
	}
	pubJSON, err := json.Marshal(jwk.Public())
	if err != nil {
		return "", err
	}
	now := k.now().UTC()
	err = k.store.AddSigningKey(ctx, storage.SigningKey{
		KID: jwk.KeyID, Algorithm: string(k.alg), PublicJWK: pubJSON, PrivateSealed: sealed, CreatedAt: now,
	}, now)
	if err != nil {
		return "", fmt.Errorf("store signing key: %w", err)
	}
	return jwk.KeyID, k.Reload(ctx)
}

// Reload reads the keys again, so a rotation made by another process or
// replica takes effect.
func (k *Keyring) Reload(ctx context.Context) error {
	keys, err := k.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	return k.install(keys)
}

func (k *Keyring) install(keys []storage.SigningKey) error {
	now := k.now()
	var published []storage.SigningKey
	var set jose.JSONWebKeySet
	for _, sk := range keys {
		if sk.RetiredAt != nil && now.Sub(*sk.RetiredAt) > k.retention {
			continue
		}
		var pub jose.JSONWebKey
		if err := json.Unmarshal(sk.PublicJWK, &pub); err != nil {
			return fmt.Errorf("signing key %s: public key: %w", sk.KID, err)
		}
		set.Keys = append(set.Keys, pub)
		published = append(published, sk)
	}
	if len(published) == 0 {
		return errors.New("no signing key: run `sotto keys rotate`")
	}

	// keys is newest first. The signer is the newest key published for at
	// least the activation delay; when none is that old (a new server), the
	// oldest published key signs.
	chosen := published[len(published)-1]
	for _, sk := range published {
		if now.Sub(sk.CreatedAt) >= k.activation {
			chosen = sk
			break
		}
	}
	current, err := k.openSigner(chosen)
	if err != nil {
		return err
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return err
	}

	k.mu.Lock()
	previous := k.current
	k.current, k.public, k.jwks = current, set, jwks
	k.mu.Unlock()
	if previous != nil && previous.kid != current.kid {
		k.logger.Info("signing key changed", "kid", current.kid, "previous_kid", previous.kid, "published_keys", len(set.Keys))
	}
	return nil
}

// openSigner decrypts the private key of sk and returns its signer.
func (k *Keyring) openSigner(sk storage.SigningKey) (*signingKey, error) {
	plain, err := open(k.kek, sk.PrivateSealed, sk.KID)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", sk.KID, err)
	}
	var priv jose.JSONWebKey
	if err := priv.UnmarshalJSON(plain); err != nil {
		return nil, fmt.Errorf("signing key %s: private key: %w", sk.KID, err)
	}
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader(jose.HeaderKey("kid"), sk.KID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(sk.Algorithm), Key: priv.Key}, opts)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", sk.KID, err)
	}
	checkpoint, err := newCheckpointSigner(sk, priv.Key)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", sk.KID, err)
	}
	return &signingKey{kid: sk.KID, signer: signer, checkpoint: checkpoint}, nil
}

// SignAccessToken implements exchange.Signer: it signs payload with the
// current key, with the header typ at+jwt of RFC 9068 §2.1 and the kid.
func (k *Keyring) SignAccessToken(payload []byte) (string, error) {
	k.mu.RLock()
	cur := k.current
	k.mu.RUnlock()
	jws, err := cur.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// JWKS returns the JSON Web Key Set of the current and retired keys.
func (k *Keyring) JWKS() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.jwks
}

// PublicKeys returns the published keys.
func (k *Keyring) PublicKeys() jose.JSONWebKeySet {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.public
}

// CurrentKeyID returns the id of the signing key.
func (k *Keyring) CurrentKeyID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current.kid
}

func generateKey(alg jose.SignatureAlgorithm) (crypto.Signer, error) {
	switch alg {
	case jose.ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case jose.RS256, jose.PS256:
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}

func seal(kek, plaintext []byte, kid string) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plaintext, []byte(kid)), nil
}

func open(kek, sealed []byte, kid string) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed private key is truncated")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(kid))
	if err != nil {
		return nil, errors.New("cannot decrypt the private key: the key-encryption key (keys.encryption_key or the file keys.encryption_key_file) " +
			"is not the one the key was sealed with; restore the original key-encryption key from its backup")
	}
	return plain, nil
}

func newAEAD(kek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// LoadKEK returns the key-encryption key: from value (base64 of 32 bytes)
// when set, otherwise from path, which is created with 0600 permissions
// holding a new random key when it does not exist. created reports that.
func LoadKEK(value, path string) (kek []byte, created bool, err error) {
	if value != "" {
		kek, err = decodeKEK(value)
		return kek, false, err
	}
	b, err := os.ReadFile(path)
	if err == nil {
		kek, err = decodeKEK(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, false, fmt.Errorf("key-encryption key file %s: %w", path, err)
		}
		return kek, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read key-encryption key: %w", err)
	}

	kek = make([]byte, 32)
	if _, err := rand.Read(kek); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	// O_EXCL: two processes starting at once must not overwrite each
	// other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadKEK("", path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("create key-encryption key: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(kek) + "\n"); err != nil {
		return nil, false, err
	}
	if err := f.Sync(); err != nil {
		return nil, false, err
	}
	return kek, true, nil
}

func decodeKEK(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("key-encryption key is %d bytes, want 32 (base64 of 32 random bytes)", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("key-encryption key is not base64: generate one with `openssl rand -base64 32`")
}
