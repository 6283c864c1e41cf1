// Package login serves sign-in in a browser. It has the authorization
// endpoint of the authorization code grant with PKCE (RFC 6749 §4.1, RFC
// 7636) and pushed authorization requests (RFC 9126). The login is
// federated to the corporate IdP, where Sotto is an OpenID Connect
// relying party. It also serves the consent page and the browser side of
// logout (OpenID Connect RP-Initiated Logout 1.0).
//
// The code it issues is redeemed at the token endpoint by
// exchange.CodeHandler, which starts the Sotto session.
//
// It keeps no browser session of its own beyond one sign-in: the state
// of a sign-in (the authorization request, the state, nonce and PKCE
// verifier sent to the IdP, the CSRF token of the consent form) is kept
// server-side, found through a random handle in a cookie, and deleted
// when the code is issued or refused.
package login
