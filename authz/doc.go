// Package authz is Sotto's OAuth 2.0 authorization server: the fosite
// provider, the HTTP routes, authorization server metadata (RFC 8414), the
// JWKS, the signing keys and their encryption at rest, token
// introspection (RFC 7662), token revocation (RFC 7009), client
// authentication and the one writer of error responses.
//
// The token exchange grant itself lives in package exchange; authz wires
// it into fosite and serves it.
package authz
