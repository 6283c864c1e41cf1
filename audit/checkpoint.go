package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"slices"

	"github.com/go-jose/go-jose/v4"
)

// CheckpointType is the typ header of a signed checkpoint, so a checkpoint
// can never be mistaken for an access token (RFC 8725, Section 3.11).
const CheckpointType = "sotto-audit-checkpoint+jwt"

// checkpointAlgorithms are the JWS algorithms a checkpoint may be signed
// with: the ones the server's signing keys use.
var checkpointAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256,
}

// Checkpoint is the payload of a signed checkpoint: the chain head and a
// digest of every range of records a retention run deleted, at IssuedAt.
type Checkpoint struct {
	// Chain is ChainVersion, the encoding the hashes follow.
	Chain string `json:"chain"`
	// Seq and Hash are the ID and hash of the last record at the time.
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	// Gaps is the number of deleted ranges and GapsHash their GapDigest.
	Gaps     int64  `json:"gaps"`
	GapsHash string `json:"gaps_hash"`
	// IssuedAt is the signing time in Unix seconds.
	IssuedAt int64 `json:"iat"`
	// Issuer is the issuer URL of the server that signed it.
	Issuer string `json:"iss,omitempty"`
}

// Gap is a range of records that a retention run deleted. PrevHash is the
// previous hash stored in record FirstID, and LastHash is the hash of
// record LastID, which the record after the range links to.
type Gap struct {
	FirstID  int64
	LastID   int64
	PrevHash string
	LastHash string
}

// GapDigest computes the digest of deleted ranges that a checkpoint signs.
// It is the SHA-256 of every gap in FirstID order. A gap is encoded as
// FirstID and LastID in 8 bytes each, big-endian, then PrevHash and
// LastHash, each as its length in 4 bytes, big-endian, and its characters.
type GapDigest struct {
	h     hash.Hash
	count int64
}

// NewGapDigest returns an empty digest.
func NewGapDigest() *GapDigest { return &GapDigest{h: sha256.New()} }

// Add adds g, which must follow the gaps added before it.
func (d *GapDigest) Add(g Gap) {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(g.FirstID))
	binary.BigEndian.PutUint64(b[8:], uint64(g.LastID))
	d.h.Write(b[:])
	for _, s := range []string{g.PrevHash, g.LastHash} {
		d.h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
		d.h.Write([]byte(s))
	}
	d.count++
}

// Count returns the number of gaps added.
func (d *GapDigest) Count() int64 { return d.count }

// Sum returns the hex digest.
func (d *GapDigest) Sum() string { return hex.EncodeToString(d.h.Sum(nil)) }

// VerifyCheckpoint checks the signature of a compact JWS checkpoint
// against keys, its typ header and its chain version, and returns its
// payload. The key is chosen by the kid header.
func VerifyCheckpoint(compact string, keys jose.JSONWebKeySet) (*Checkpoint, error) {
	jws, err := jose.ParseSigned(compact, checkpointAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("parse checkpoint: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("checkpoint has more than one signature")
	}
	header := jws.Signatures[0].Protected
	if typ, _ := header.ExtraHeaders[jose.HeaderType].(string); typ != CheckpointType {
		return nil, fmt.Errorf("checkpoint has typ %q, want %q", typ, CheckpointType)
	}
	candidates := keys.Key(header.KeyID)
	if len(candidates) == 0 {
		return nil, fmt.Errorf("checkpoint is signed with key %q, which is not among the %d public keys given: "+
			"pass the JWKS that was published when it was signed", header.KeyID, len(keys.Keys))
	}
	idx := slices.IndexFunc(candidates, func(k jose.JSONWebKey) bool { return k.Algorithm == "" || k.Algorithm == header.Algorithm })
	if idx < 0 {
		return nil, fmt.Errorf("checkpoint uses algorithm %s, which key %q is not for", header.Algorithm, header.KeyID)
	}
	payload, err := jws.Verify(candidates[idx])
	if err != nil {
		return nil, fmt.Errorf("checkpoint signature is invalid: %w", err)
	}

	var c Checkpoint
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("checkpoint payload: %w", err)
	}
	if c.Chain != ChainVersion {
		return nil, fmt.Errorf("checkpoint is for chain version %q, want %q", c.Chain, ChainVersion)
	}
	return &c, nil
}
