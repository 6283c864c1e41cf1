// Package devicebind binds tokens to the key of the device that requested
// them.
//
// It owns the verification of DPoP proofs (RFC 9449), the JWK thumbprints
// that tokens carry as cnf.jkt (RFC 7638), and the normalization of the
// htu claim and the endpoint URI it is compared with (RFC 3986, Section 6).
//
// Replay detection is not in this package. A verified [Proof] carries its
// jti and JKT, and the server must reject a second use of the pair, for
// example with a unique insert in a database that all replicas share.
package devicebind
