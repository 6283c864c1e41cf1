// Package connector is the library a backend imports to accept Sotto action
// tokens. A [Validator] checks each request offline: the JWT access token
// (RFC 9068) against the issuer's JWKS, the DPoP proof at the resource
// (RFC 9449, Section 7) against the token's cnf.jkt, and the scope and
// authentication level that a route requires. Routes marked for it also
// ask the issuer's introspection endpoint (RFC 7662) whether the token is
// still active.
//
// Failures become the challenges of RFC 6750, Section 3, RFC 9449,
// Section 7.1 and RFC 9470, Section 3 in a WWW-Authenticate header with the
// DPoP scheme.
//
// The package imports nothing of the Sotto server, so a backend depends
// only on go-jose and the standard library.
package connector
