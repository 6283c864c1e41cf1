package devicebind

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4/json"
)

// proofClaims is the set of payload claims of RFC 9449, Section 4.2, as sent
// and as decoded.
type proofClaims struct {
	JTI   json.RawMessage `json:"jti"`
	HTM   json.RawMessage `json:"htm"`
	HTU   json.RawMessage `json:"htu"`
	IAT   json.RawMessage `json:"iat"`
	ATH   json.RawMessage `json:"ath"`
	Nonce json.RawMessage `json:"nonce"`

	jti, htm, htu, ath, nonce string
	iat                       float64
	normalizedHTU             string
}

func parseClaims(payload []byte) (*proofClaims, error) {
	var c proofClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fail("claims", "DPoP proof payload is not a JSON object without duplicate members")
	}

	// RFC 9449, Section 4.3, step 3: the proof contains every claim that
	// Section 4.2 requires: jti, htm and htu as strings, iat as a number.
	var ok bool
	if c.jti, ok = jsonString(c.JTI); !ok {
		return nil, fail("claims", "DPoP proof jti claim is missing or not a string")
	}
	if c.htm, ok = jsonString(c.HTM); !ok {
		return nil, fail("claims", "DPoP proof htm claim is missing or not a string")
	}
	if c.htu, ok = jsonString(c.HTU); !ok {
		return nil, fail("claims", "DPoP proof htu claim is missing or not a string")
	}
	if c.iat, ok = jsonNumber(c.IAT); !ok {
		return nil, fail("claims", "DPoP proof iat claim is missing or not a JSON number")
	}

	// ath and nonce are optional, but when present they must be strings.
	if len(c.ATH) > 0 {
		if c.ath, ok = jsonString(c.ATH); !ok {
			return nil, fail("claims", "DPoP proof ath claim is not a string")
		}
	}
	if len(c.Nonce) > 0 {
		if c.nonce, ok = jsonString(c.Nonce); !ok {
			return nil, fail("claims", "DPoP proof nonce claim is not a string")
		}
	}
	return &c, nil
}

func (v *Verifier) checkClaims(c *proofClaims, req Request, expectedURI string) error {
	// RFC 9449, Section 4.2: jti is a unique identifier of the proof, so it
	// is never empty. The upper bound keeps replay records small.
	if c.jti == "" || len(c.jti) > maxJTIBytes {
		return fail("jti", fmt.Sprintf("DPoP proof jti must be 1 to %d bytes long", maxJTIBytes))
	}

	// RFC 9449, Section 4.3, step 8: htm matches the HTTP method of the
	// request. Methods are case-sensitive (RFC 9110, Section 9.1).
	if c.htm != req.Method {
		return fail("htm", "DPoP proof htm "+quote(c.htm)+
			" does not match the request method "+quote(req.Method))
	}

	// RFC 9449, Section 4.3, step 9: htu matches the request URI, ignoring
	// query and fragment, after the syntax- and scheme-based normalization
	// of RFC 3986, Sections 6.2.2 and 6.2.3.
	htu, err := NormalizeURI(c.htu)
	if err != nil {
		return fail("htu", "DPoP proof htu is not an absolute http or https URI: "+uriReason(err))
	}
	if htu != expectedURI {
		return fail("htu", "DPoP proof htu "+quote(c.htu)+" does not match the request URI "+quote(expectedURI))
	}
	c.normalizedHTU = htu

	// RFC 9449, Section 4.3, step 11 and Section 11.1: the proof was created
	// within an acceptable window around the server's time.
	window := v.Window
	if window <= 0 {
		window = defaultWindow
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	offset := c.iat - float64(now().UnixNano())/1e9
	if offset < -window.Seconds() {
		return fail("iat", fmt.Sprintf("DPoP proof iat is more than %d seconds in the past; create a new proof",
			int64(window.Seconds())))
	}
	if offset > window.Seconds() {
		return fail("iat", fmt.Sprintf("DPoP proof iat is more than %d seconds in the future; check the device clock",
			int64(window.Seconds())))
	}

	// RFC 9449, Section 4.3, step 12 and Section 4.2: with an access token,
	// ath is base64url(SHA-256(access token)).
	if req.AccessToken != "" {
		if c.ath == "" {
			return fail("ath", "DPoP proof has no ath claim; it is required with an access token")
		}
		sum := sha256.Sum256([]byte(req.AccessToken))
		want := base64.RawURLEncoding.EncodeToString(sum[:])
		if subtle.ConstantTimeCompare([]byte(c.ath), []byte(want)) != 1 {
			return fail("ath", "DPoP proof ath does not match the hash of the access token")
		}
	}

	// RFC 9449, Section 4.3, step 10: when the server provided a nonce, the
	// nonce claim matches it.
	if req.Nonce != "" {
		if c.nonce == "" {
			return fail("nonce", "DPoP proof has no nonce claim; use the nonce from the DPoP-Nonce header")
		}
		if subtle.ConstantTimeCompare([]byte(c.nonce), []byte(req.Nonce)) != 1 {
			return fail("nonce", "DPoP proof nonce does not match the nonce from the DPoP-Nonce header")
		}
	}
	if req.AcceptNonce != nil {
		if c.nonce == "" {
			return fail("nonce", "DPoP proof has no nonce claim; use the nonce from the DPoP-Nonce header")
		}
		if !req.AcceptNonce(c.nonce) {
			return fail("nonce", "DPoP proof nonce is not current; use the nonce from the latest DPoP-Nonce header")
		}
	}
	return nil
}

// jsonString decodes raw as a JSON string. It reports false for an absent
// member and for any other JSON type, null included.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	// The JSON decoder has already validated raw, so a string without escapes
	// is its content between the quotes. Invalid UTF-8 takes the slow path,
	// which replaces it with U+FFFD as the decoder does.
	content := raw[1 : len(raw)-1]
	if bytes.IndexByte(content, '\\') < 0 && utf8.Valid(content) {
		return string(content), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// jsonNumber decodes raw as a JSON number that fits a float64.
func jsonNumber(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, false
	}
	// The JSON decoder has already validated raw, and the JSON number grammar
	// (RFC 8259, Section 6) is a subset of what ParseFloat accepts.
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// unixTime converts NumericDate seconds (RFC 7519, Section 2) to a time.
// Callers pass only values that passed the iat window check.
func unixTime(seconds float64) time.Time {
	whole := math.Floor(seconds)
	return time.Unix(int64(whole), int64((seconds-whole)*1e9)).UTC()
}
