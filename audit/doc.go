// Package audit defines Sotto's decision record: the evidence that an
// exchange was issued, refused or answered with a step-up challenge, and
// that a token was revoked.
//
// A record names who asked (subject and issuer), from which device (the
// DPoP key thumbprint), through which client, for which action and
// audience, under which catalog entry, what was decided and why, and which
// token resulted. It never holds a token, a DPoP proof, a secret or a
// transcript: a record can be read by anyone who may read the log without
// giving them anything they could replay.
package audit
