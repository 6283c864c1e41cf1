// Package stepup owns step-up authentication inside the token exchange:
// challenges bound to one exact request and device key, passkeys
// (WebAuthn Level 3 registration, the ceremony page and assertions bound
// to one challenge), push approval with number matching from an enrolled
// approver device, the push rate limits, the notifiers that deliver
// challenges, and the acr and amr values a completed step-up puts in the
// action token.
//
// The exchange calls Begin when an action needs step-up and Redeem when
// the client repeats the exchange with step_up_challenge. The challenge
// itself is written and consumed in the exchange's own transaction, so a
// challenge is created only with its audit record and used at most once.
package stepup
