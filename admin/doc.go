// Package admin serves the admin API under /v1/ and the web console under
// /console/ on the admin listener. Callers authenticate with admin access
// tokens that Sotto itself issues by the client_credentials grant (RFC
// 6749, Section 4.4), sent as bearer tokens (RFC 6750), and every
// endpoint requires one admin scope. Every call is an audit record.
package admin
