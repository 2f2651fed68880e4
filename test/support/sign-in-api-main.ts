/**
 * The API's app alone, for the sign-in tests (test/oidc-sign-in.test.ts), in a process of its own so openid-client (an
 * ES module, which jest cannot load here) runs as it does under `npm run api`: the real createApp, its sign-in
 * settings read from this process's environment by readSignInSettings as api/main.ts reads them (GITSPACES_PUBLIC_URL,
 * GITSPACES_OIDC_*, GITSPACES_SESSION_*), the session key from GITSPACES_SESSION_KEY or the data dir, PGlite in memory.
 * No Temporal: the sign-in tests call no lifecycle route. Besides the admin (GITSPACES_ADMIN_TOKEN) it creates the
 * invited users TEST_INVITES names (`name:email,…`); GITSPACES_API_AUTH_FAILURES_PER_MINUTE and
 * GITSPACES_API_TRUSTED_PROXIES as the API reads them. Prints `SIGN_IN_API_READY <url>` once listening.
 */
import { mkdtemp } from 'node:fs/promises';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createApp } from '../../api/app';
import { SessionKey } from '../../api/auth/session-key';
import { readSignInSettings } from '../../api/auth/settings';
import { EventFeed } from '../../api/event-feed';
import type { LifecycleService } from '../../api/lifecycle-requests';
import type { AccessTokenIssuer } from '../../api/access-tokens';
import { DEFAULT_API_LIMITS } from '../../api/limits';
import { ensureAdmin } from '../../api/server';
import { TrustedProxies } from '../../common/client-address';
import { ConfigReader } from '../../common/config';
import { createLogger } from '../../common/logger';
import { openDatabase } from '../../db/connect';
import { createStore } from '../../db/store';

async function main() {
  const config = new ConfigReader(process.env);
  const port = config.port('GITSPACES_API_PORT', 0);
  const signIn = readSignInSettings(config, `http://127.0.0.1:${port}`);
  const adminToken = config.required('GITSPACES_ADMIN_TOKEN', 'the tests call the API as the admin');
  const invites = config.string('TEST_INVITES', '');
  const authFailuresPerMinute = config.positiveInt(
    'GITSPACES_API_AUTH_FAILURES_PER_MINUTE',
    DEFAULT_API_LIMITS.authFailuresPerMinute,
  );
  const trustedProxies = config.parsed('GITSPACES_API_TRUSTED_PROXIES', TrustedProxies.parse);
  config.done();

  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-sign-in-api-'));
  const logger = createLogger('api');
  const db = await openDatabase({ kind: 'pglite' });
  const store = createStore(db);
  await ensureAdmin(store, { adminToken, dataDir });
  for (const invite of invites.split(',').filter(Boolean)) {
    const [name, email] = invite.split(':');
    await store.createUser(name!, 'member', email!);
  }
  const eventFeed = new EventFeed({ store, pollMs: 200, logger });
  const app = createApp({
    store,
    accessTokens: {} as AccessTokenIssuer,
    lifecycle: {} as LifecycleService,
    logger,
    onInfrastructureCreated: () => Promise.resolve(),
    ready: () => store.ping(),
    eventFeed,
    limits: { authFailuresPerMinute },
    ...(trustedProxies ? { trustedProxies } : {}),
    signIn: { settings: signIn, key: await SessionKey.load({ dataDir, key: signIn.sessionKey }) },
    dashboardDir: path.join(dataDir, 'no-dashboard'),
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(port, '127.0.0.1', () => resolve(s));
  });
  process.stdout.write(`SIGN_IN_API_READY http://127.0.0.1:${port}\n`);
  process.on('SIGTERM', () => {
    eventFeed.close();
    server.closeAllConnections();
    server.close(() => void db.destroy().then(() => process.exit(0)));
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
