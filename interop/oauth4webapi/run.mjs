// Interop check: an unmodified oauth4webapi client exchanges a corporate
// ID token for a DPoP-bound action token at Sotto (RFC 8693 through the
// library's generic grant request) and creates a ticket at the example
// connector with protectedResourceRequest, answering a use_dpop_nonce
// challenge the way the library's documentation shows.
//
// Usage: node run.mjs <issuer> <connector-url> <idp-key.jwk.json>
// It prints one line per step and exits with status 1 on the first failure.
import { readFileSync } from 'node:fs'
import { createPrivateKey, randomUUID, sign } from 'node:crypto'
import * as oauth from 'oauth4webapi'

const [issuerArg, connectorArg, idpKeyPath] = process.argv.slice(2)
if (!issuerArg || !connectorArg || !idpKeyPath) {
  console.error('usage: node run.mjs <issuer> <connector-url> <idp-key.jwk.json>')
  process.exit(2)
}

// signIDToken signs a demonstration corporate ID token with the
// development IdP key (ES256, JWS with the raw r||s signature).
function signIDToken (jwk) {
  const now = Math.floor(Date.now() / 1000)
  const header = { alg: 'ES256', typ: 'JWT', kid: jwk.kid }
  const claims = {
    iss: 'https://sso.corp.example',
    aud: 'sotto',
    sub: 'alice',
    groups: ['employees'],
    iat: now,
    exp: now + 600,
    auth_time: now - 60,
    acr: 'urn:corp:acr:mfa',
    amr: ['pwd', 'otp'],
    jti: randomUUID()
  }
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const input = `${encode(header)}.${encode(claims)}`
  const key = createPrivateKey({ key: jwk, format: 'jwk' })
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
  return `${input}.${signature.toString('base64url')}`
}

async function main () {
  const issuer = new URL(issuerArg)
  const insecure = { [oauth.allowInsecureRequests]: true }

  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }))
  console.log(`metadata: issuer ${as.issuer}`)

  const client = { client_id: 'voice-assistant' }
  const keyPair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])
  const DPoP = oauth.DPoP(client, keyPair)

  const idpKey = JSON.parse(readFileSync(idpKeyPath, 'utf8'))
  const parameters = new URLSearchParams({
    subject_token: signIDToken(idpKey),
    subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
    scope: 'ticket:create',
    audience: 'https://itsm.corp.example'
  })
  const exchange = () => oauth.genericTokenEndpointRequest(as, client, oauth.None(),
    'urn:ietf:params:oauth:grant-type:token-exchange', parameters, { DPoP, ...insecure })
  let tokens
  try {
    tokens = await oauth.processGenericTokenEndpointResponse(as, client, await exchange())
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err
    tokens = await oauth.processGenericTokenEndpointResponse(as, client, await exchange())
  }
  if (tokens.token_type !== 'dpop') throw new Error(`token_type is ${tokens.token_type}, expected DPoP`)
  console.log(`token exchange: token_type ${tokens.token_type}, expires_in ${tokens.expires_in}, scope ${tokens.scope}`)

  const target = new URL('/tickets', connectorArg)
  const headers = new Headers({ 'content-type': 'application/json' })
  const body = JSON.stringify({ title: 'The printer on floor 3 is jammed' })
  const call = () => oauth.protectedResourceRequest(tokens.access_token, 'POST', target, headers, body, { DPoP, ...insecure })
  let response
  let nonceChallenges = 0
  try {
    response = await call()
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err
    nonceChallenges++
    response = await call()
  }
  const ticket = await response.json()
  console.log(`connector: status ${response.status}, nonce challenges ${nonceChallenges}, ticket ${ticket.id}`)
  if (response.status !== 201) throw new Error(`connector returned status ${response.status}, expected 201`)
  console.log('interop ok')
}

main().catch((err) => {
  console.error(`interop failed: ${err.name}: ${err.message}`)
  process.exit(1)
})
