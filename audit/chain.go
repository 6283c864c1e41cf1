package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"
)

// ChainVersion names the canonical encoding below. A change to the
// encoding needs a new version, since every stored hash depends on it.
const ChainVersion = "sotto-audit-v1"

// canonicalTime is the layout of times in the canonical encoding: UTC with
// exactly six fractional digits, the precision both databases store.
const canonicalTime = "2006-01-02T15:04:05.000000Z"

// Canonical returns the canonical encoding of r, the bytes its Hash is the
// SHA-256 of. Each field is written as its length in bytes (4 bytes,
// big-endian) followed by its UTF-8 bytes. The fields, in order:
// ChainVersion, ID as a decimal number, PrevHash, Time, RequestID, Event,
// ClientID, Subject, SubjectIssuer, DeviceJKT, DeviceTrust, Action,
// Audience, CatalogEntry, CatalogVersion, Decision, Reason, Detail,
// TokenID, TokenExpiresAt, Count, ContextHash, LatencyMicros,
// AuthorizationDetails, DetailsHash, StepUpMethod, Approver, CatalogNumber,
// Operation, Target, Before, After. Times are in
// the layout 2006-01-02T15:04:05.000000Z, truncated to microseconds, and a
// zero time is the empty string. Numbers are decimal. Hash itself is not
// encoded. The length prefixes make the encoding unambiguous, so two
// different records never encode to the same bytes.
func Canonical(r *Record) []byte {
	fields := [...]string{
		ChainVersion,
		strconv.FormatInt(r.ID, 10),
		r.PrevHash,
		formatTime(r.Time),
		r.RequestID,
		string(r.Event),
		r.ClientID,
		r.Subject,
		r.SubjectIssuer,
		r.DeviceJKT,
		r.DeviceTrust,
		r.Action,
		r.Audience,
		r.CatalogEntry,
		r.CatalogVersion,
		string(r.Decision),
		r.Reason,
		r.Detail,
		r.TokenID,
		formatTime(r.TokenExpiresAt),
		strconv.Itoa(r.Count),
		r.ContextHash,
		strconv.FormatInt(r.LatencyMicros, 10),
		r.AuthorizationDetails,
		r.DetailsHash,
		r.StepUpMethod,
		r.Approver,
		strconv.FormatInt(r.CatalogNumber, 10),
		r.Operation,
		r.Target,
		r.Before,
		r.After,
	}
	size := 0
	for _, f := range fields {
		size += 4 + len(f)
	}
	b := make([]byte, 0, size)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// ChainHash returns the hex SHA-256 of the canonical encoding of r.
func ChainHash(r *Record) string {
	sum := sha256.Sum256(Canonical(r))
	return hex.EncodeToString(sum[:])
}

// ContextHash returns the hex SHA-256 of an assistant-supplied context,
// or "" for an empty one. The audit log stores only this hash, so it
// proves what was sent without holding the text.
func ContextHash(context string) string {
	if context == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(context))
	return hex.EncodeToString(sum[:])
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Microsecond).Format(canonicalTime)
}
