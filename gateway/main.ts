import { runMain } from '../common/main';
import path from 'node:path';
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import { ConfigReader } from '../common/config';
import { preparePrivateDataDir } from '../common/data-dir';
import { createLogger, readLogSettings } from '../common/logger';
import { GATEWAY_ADMIN_TOKEN_FILE, readOrCreateGatewayAdminToken } from '../common/gateway-route';
import { createAccessTokenVerifier } from './auth';
import { TrustedProxies } from '../common/client-address';
import { DEFAULT_UPSTREAM_TIMEOUT_MS, createGateway } from './gateway';
import { DEFAULT_MAX_CONNECTIONS_PER_CLIENT } from './limits';
import { createFileRoutesStore } from './routes-store';
import { parseDashboardUrl } from './sign-in-page';

/** File (in the data dir) holding the admin secret when GITSPACES_GATEWAY_ADMIN_TOKEN is not set. */

/** The CDE gateway's entry point (`npm run gateway`). */
async function main(): Promise<{ stop(): Promise<void> }> {
  const config = new ConfigReader(process.env);
  const port = config.port('GITSPACES_GATEWAY_PORT', 3001);
  const adminPort = config.port('GITSPACES_GATEWAY_ADMIN_PORT', 3002);
  const host = config.string('GITSPACES_GATEWAY_HOST', '127.0.0.1');
  const adminHost = config.string('GITSPACES_GATEWAY_ADMIN_HOST', host);
  const configuredAdminToken = config.string('GITSPACES_GATEWAY_ADMIN_TOKEN');
  // One URL, or several comma-separated (each API replica's): keys come from the first that has the token's key.
  const jwksUrls = config.parsed('GITSPACES_JWKS_URL', (raw) =>
    (raw ?? 'http://127.0.0.1:3000/api/v1/.well-known/jwks.json').split(',').map((url) => {
      const parsed = URL.canParse(url.trim()) ? new URL(url.trim()) : undefined;
      if (parsed?.protocol !== 'http:' && parsed?.protocol !== 'https:') {
        throw new Error(`must be http(s) URLs, comma-separated; got '${url.trim()}'`);
      }
      return parsed.toString();
    }),
  );
  const domain = config.string('GITSPACES_GATEWAY_DOMAIN');
  const upstreamTimeoutMs = config.positiveInt('GITSPACES_GATEWAY_UPSTREAM_TIMEOUT_MS', DEFAULT_UPSTREAM_TIMEOUT_MS);
  const dataDir = path.resolve(config.string('GITSPACES_DATA_DIR', './.gitspaces'));
  const maxConnectionsPerClient = config.positiveInt(
    'GITSPACES_GATEWAY_MAX_CONNECTIONS_PER_CLIENT',
    DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
  );
  // Comma-separated IPs and CIDRs of reverse proxies whose X-Forwarded-* headers are believed; none by default.
  const trustedProxies = config.parsed('GITSPACES_GATEWAY_TRUSTED_PROXIES', TrustedProxies.parse);
  // Where a browser that opens a gitspace without a session goes to sign in (the dashboard's /open/<id>).
  const dashboardUrl = config.parsed('GITSPACES_DASHBOARD_URL', (raw) =>
    raw === undefined ? undefined : parseDashboardUrl(raw),
  );
  const logSettings = config.include(() => readLogSettings(process.env));
  config.done();
  await preparePrivateDataDir(dataDir);

  const logger = createLogger('gateway', logSettings);
  const adminToken = configuredAdminToken ?? (await readOrCreateGatewayAdminToken(dataDir)).value;
  const routes = await createFileRoutesStore(dataDir);
  // Keys are fetched on first use and cached; an unknown key id triggers one refetch (rate-limited by jose).
  const keySets = jwksUrls!.map((url) =>
    createRemoteJWKSet(new URL(url), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000 }),
  );
  // A replica that is down (or lacks the key) is passed over, and the one that last answered is asked first, so a dead
  // replica costs a failed fetch once, not on every token; when none has the key, the last one's error is the answer.
  let preferred = 0;
  const keys: JWTVerifyGetKey = async (header, token) => {
    let failure: unknown;
    for (let tried = 0; tried < keySets.length; tried++) {
      const i = (preferred + tried) % keySets.length;
      try {
        const key = await keySets[i]!(header, token);
        preferred = i;
        return key;
      } catch (error) {
        failure = error;
      }
    }
    throw failure;
  };
  const gateway = createGateway({
    logger,
    routes,
    verifier: createAccessTokenVerifier({ keys }),
    adminToken,
    domain,
    upstreamTimeoutMs,
    trustedProxies: trustedProxies!,
    maxConnectionsPerClient,
    dashboardUrl,
  });
  const { publicUrl, adminUrl } = await gateway.listen({ host, port, adminHost, adminPort });
  logger.info('gateway listening', {
    publicUrl,
    adminUrl,
    routes: routes.list().length,
    jwksUrls,
    domain,
    trustedProxies: trustedProxies!.entries,
    maxConnectionsPerClient,
    dashboardUrl,
    adminTokenFrom: configuredAdminToken
      ? 'from GITSPACES_GATEWAY_ADMIN_TOKEN'
      : path.join(dataDir, GATEWAY_ADMIN_TOKEN_FILE),
  });
  return {
    stop: () => {
      logger.info('gateway stopping');
      return gateway.close();
    },
  };
}

runMain(main);
