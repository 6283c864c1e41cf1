package connector

import (
	"context"
	"encoding/base64"
	encjson "encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"
)

// accessTokenType is the typ header of a JWT access token (RFC 9068,
// Section 2.1).
const accessTokenType = "at+jwt"

// tokenClaims is the payload of an action token as sent. It is decoded
// with go-jose's JSON package, which rejects duplicate member names.
type tokenClaims struct {
	Issuer               string             `json:"iss"`
	Subject              string             `json:"sub"`
	Audience             jwt.Audience       `json:"aud"`
	Expiry               *jwt.NumericDate   `json:"exp"`
	NotBefore            *jwt.NumericDate   `json:"nbf"`
	IssuedAt             *jwt.NumericDate   `json:"iat"`
	ID                   string             `json:"jti"`
	ClientID             string             `json:"client_id"`
	Scope                string             `json:"scope"`
	ACR                  string             `json:"acr"`
	AMR                  []string           `json:"amr"`
	AuthTime             *jwt.NumericDate   `json:"auth_time"`
	AuthorizationDetails encjson.RawMessage `json:"authorization_details"`
	Actor                *Actor             `json:"act"`
	Confirmation         *struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

// verifyToken checks the access token offline and returns its claims.
func (v *Validator) verifyToken(ctx context.Context, token string) (*Claims, error) {
	header, err := decodeHeader(token)
	if err != nil {
		return nil, invalidToken("the access token is not a JWT: " + err.Error())
	}

	// RFC 9068, Section 4: the resource server verifies that typ is
	// "at+jwt" (or its full media type, RFC 7515, Section 4.1.9), which
	// keeps an ID token or any other JWT from passing as an access token.
	typ := strings.TrimPrefix(strings.ToLower(header.Typ), "application/")
	if typ != accessTokenType {
		return nil, invalidToken("the access token typ is not at+jwt (RFC 9068, Section 2.1)")
	}
	// RFC 7515, Section 4.1.11: a recipient rejects a token whose crit
	// names an extension it does not understand. This package
	// understands none.
	if header.hasCrit {
		return nil, invalidToken("the access token header has crit extensions, which are not supported")
	}
	// RFC 8725, Section 3.1 and RFC 9068, Section 4: only allowlisted
	// asymmetric algorithms.
	if !slices.Contains(v.algorithms, jose.SignatureAlgorithm(header.Alg)) {
		return nil, invalidToken("the access token alg " + header.Alg + " is not accepted; use one of " + v.algNames)
	}

	jws, err := jose.ParseSignedCompact(token, v.algorithms)
	if err != nil {
		return nil, invalidToken("the access token is not a well-formed compact JWS")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalidToken("the access token must carry exactly one signature")
	}

	// RFC 9068, Section 4: the signature is checked with a key from the
	// issuer's JWKS (jwks_uri, RFC 8414, Section 2), chosen by kid.
	key, err := v.keys.key(ctx, header.Kid)
	if errors.Is(err, errUnknownKey) {
		return nil, invalidToken("the access token kid is not in the issuer's JWKS")
	}
	if err != nil {
		return nil, err
	}
	// RFC 7517, Section 4.4: a key with alg is used with that algorithm only.
	if key.Algorithm != "" && key.Algorithm != header.Alg {
		return nil, invalidToken("the access token alg does not match the alg of its key")
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, invalidToken("the access token signature is invalid")
	}

	var tc tokenClaims
	if err := json.Unmarshal(payload, &tc); err != nil {
		return nil, invalidToken("the access token claims are not a JSON object of the expected types")
	}
	if err := v.checkClaims(&tc); err != nil {
		return nil, err
	}
	return tc.export(), nil
}

// checkClaims applies RFC 9068, Section 4 to the decoded claims.
func (v *Validator) checkClaims(tc *tokenClaims) error {
	now := v.now()

	// RFC 9068, Section 2.2: iss, exp, aud, sub, client_id, iat and jti
	// are required.
	switch {
	case tc.Issuer == "":
		return invalidToken("the access token has no iss claim")
	case tc.Expiry == nil:
		return invalidToken("the access token has no exp claim")
	case len(tc.Audience) == 0:
		return invalidToken("the access token has no aud claim")
	case tc.Subject == "":
		return invalidToken("the access token has no sub claim")
	case tc.ClientID == "":
		return invalidToken("the access token has no client_id claim")
	case tc.IssuedAt == nil:
		return invalidToken("the access token has no iat claim")
	case tc.ID == "":
		return invalidToken("the access token has no jti claim")
	}

	// RFC 9068, Section 4: iss matches the issuer identifier exactly.
	if tc.Issuer != v.issuer {
		return invalidToken("the access token was issued by " + tc.Issuer + ", not by " + v.issuer)
	}
	// RFC 9068, Section 4: aud contains this resource server's identifier.
	if !tc.Audience.Contains(v.audience) {
		return invalidToken("the access token audience does not contain " + v.audience)
	}
	// RFC 7519, Sections 4.1.4 and 4.1.5 with the leeway of Section 4.1.4:
	// the current time is before exp and not before nbf.
	if !now.Before(tc.Expiry.Time().Add(v.leeway)) {
		return invalidToken("the access token expired")
	}
	if tc.NotBefore != nil && now.Add(v.leeway).Before(tc.NotBefore.Time()) {
		return invalidToken("the access token is not valid yet (nbf)")
	}
	// RFC 7519, Section 4.1.6: a token issued in the future means clocks
	// disagree beyond the leeway or the token is forged.
	if now.Add(v.leeway).Before(tc.IssuedAt.Time()) {
		return invalidToken("the access token iat is in the future")
	}

	// RFC 9449, Section 6.1: a DPoP-bound token carries cnf.jkt. This
	// connector accepts bound tokens only.
	if tc.Confirmation == nil || tc.Confirmation.JKT == "" {
		return invalidToken("the access token is not DPoP-bound (no cnf.jkt claim)")
	}
	return nil
}

func (tc *tokenClaims) export() *Claims {
	c := &Claims{
		Issuer:               tc.Issuer,
		Subject:              tc.Subject,
		Audience:             []string(tc.Audience),
		ClientID:             tc.ClientID,
		Scope:                tc.Scope,
		ACR:                  tc.ACR,
		AMR:                  tc.AMR,
		AuthorizationDetails: tc.AuthorizationDetails,
		Actor:                tc.Actor,
		JKT:                  tc.Confirmation.JKT,
		TokenID:              tc.ID,
		IssuedAt:             tc.IssuedAt.Time(),
		ExpiresAt:            tc.Expiry.Time(),
	}
	if tc.AuthTime != nil {
		c.AuthTime = tc.AuthTime.Time()
	}
	return c
}

// jwsHeader is the protected header members the connector reads itself.
type jwsHeader struct {
	Alg     string
	Typ     string
	Kid     string
	hasCrit bool
}

// decodeHeader reads the protected header of a compact JWS without
// verifying it. Callers use it only to decide whether to verify.
func decodeHeader(compact string) (*jwsHeader, error) {
	encoded, _, ok := strings.Cut(compact, ".")
	if !ok {
		return nil, errors.New("it has no dot-separated parts")
	}
	decoded, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil {
		return nil, errors.New("its header is not base64url")
	}
	var raw struct {
		Alg  *string         `json:"alg"`
		Typ  *string         `json:"typ"`
		Kid  *string         `json:"kid"`
		Crit json.RawMessage `json:"crit"`
		B64  json.RawMessage `json:"b64"`
	}
	if err := json.Unmarshal(decoded, &raw); err != nil {
		return nil, errors.New("its header is not a JSON object with string alg, typ and kid")
	}
	h := &jwsHeader{hasCrit: len(raw.Crit) > 0 || len(raw.B64) > 0}
	if raw.Alg != nil {
		h.Alg = *raw.Alg
	}
	if raw.Typ != nil {
		h.Typ = *raw.Typ
	}
	if raw.Kid != nil {
		h.Kid = *raw.Kid
	}
	return h, nil
}

// unixTime converts a NumericDate in seconds to a time.
func unixTime(seconds float64) time.Time {
	whole := int64(seconds)
	return time.Unix(whole, int64((seconds-float64(whole))*1e9))
}
