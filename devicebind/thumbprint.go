package devicebind

import (
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// Thumbprint computes the RFC 7638 JWK thumbprint of key with SHA-256 and
// returns it base64url-encoded without padding (RFC 7638, Section 3.1), the
// form of the cnf.jkt claim (RFC 9449, Section 6.1). For a private key it
// returns the thumbprint of the public half, because RFC 7638, Section 3.2
// hashes only the required public members.
func Thumbprint(key *jose.JSONWebKey) (string, error) {
	if key == nil || key.Key == nil {
		return "", errors.New("devicebind: cannot compute the thumbprint of an empty JWK")
	}

	sum, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("devicebind: JWK thumbprint failed: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}
