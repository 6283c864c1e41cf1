// Package stepup will own step-up authentication inside the token
// exchange: challenges bound to one exact request and device key,
// passkeys (WebAuthn), push approval with number matching, and the acr and
// amr values they produce. Until it exists, an action whose catalog entry
// demands step-up is refused with insufficient_user_authentication and no
// token is issued.
package stepup
