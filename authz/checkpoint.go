package authz

import (
	"github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/storage"
)

func newCheckpointSigner(sk storage.SigningKey, key any) (jose.Signer, error) {
	opts := (&jose.SignerOptions{}).WithType(audit.CheckpointType).WithHeader(jose.HeaderKey("kid"), sk.KID)
	return jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(sk.Algorithm), Key: key}, opts)
}

// SignAuditCheckpoint signs payload, a JSON audit.Checkpoint, with the
// current key as a compact JWS with typ sotto-audit-checkpoint+jwt. It
// verifies against the same JWKS as the access tokens.
func (k *Keyring) SignAuditCheckpoint(payload []byte) (string, error) {
	k.mu.RLock()
	cur := k.current
	k.mu.RUnlock()
	jws, err := cur.checkpoint.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
