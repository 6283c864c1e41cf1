// Package exchange implements the RFC 8693 token exchange grant that turns
// a corporate identity token into a narrowly scoped, minutes-long action
// token, and the policy that decides it.
//
// It owns subject-token validation (trusted corporate issuers and their
// keys), the scope catalog (which actions exist, for which audiences and
// groups, with which lifetime and step-up), the decision, and the
// fosite.TokenEndpointHandler that runs it. The handler asks the
// devicebind package to check the DPoP proof (RFC 9449) and writes the
// token record, the proof's replay record and the audit record in one
// transaction through a store interface of its own.
package exchange
