// Package storage owns Sotto's persistent state: signing keys, server-wide
// settings, access tokens, DPoP proof claims and the audit trail. It keeps
// them in SQLite (the embedded default, one file in WAL mode) or PostgreSQL
// (shared by several replicas) through the same gorm models, and applies
// versioned schema migrations.
//
// The token-exchange hot path goes through [Store.CommitExchange]. One writer
// goroutine commits the proof claims, issued tokens and audit records of many
// concurrent requests in one transaction (group commit), so every request in
// the batch shares the cost of one durable commit.
package storage
