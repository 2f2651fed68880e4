import http from 'node:http';
import { TrustedProxies } from '../common/client-address';
import type { RateLimit } from '../common/rate-limit';
import type { Logger } from '../common/logger';
import { UpstreamPool } from '../common/upstream-client';
import { createGatewayActivity } from './activity';
import { createAdminHandler } from './admin';
import type { AccessTokenVerifier } from './auth';
import { createConnections } from './connections';
import { TargetUrls } from './forwarding';
import { DEFAULT_MAX_CONNECTIONS_PER_CLIENT } from './limits';
import { GatewayMetrics } from './metrics';
import type { GatewayParts } from './parts';
import { createRefusals } from './refusals';
import { createRequestHandlers } from './requests';
import type { RoutesStore } from './routes-store';
import { domainSuffixOf } from './routing';
import { listen } from '../common/net';
import { closeServer, createPublicServer, type ListenerTimeouts } from './servers';
import { createSessions } from './session';
import { createTunnels } from './tunnels';
import { createUpgradeHandler } from './upgrade';

export { GATEWAY_COOKIE } from './session';

/**
 * The CDE gateway (DESIGN.md §4), the only door into a gitspace machine.
 *
 * Routing: `/gitspaces/<id>/<rest>` is forwarded to the route target as `/<rest>`: the prefix is STRIPPED, so the IDE
 * always sees itself at `/` and must use relative URLs (it gets `X-Forwarded-Prefix` to know better). With a domain
 * configured, `<id>.<domain>/<path>` is forwarded as `/<path>`. Every request needs an access token for that very
 * gitspace and the run its route was registered by (query on first visit, then the cookie; or `Authorization:
 * Bearer`), and only registered route targets are ever dialled: the request target and `Host` only select a route,
 * never an address. Everything forwarded carries the route's secret (common/gateway-route.ts), which is how the agent
 * knows the gateway sent it.
 *
 * SSH: `/gitspaces/<id>/_gitspaces/ssh` (any spelling) is a WebSocket the gateway admits only with an ssh-scope token as
 * a bearer, forwarded to the agent's own SSH path with the token's key fingerprints; ssh tokens open nothing else.
 *
 * The public listener is Node's own HTTP/1.1 server (llhttp, strict mode), with the checks it leaves to us on top: see
 * `checkRequestHead` (request-head.ts). Only WebSocket upgrades are tunnelled.
 *
 * Path routing puts every gitspace on one browser origin, so their pages can reach each other with the user's
 * cookies; a domain (host routing) gives each gitspace its own origin and is the setting for shared installations.
 *
 * This file puts the parts together; each concern has its own file:
 * - routing.ts: which gitspace and upstream path a request target and Host select;
 * - session.ts: the access token (query, bearer, cookie), the cookie exchange, revocation and cross-site checks;
 * - requests.ts and upgrade.ts: the HTTP and the WebSocket path through the gateway, check by check;
 * - forwarding.ts: the headers on the way up (credentials out, forwarding headers and route secret in) and down;
 * - proxy-claims.ts: the client's address and scheme, as a trusted reverse proxy tells them;
 * - request-head.ts: what llhttp leaves to us about a request head; refusals.ts: the gateway's own answers;
 * - connections.ts: open connections, the per-client cap, and ending a gitspace's connections;
 * - activity.ts: what the auto-stop reads of each gitspace's use (forwarded requests, open tunnels);
 * - tunnels.ts: how long a WebSocket lives (its token's expiry), SSH tunnels' ids and renewals; ssh-requests.ts: the
 *   plain requests on the SSH paths (the renewal);
 * - servers.ts: the public listener's settings and events, and starting and stopping a listener.
 */

/** Default deadline for a gitspace machine's response headers. */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;

