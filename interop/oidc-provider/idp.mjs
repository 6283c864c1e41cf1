// A corporate OpenID provider for Sotto's browser login tests: an
// unmodified oidc-provider on a loopback port, with its development login
// and consent forms. Any login name signs in; the account's groups come
// from the name: "alice" is in employees, any other name in no group.
//
// Usage: node idp.mjs SOTTO_ISSUER
// Prints "ready ISSUER" once it listens, and exits when stdin closes.
import http from 'node:http';
import Provider from 'oidc-provider';

const sottoIssuer = process.argv[2];
if (!sottoIssuer) {
  console.error('usage: node idp.mjs SOTTO_ISSUER');
  process.exit(2);
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'sotto',
      client_secret: 'sotto-login-test-secret',
      redirect_uris: [`${sottoIssuer}/login/callback`],
      post_logout_redirect_uris: [`${sottoIssuer}/logout/done`],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      require_auth_time: true,
    }],
    claims: {
      openid: ['sub'],
      email: ['email'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'profile', 'email', 'groups'],
    // Sotto reads the claims from the ID token, not from userinfo.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    cookies: { keys: ['sotto-interop-cookie-key'] },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: `${id}@corp.example`,
            name: id,
            groups: id === 'alice' ? ['employees'] : [],
          };
        },
      };
    },
  });
  // The development forms are the point of this provider, so its start
  // warnings about them are expected.
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(`ready ${issuer}`);
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
