// Package connector will be the library a backend imports to accept
// action tokens: offline validation of the JWT against the issuer's JWKS,
// the DPoP proof at the resource (RFC 9449 §7), scope, audience and acr
// checks, and introspection for high-risk routes. It imports nothing of
// the server.
package connector