export interface GatewayOptions {
  logger: Logger;
  routes: RoutesStore;
  verifier: AccessTokenVerifier;
  /** Bearer secret of the admin listener. */
  adminToken: string;
  /** Enables host routing (`<id>.<domain>`). */
  domain?: string;
  upstreamTimeoutMs?: number;
  /**
   * IP addresses and CIDR ranges of reverse proxies in front of the gateway: only connections from these have their
   * `X-Forwarded-For`/`-Proto`/`-Host` believed (and are exempt from the per-client connection cap).
   */
  trustedProxies?: TrustedProxies;
  /** Open connections one client address may hold (default {@link DEFAULT_MAX_CONNECTIONS_PER_CLIENT}). */
  maxConnectionsPerClient?: number;
  /** Failed token checks one client address may cause per window before it gets 429 (default 20 per minute). */
  authFailureLimit?: RateLimit;
  /** The clock of the per-client slow-down (tests freeze it). */
  now?: () => number;
  /** Deadlines of the public listener (tests shorten them); Node's defaults otherwise. */
  timeouts?: ListenerTimeouts;
  /** Whether `GET /metrics` on the admin listener includes the process's own metrics (prom-client's defaults); yes. */
  processMetrics?: boolean;
  /**
   * The dashboard's base URL (`https://gitspaces.example.com`): a browser that opens a gitspace without a valid
   * session is sent to its `/open/<gitspace id>` to sign in (sign-in-page.ts).
   */
  dashboardUrl?: string;
}

export interface ListenOptions {
  host: string;
  port: number;
  adminHost?: string;
  adminPort: number;
}

export interface Gateway {
  /** Starts both listeners; resolves with their base URLs (ports resolved when 0 was asked for). */
  listen(options: ListenOptions): Promise<{ publicUrl: string; adminUrl: string }>;
  /** Ends every open connection of a gitspace now; returns how many there were. */
  closeConnections(gitspaceId: string): number;
  /** Open client connections that carried requests of a gitspace (keep-alive HTTP and WebSockets). */
  connectionCount(gitspaceId: string): number;
  /** What `GET /metrics` on the admin listener reports (gateway/metrics.ts). */
  metrics: GatewayMetrics;
  close(): Promise<void>;
}

/** Builds the gateway: a public request/upgrade handler and the admin API, on two servers not yet listening. */
export function createGateway(options: GatewayOptions): Gateway {
  const { logger, routes, verifier } = options;
  const trusted = options.trustedProxies ?? new TrustedProxies();
  const connections = createConnections({
    logger,
    trusted,
    maxPerClient: options.maxConnectionsPerClient ?? DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
  });
  const tunnels = createTunnels(logger);
  const metrics = new GatewayMetrics(
    { openConnections: connections.total, openSshTunnels: tunnels.count },
    { defaultMetrics: options.processMetrics ?? true },
  );
  const pool = new UpstreamPool();
  const parts: GatewayParts = {
    logger,
    routes,
    sessions: createSessions({ verifier, trusted, authFailureLimit: options.authFailureLimit, now: options.now }),
    connections,
    tunnels,
    activity: createGatewayActivity(),
    refusals: createRefusals(metrics, options.dashboardUrl?.replace(/\/+$/, '')),
    metrics,
    trusted,
    targets: new TargetUrls(),
    pool,
    timeoutMs: options.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS,
    domainSuffix: domainSuffixOf(options.domain),
  };

  const publicServer = createPublicServer({
    requests: createRequestHandlers(parts),
    upgrade: createUpgradeHandler(parts),
    refusals: parts.refusals,
    connections,
    timeouts: options.timeouts,
  });
  const adminServer = http.createServer(
    createAdminHandler({
      routes,
      adminToken: options.adminToken,
      logger: logger.child('admin'),
      onRouteGone: connections.closeGitspace,
      metrics,
      activity: parts.activity,
    }),
  );

  return {
    async listen({ host, port, adminHost, adminPort }) {
      const publicUrl = await listen(publicServer, port, host);
      const adminUrl = await listen(adminServer, adminPort, adminHost ?? host);
      return { publicUrl, adminUrl };
    },
    closeConnections: connections.closeGitspace,
    connectionCount: connections.countOf,
    metrics,
    async close() {
      connections.closeAll();
      pool.destroy();
      await Promise.all([closeServer(publicServer), closeServer(adminServer)]);
    },
  };
}
