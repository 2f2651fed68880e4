/**
 * A real OpenID Connect provider on loopback for the sign-in tests (test/oidc-sign-in.test.ts): oidc-provider, a
 * certified implementation, with its development login and consent pages, in a process of its own (it is an ES
 * module). Its accounts live in memory and the test changes them between sign-ins:
 *   PUT /test-accounts/<id> with the account's claims (email, email_verified, preferred_username, groups) as JSON
 *   DELETE /test-accounts/<id>: the user is gone, so a refresh-token grant for them is refused.
 * Settings: OIDC_TEST_PORT, OIDC_TEST_CLIENTS (JSON: client_id, client_secret, redirect_uris). Prints
 * `OIDC_PROVIDER_READY <issuer>` once listening.
 */
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_TEST_PORT);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.OIDC_TEST_CLIENTS ?? '[]') as {
  client_id: string;
  client_secret: string;
  redirect_uris: string[];
}[];
const accounts = new Map<string, Record<string, unknown>>();

const provider = new Provider(issuer, {
  clients: clients.map((client) => ({
    ...client,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  })),
  // Looked up at every sign-in and every refresh-token grant: a removed account makes the grant fail.
  async findAccount(_ctx, id) {
    const claims = accounts.get(id);
    return claims && { accountId: id, claims: () => ({ sub: id, ...claims }) };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  // Like most company providers: a refresh token for every client allowed the grant, without offline_access consent.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  pkce: { required: () => true },
  cookies: { keys: ['test-only-cookie-key'] },
  features: { devInteractions: { enabled: true } },
});

const handle = provider.callback();
const server = createServer((req, res) => {
  const account = /^\/test-accounts\/([^/?]+)$/.exec(req.url ?? '');
  if (!account) return handle(req, res);
  const id = decodeURIComponent(account[1]!);
  if (req.method === 'DELETE') {
    accounts.delete(id);
    res.writeHead(204).end();
    return;
  }
  let body = '';
  req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
  req.on('end', () => {
    accounts.set(id, JSON.parse(body) as Record<string, unknown>);
    res.writeHead(204).end();
  });
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`OIDC_PROVIDER_READY ${issuer}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
