import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { GITSPACE_ID_PATTERN, type AccessTokenClaims } from '../contracts/access-token';
import { bearerToken } from '../common/bearer';
import { ROUTE_SECRET_HEADER, isAgentPrivatePath } from '../common/gateway-route';
import { TokenBuckets, clientAddressKey, unmapped, type RateLimit } from '../common/rate-limit';
import {
  UpstreamTimeoutError,
  endToEndHeaders,
  nodeClient,
  proxyHttp,
  proxyUpgrade,
  type RawHeaders,
  type UpstreamError,
} from '../common/http-proxy';
import { isHeaderNamed, writeRawResponse } from '../common/http1';
import type { Logger } from '../common/logger';
import { UpstreamPool, originOf } from '../common/upstream-client';
import { createAdminHandler } from './admin';
import { GatewayMetrics, type ExchangeKind } from './metrics';
import {
  ExpiredAccessTokenError,
  InvalidAccessTokenError,
  KeysUnavailableError,
  MissingAccessTokenError,
  RevokedAccessTokenError,
  WrongGitspaceTokenError,
  type AccessTokenVerifier,
} from './auth';
import { TrustedProxies } from '../common/client-address';
import { ConnectionLimiter, DEFAULT_AUTH_FAILURE_LIMIT, DEFAULT_MAX_CONNECTIONS_PER_CLIENT } from './limits';
import { decodePath, gitspaceOfHost, readCookie, rebuildQuery, splitToken, withoutCookie } from './request-target';
import type { GatewayRoute, RoutesStore } from './routes-store';

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
 * The public listener is Node's own HTTP/1.1 server (llhttp, strict mode), with the checks it leaves to us on top: see
 * {@link checkRequestHead}. Only WebSocket upgrades are tunnelled.
 *
 * Path routing puts every gitspace on one browser origin, so their pages can reach each other with the user's
 * cookies; a domain (host routing) gives each gitspace its own origin and is the setting for shared installations.
 */

/** Name of the gateway's session cookie; stripped from every forwarded request and upstream `Set-Cookie`. */
export const GATEWAY_COOKIE = 'gitspaces_access';

/** Path prefix of path routing. */
export const GITSPACES_PATH_PREFIX = '/gitspaces/';

/** Default deadline for a gitspace machine's response headers. */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;

/** Largest request head (request line and headers), and most header lines, the public listener accepts. */
const MAX_HEAD_BYTES = 16 * 1024;
const MAX_HEADER_LINES = 200;
/** How long a refused connection keeps reading (and dropping) what the client still sends, so it sees our answer. */
const LINGER_MS = 2_000;

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
  timeouts?: { headersMs?: number; requestMs?: number; keepAliveMs?: number };
  /** Whether `GET /metrics` on the admin listener includes the process's own metrics (prom-client's defaults); yes. */
  processMetrics?: boolean;
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

/** A refusal the gateway answers itself: status, machine-readable code and a sentence for the user. */
interface Refusal {
  status: number;
  code: string;
  message: string;
  /** The connection ends after the answer (a request we will not read further, or the pipeline behind it). */
  close?: boolean;
  /** For 429: seconds to wait. */
  retryAfter?: number;
}

const GITSPACES_OF_SOCKET = Symbol('gitspaces.gatewayGitspaces');
/** Set on a connection whose last answer ends it: requests pipelined behind that answer are never handled. */
const CLOSING = Symbol('gitspaces.gatewayClosing');
/** Set on a request that waits for `100 Continue` (sent once it is authorised and forwarded). */
const EXPECTS_CONTINUE = Symbol('gitspaces.gatewayExpectsContinue');
type TrackedSocket = Duplex & { [GITSPACES_OF_SOCKET]?: Set<string>; [CLOSING]?: boolean };
type Request = IncomingMessage & { [EXPECTS_CONTINUE]?: boolean };

/** A request's token, checked for the gitspace it asks for, and where it was found. */
interface Authenticated {
  claims: AccessTokenClaims;
  source: 'query' | 'header' | 'cookie';
  token: string;
}

/** Where a request goes, once its request target and Host are understood. */
interface Resolved {
  gitspaceId: string;
  /** Path sent upstream, starting with `/`. */
  upstreamPath: string;
  /** Query without the token parameter (may be empty). */
  query: string;
  queryToken: string | undefined;
  /** The public path prefix (`/gitspaces/<id>`) under path routing, '' under host routing. */
  prefix: string;
  publicPath: string;
}

/** Builds the gateway: a public request/upgrade handler and the admin API, on two servers not yet listening. */
export function createGateway(options: GatewayOptions): Gateway {
  const { logger, routes, verifier } = options;
  const timeoutMs = options.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  const domainSuffix = options.domain ? `.${options.domain.toLowerCase().replace(/^\.+|\.+$/g, '')}` : undefined;
  const trusted = options.trustedProxies ?? new TrustedProxies();
  const connectionLimiter = new ConnectionLimiter(
    options.maxConnectionsPerClient ?? DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
  );
  const authFailures = new TokenBuckets({
    ...(options.authFailureLimit ?? DEFAULT_AUTH_FAILURE_LIMIT),
    now: options.now,
  });
  const pool = new UpstreamPool();
  const metrics = new GatewayMetrics(
    { openConnections: () => connections.size },
    { defaultMetrics: options.processMetrics ?? true },
  );
  // Every refusal is counted by its code: a request's, or an upgrade's (answered on the raw socket).
  const refuse = (req: IncomingMessage, res: ServerResponse, refusal: Refusal): void => {
    metrics.refused('http', refusal.code);
    sendRefusal(req, res, refusal);
  };
  const refuseRaw = (socket: Duplex, refusal: Refusal, kind: ExchangeKind = 'websocket'): void => {
    metrics.refused(kind, refusal.code);
    sendRawRefusal(socket, refusal);
  };
  // Client connections that carried requests of each gitspace (keep-alive ones and WebSockets), so a removed route
  // ends them at once. Tracked per connection, not per request: a keep-alive connection is added once.
  const open = new Map<string, Set<Duplex>>();
  // Route targets parsed once, not per request (they are validated origins).
  const targetUrls = new Map<string, URL>();
  const parsedTarget = (target: string): URL => {
    let url = targetUrls.get(target);
    if (!url) {
      if (targetUrls.size > 10_000) targetUrls.clear();
      targetUrls.set(target, (url = new URL(target)));
    }
    return url;
  };

  const track = (gitspaceId: string, socket: TrackedSocket) => {
    let gitspaces = socket[GITSPACES_OF_SOCKET];
    if (gitspaces?.has(gitspaceId)) return;
    if (!gitspaces) {
      gitspaces = socket[GITSPACES_OF_SOCKET] = new Set();
      socket.once('close', untrack);
    }
    gitspaces.add(gitspaceId);
    let sockets = open.get(gitspaceId);
    if (!sockets) open.set(gitspaceId, (sockets = new Set()));
    sockets.add(socket);
  };
  function untrack(this: TrackedSocket) {
    for (const gitspaceId of this[GITSPACES_OF_SOCKET] ?? []) {
      const sockets = open.get(gitspaceId);
      sockets?.delete(this);
      if (sockets?.size === 0) open.delete(gitspaceId);
    }
  }

  const closeConnections = (gitspaceId: string) => {
    const sockets = open.get(gitspaceId);
    if (!sockets) return 0;
    open.delete(gitspaceId);
    const count = sockets.size;
    // Ending the client connection ends its exchange in flight too (and with it the upstream connection).
    for (const socket of sockets) socket.destroy();
    if (count > 0) logger.info('closed open connections of a removed route', { gitspaceId, count });
    return count;
  };

  function resolve(req: IncomingMessage): Resolved | Refusal {
    const rawUrl = req.url ?? '';
    // Only origin-form targets: an absolute URI (`GET http://elsewhere/`) must never choose where we connect.
    if (!rawUrl.startsWith('/') || rawUrl.startsWith('//')) {
      return {
        status: 400,
        code: 'bad_request_target',
        message: 'only paths are accepted as request targets',
        close: true,
      };
    }
    const q = rawUrl.indexOf('?');
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const decoded = decodePath(path);
    if (decoded === undefined) {
      return {
        status: 400,
        code: 'bad_path',
        message: 'paths with dot segments, backslashes or broken escapes are refused',
        close: true,
      };
    }
    const { query, token: queryToken } = splitToken(q < 0 ? '' : rawUrl.slice(q + 1));

    const hostId = domainSuffix ? gitspaceOfHost(req.headers.host, domainSuffix) : undefined;
    if (hostId) {
      if (isAgentPrivatePath(decoded)) return notIdePath();
      return { gitspaceId: hostId, upstreamPath: path, query, queryToken, prefix: '', publicPath: path };
    }

    if (!path.startsWith(GITSPACES_PATH_PREFIX)) {
      return {
        status: 404,
        code: 'not_found',
        message: `nothing here: gitspaces are under ${GITSPACES_PATH_PREFIX}<id>/`,
      };
    }
    const slash = path.indexOf('/', GITSPACES_PATH_PREFIX.length);
    const gitspaceId = path.slice(GITSPACES_PATH_PREFIX.length, slash < 0 ? undefined : slash);
    if (!GITSPACE_ID_PATTERN.test(gitspaceId)) {
      return { status: 404, code: 'not_found', message: 'no such gitspace' };
    }
    const prefix = GITSPACES_PATH_PREFIX + gitspaceId;
    // The prefix has no escapes, so the decoded path is the prefix followed by the decoded upstream path.
    if (isAgentPrivatePath(decoded.slice(prefix.length))) return notIdePath();
    // `/gitspaces/<id>` has no trailing slash: send the browser to `/gitspaces/<id>/` so relative URLs and the cookie
    // path line up (handled by the caller as a redirect).
    const upstreamPath = slash < 0 ? '' : path.slice(slash);
    return { gitspaceId, upstreamPath, query, queryToken, prefix, publicPath: path };
  }

  /** The client address behind a request: the socket's, or what a trusted proxy says it forwarded. */
  function clientAddress(req: IncomingMessage): string {
    return trusted.clientOf(req.socket.remoteAddress ?? '', text(req.headers['x-forwarded-for']));
  }

  /**
   * Finds the token (query, then `Authorization: Bearer`, then the cookie) and checks it for this gitspace: at once
   * for a token seen before (no promise on the hot path), else after verifying its signature — unless this client has
   * used up its failed checks, which gets 429 without any verifying.
   */
  function authenticate(
    req: IncomingMessage,
    target: Resolved,
  ): Authenticated | Refusal | Promise<Authenticated | Refusal> {
    const headerToken = bearerToken(req.headers.authorization);
    const cookieToken = readCookie(req.headers.cookie, GATEWAY_COOKIE);
    const source = target.queryToken ? 'query' : headerToken ? 'header' : 'cookie';
    const token = target.queryToken ?? headerToken ?? cookieToken;
    try {
      const cached = verifier.verifyCached(token, target.gitspaceId);
      if (cached) return { claims: cached, source, token: token! };
    } catch (error) {
      return refusalOf(error);
    }
    const client = clientAddressKey(clientAddress(req));
    const retryAfter = authFailures.wait(client);
    if (retryAfter > 0) {
      return {
        status: 429,
        code: 'too_many_failures',
        message: `too many requests with invalid access tokens from this address: try again in ${retryAfter} s`,
        retryAfter,
      };
    }
    return verifier.verify(token, target.gitspaceId).then(
      (claims) => ({ claims, source, token: token! }),
      (error: unknown) => {
        const refusal = refusalOf(error);
        if (refusal.code === 'token_invalid') authFailures.take(client);
        return refusal;
      },
    );
  }

  function forwardHeaders(req: IncomingMessage, target: Resolved, route: GatewayRoute): RawHeaders {
    // Gateway credentials stop here: the bearer header, our cookie (other cookies are the IDE's) and, via the path
    // rewrite, the token query parameter. The forwarding headers and the route secret are ours, whatever the client
    // sent.
    const headers = endToEndHeaders(req.rawHeaders, REPLACED_REQUEST_HEADERS);
    const { authorization, cookie, host } = req.headers;
    if (authorization && !bearerToken(authorization)) headers.push('authorization', authorization);
    const ideCookies = withoutCookie(cookie, GATEWAY_COOKIE);
    if (ideCookies) headers.push('cookie', ideCookies);
    const peer = unmapped(req.socket.remoteAddress ?? '');
    const fromProxy = !trusted.none && trusted.trusts(peer);
    const priorFor = fromProxy ? text(req.headers['x-forwarded-for']) : undefined;
    const priorHost = fromProxy ? firstValue(text(req.headers['x-forwarded-host'])) : undefined;
    headers.push(
      'x-forwarded-for',
      priorFor ? `${priorFor}, ${peer}` : peer,
      'x-forwarded-proto',
      schemeOf(req, fromProxy),
      ROUTE_SECRET_HEADER,
      route.secret,
    );
    if (priorHost || host) headers.push('x-forwarded-host', (priorHost || host)!);
    if (target.prefix) headers.push('x-forwarded-prefix', target.prefix);
    return headers;
  }

  /** `https` over TLS, or when a trusted proxy says so; `http` otherwise, whatever the client claims. */
  function schemeOf(req: IncomingMessage, fromProxy?: boolean): 'http' | 'https' {
    if ((req.socket as { encrypted?: boolean }).encrypted === true) return 'https';
    if (fromProxy ?? (!trusted.none && trusted.trusts(unmapped(req.socket.remoteAddress ?? '')))) {
      const claimed = firstValue(text(req.headers['x-forwarded-proto']))?.toLowerCase();
      if (claimed === 'https') return 'https';
    }
    return 'http';
  }

  function upstreamTarget(target: Resolved): string {
    return target.upstreamPath + (target.query ? `?${target.query}` : '');
  }

  /** Keeps the IDE's redirects and cookies inside its own prefix, and never lets it set the gateway's cookie. */
  function rewriteResponse(target: Resolved, origin: string, kind: ExchangeKind, startedAt: number) {
    return (headers: RawHeaders): RawHeaders => {
      metrics.answered(kind, startedAt);
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i]!;
        if (isHeaderNamed(name, 'location')) {
          headers[i + 1] = rewriteLocation(headers[i + 1]!, target.prefix, origin);
        } else if (isHeaderNamed(name, 'set-cookie')) {
          const cookie = headers[i + 1]!;
          if (cookie.trimStart().startsWith(`${GATEWAY_COOKIE}=`)) {
            headers.splice(i, 2);
            i -= 2;
          } else if (target.prefix) {
            headers[i + 1] = cookie.replace(/;\s*path=\//i, `; Path=${target.prefix}/`);
          }
        } else if (isHeaderNamed(name, ROUTE_SECRET_HEADER)) {
          // An upstream that echoes the secret back does not get to show it to the client.
          headers.splice(i, 2);
          i -= 2;
        }
      }
      return headers;
    };
  }

  function onRequest(req: Request, res: ServerResponse): void | Promise<void> {
    const socket = req.socket as TrackedSocket;
    // Pipelined behind an answer that ends the connection: never handled (the connection closes after that answer).
    if (socket[CLOSING]) return;
    const bad = checkRequestHead(req);
    if (bad) return refuse(req, res, bad);
    if (req.url === '/healthz' && !(domainSuffix && gitspaceOfHost(req.headers.host, domainSuffix))) {
      return sendJson(res, 200, { status: 'ok' });
    }
    const target = resolve(req);
    if ('status' in target) return refuse(req, res, target);
    if (target.prefix && target.upstreamPath === '') {
      const location = `${target.prefix}/${rebuildQuery(target.query, target.queryToken)}`;
      metrics.redirected();
      res.writeHead(308, ['location', location, 'content-length', '0']);
      return void res.end();
    }
    const auth = authenticate(req, target);
    if (auth instanceof Promise) return auth.then((checked) => forward(req, res, target, checked));
    forward(req, res, target, auth);
  }

  /** The rest of a request once its token was checked: the cookie exchange, or the proxied exchange itself. */
  function forward(req: Request, res: ServerResponse, target: Resolved, auth: Authenticated | Refusal): void {
    if ('status' in auth) return refuse(req, res, auth);
    if (auth.source === 'cookie' && isCrossSiteSubresource(req)) {
      return refuse(req, res, { status: 403, code: 'cross_site', message: 'requests from other sites are refused' });
    }
    const route = routes.get(target.gitspaceId);
    if (route && route.runId !== auth.claims.runId) return refuse(req, res, revoked(target.gitspaceId, auth));
    if (auth.source === 'query' && (req.method === 'GET' || req.method === 'HEAD')) {
      // Exchange the token for a cookie and take it out of the address bar (and out of history and Referer).
      const maxAge = Math.max(0, auth.claims.expiresAt - Math.floor(Date.now() / 1000));
      const cookie = [
        `${GATEWAY_COOKIE}=${auth.token}`,
        `Path=${target.prefix ? `${target.prefix}/` : '/'}`,
        `Max-Age=${maxAge}`,
        'HttpOnly',
        'SameSite=Lax',
        ...(schemeOf(req) === 'https' ? ['Secure'] : []),
      ].join('; ');
      const location = target.publicPath + (target.query ? `?${target.query}` : '');
      metrics.redirected();
      res.writeHead(303, [
        'location',
        location,
        'set-cookie',
        cookie,
        'cache-control',
        'no-store',
        'content-length',
        '0',
      ]);
      return void res.end();
    }
    if (!route) return refuse(req, res, notRunning(target.gitspaceId));

    const upstream = parsedTarget(route.target);
    track(target.gitspaceId, req.socket);
    // Only now, authorised and on its way: the client may send the body it held back.
    if (req[EXPECTS_CONTINUE]) res.writeContinue();
    proxyHttp(nodeClient(req, res), {
      target: upstream,
      path: upstreamTarget(target),
      headers: forwardHeaders(req, target, route),
      timeoutMs,
      pool,
      responseHeaders: rewriteResponse(target, originOf(upstream), 'http', performance.now()),
      onError: answerUpstreamFailure(req, res, target.gitspaceId),
    });
  }

  async function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // Only WebSockets: any other protocol (h2c, a custom one) would become a raw tunnel past every per-request check.
    if (req.method !== 'GET' || req.httpVersion !== '1.1' || !isWebSocketUpgrade(req)) {
      return refuseRaw(socket, {
        status: 400,
        code: 'upgrade_refused',
        message: 'only WebSocket upgrades (GET with Upgrade: websocket) are accepted',
      });
    }
    const bad = checkRequestHead(req);
    if (bad) return refuseRaw(socket, bad);
    const target = resolve(req);
    if ('status' in target) return refuseRaw(socket, target);
    if (target.upstreamPath === '') return refuseRaw(socket, notIdePath());
    const auth = await authenticate(req, target);
    if ('status' in auth) return refuseRaw(socket, auth);
    // Cross-site WebSocket hijacking: a cookie-authenticated upgrade must come from the gitspace's own origin.
    if (auth.source === 'cookie' && !sameOrigin(req)) {
      return refuseRaw(socket, {
        status: 403,
        code: 'cross_origin',
        message: 'WebSockets from other origins are refused',
      });
    }
    const route = routes.get(target.gitspaceId);
    if (!route) return refuseRaw(socket, notRunning(target.gitspaceId));
    if (route.runId !== auth.claims.runId) return refuseRaw(socket, revoked(target.gitspaceId, auth));
    if (socket.destroyed) return;
    const upstream = parsedTarget(route.target);
    track(target.gitspaceId, socket);
    endAtExpiry(socket, auth.claims.expiresAt);
    metrics.webSocketOpened();
    socket.once('close', metrics.webSocketClosed);
    proxyUpgrade(socket, head, {
      method: 'GET',
      protocol: 'websocket',
      target: upstream,
      path: upstreamTarget(target),
      headers: forwardHeaders(req, target, route),
      timeoutMs,
      responseHeaders: rewriteResponse(target, originOf(upstream), 'websocket', performance.now()),
      onError: (error) => refuseRaw(socket, upstreamRefusal(error, target.gitspaceId, logger)),
    });
  }

  /** A token bounds the session it opened: the tunnel ends when the token expires. */
  function endAtExpiry(socket: Duplex, expiresAt: number): void {
    const timer = setTimeout(
      () => {
        logger.info('closing a WebSocket whose access token expired');
        socket.destroy();
      },
      Math.min(Math.max(0, expiresAt * 1000 - Date.now()), MAX_TIMER_MS),
    );
    socket.once('close', () => clearTimeout(timer));
  }

  // Made by a function rather than written inline: tsx (esbuild's keepNames) would give an inline closure its name
  // with a defineProperty call on every request, which costs more than the rest of the routing.
  const answerUpstreamFailure =
    (req: IncomingMessage, res: ServerResponse, gitspaceId: string) =>
    (error: UpstreamError): void =>
      refuse(req, res, upstreamRefusal(error, gitspaceId, logger));

  const requestFailed = (req: IncomingMessage, res: ServerResponse, error: unknown) => {
    logger.error('gateway request failed', { error, url: req.url });
    if (!res.headersSent) refuse(req, res, { status: 500, code: 'internal', message: 'the gateway failed' });
    else res.destroy();
  };
  const handleRequest = (req: Request, res: ServerResponse) => {
    try {
      onRequest(req, res)?.catch((error: unknown) => requestFailed(req, res, error));
    } catch (error) {
      requestFailed(req, res, error);
    }
  };

  const headersMs = options.timeouts?.headersMs ?? 60_000;
  const publicServer = http.createServer(
    {
      // llhttp in strict mode: no lenient flags, whatever NODE_OPTIONS says.
      insecureHTTPParser: false,
      maxHeaderSize: MAX_HEAD_BYTES,
      headersTimeout: headersMs,
      requestTimeout: options.timeouts?.requestMs ?? 300_000,
      keepAliveTimeout: options.timeouts?.keepAliveMs ?? 5_000,
      // Deadlines are checked this often over all connections (Node's default, 30 s, would stretch a 60 s deadline).
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersMs / 4))),
      // Host is checked by checkRequestHead (exactly one), which also stops the requests pipelined behind a refusal.
      requireHostHeader: false,
      // Repeated headers stay separate lines in rawHeaders (what is forwarded); `headers` keeps Node's rules.
      joinDuplicateHeaders: false,
      rejectNonStandardBodyWrites: true,
      noDelay: true,
    },
    handleRequest,
  );
  // One more than allowed, so that a request with too many is seen (and refused) rather than silently cut.
  publicServer.maxHeadersCount = MAX_HEADER_LINES + 1;
  publicServer.on('checkContinue', (req: Request, res: ServerResponse) => {
    req[EXPECTS_CONTINUE] = true;
    handleRequest(req, res);
  });
  publicServer.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
    refuse(req, res, {
      status: 417,
      code: 'expectation_failed',
      message: `the expectation '${req.headers.expect}' is not supported`,
      close: true,
    }),
  );
  publicServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // The socket is ours from here: an error on it must not go unheard (it would end the process).
    socket.on('error', destroySelf);
    onUpgrade(req, socket, head).catch((error: unknown) => {
      logger.error('gateway upgrade failed', { error, url: req.url });
      socket.destroy();
    });
  });
  // A gateway is not a forward proxy. Node hands every CONNECT here, never to the request handler.
  publicServer.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', destroySelf);
    refuseRaw(socket, { status: 405, code: 'method_not_allowed', message: 'CONNECT is not supported' }, 'http');
  });
  publicServer.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // A request llhttp would not parse, or one that did not arrive in time. Answered only when nothing of a response
    // has gone out on this connection yet (a second head in the middle of a body would corrupt what the client reads).
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (error.code === 'ECONNRESET') return void socket.destroy();
    // Our answer to an earlier error on this connection is on its way; the linger timer ends the connection.
    if (socket.writableEnded) return;
    if (!socket.writable || inFlight?.headersSent) return void socket.destroy();
    refuseRaw(socket, clientErrorRefusal(error), 'http');
  });
  // Every public connection, upgraded ones included (Node's server forgets those), so that closing ends them all.
  const connections = new Set<Socket>();
  publicServer.on('connection', (socket: Socket) => {
    const peer = unmapped(socket.remoteAddress ?? '');
    // A reverse proxy we trust carries many clients' connections: it is not capped as one client.
    const capped = trusted.none || !trusted.trusts(peer);
    const client = clientAddressKey(peer);
    if (capped && !connectionLimiter.acquire(client)) {
      logger.warn('refused a connection over the per-client cap', {
        client: peer,
        cap: connectionLimiter.maxPerClient,
      });
      return void socket.destroy();
    }
    connections.add(socket);
    socket.once('close', () => {
      connections.delete(socket);
      if (capped) connectionLimiter.release(client);
    });
  });

  const adminServer = http.createServer(
    createAdminHandler({
      routes,
      adminToken: options.adminToken,
      logger: logger.child('admin'),
      onRouteGone: closeConnections,
      metrics,
    }),
  );

  return {
    async listen({ host, port, adminHost, adminPort }) {
      await listenOn(publicServer, port, host);
      await listenOn(adminServer, adminPort, adminHost ?? host);
      return {
        publicUrl: urlOf((publicServer.address() as AddressInfo).port, host),
        adminUrl: urlOf((adminServer.address() as AddressInfo).port, adminHost ?? host),
      };
    },
    closeConnections,
    connectionCount: (gitspaceId) => open.get(gitspaceId)?.size ?? 0,
    metrics,
    async close() {
      for (const gitspaceId of [...open.keys()]) closeConnections(gitspaceId);
      for (const socket of connections) socket.destroy();
      pool.destroy();
      await Promise.all([closeServer(publicServer), closeServer(adminServer)]);
    },
  };
}

/** Longest delay a Node timer takes (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Request headers the gateway sets itself (see `forwardHeaders`), or never forwards. */
const REPLACED_REQUEST_HEADERS: readonly string[] = [
  'authorization',
  'cookie',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-prefix',
  // Other spellings of the same claims, which the gateway does not set: a client's would be believed upstream.
  'forwarded',
  'x-real-ip',
  ROUTE_SECRET_HEADER,
];

/**
 * What llhttp leaves to the server, checked before anything else: an HTTP version other than 1.0/1.1 (505), a missing
 * (HTTP/1.1) or repeated Host (400), more header lines than allowed (431), Transfer-Encoding in HTTP/1.0 (400) or with
 * a coding other than `chunked` (501). Each ends the connection.
 */
function checkRequestHead(req: IncomingMessage): Refusal | undefined {
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor > 1) {
    return {
      status: 505,
      code: 'http_version_not_supported',
      message: `HTTP/${req.httpVersion} is not supported`,
      close: true,
    };
  }
  const raw = req.rawHeaders;
  if (raw.length > MAX_HEADER_LINES * 2) {
    return { status: 431, code: 'too_many_headers', message: 'the request has too many header lines', close: true };
  }
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) if (isHeaderNamed(raw[i]!, 'host')) hosts++;
  if (hosts > 1 || (hosts === 0 && req.httpVersionMinor === 1)) {
    return { status: 400, code: 'bad_host', message: 'exactly one Host header is required', close: true };
  }
  const codings = req.headers['transfer-encoding'];
  if (codings !== undefined) {
    if (req.httpVersionMinor === 0) {
      return {
        status: 400,
        code: 'bad_framing',
        message: 'Transfer-Encoding in an HTTP/1.0 request',
        close: true,
      };
    }
    if (!isHeaderNamed(codings.trim(), 'chunked')) {
      return {
        status: 501,
        code: 'transfer_coding_not_supported',
        message: `the transfer coding '${codings}' is not supported`,
        close: true,
      };
    }
  }
  return undefined;
}

/** `Upgrade: websocket` (one protocol, any letter case) with `Connection: upgrade` (llhttp checked that). */
function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const protocol = req.headers.upgrade;
  return protocol !== undefined && isHeaderNamed(protocol.trim(), 'websocket');
}

function clientErrorRefusal(error: NodeJS.ErrnoException): Refusal {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, code: 'head_too_large', message: 'the request head is too large' };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, code: 'chunk_extensions_too_large', message: 'the chunk extensions are too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, code: 'request_timeout', message: 'the request did not arrive in time' };
    default:
      return {
        status: 400,
        code: 'bad_request',
        message: `the request is not well-formed HTTP/1.1 (${(error as { reason?: string }).reason ?? error.code})`,
      };
  }
}

/** A header as Node types those it does not know (repeats joined already, as `joinDuplicateHeaders` is off). */
function text(header: string | string[] | undefined): string | undefined {
  return Array.isArray(header) ? header.join(', ') : header;
}

function firstValue(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const comma = header.indexOf(',');
  return (comma < 0 ? header : header.slice(0, comma)).trim() || undefined;
}

/** An upstream redirect made relative to the gateway and kept under the gitspace's path prefix. */
function rewriteLocation(location: string, prefix: string, origin: string): string {
  let rewritten = location;
  if (location.startsWith(origin + '/') || location === origin) rewritten = location.slice(origin.length) || '/';
  if (prefix && rewritten.startsWith('/') && !rewritten.startsWith('//')) rewritten = prefix + rewritten;
  return rewritten;
}

function refusalOf(error: unknown): Refusal {
  if (error instanceof MissingAccessTokenError) return { status: 401, code: 'token_missing', message: error.message };
  if (error instanceof ExpiredAccessTokenError) return { status: 401, code: 'token_expired', message: error.message };
  if (error instanceof InvalidAccessTokenError) return { status: 401, code: 'token_invalid', message: error.message };
  if (error instanceof RevokedAccessTokenError) return { status: 401, code: 'token_revoked', message: error.message };
  if (error instanceof WrongGitspaceTokenError)
    return { status: 403, code: 'token_other_gitspace', message: error.message };
  if (error instanceof KeysUnavailableError) return { status: 503, code: 'keys_unavailable', message: error.message };
  throw error;
}

function revoked(gitspaceId: string, auth: Authenticated): Refusal {
  return refusalOf(new RevokedAccessTokenError(gitspaceId, auth.claims.runId));
}

function notRunning(gitspaceId: string): Refusal {
  return {
    status: 404,
    code: 'gitspace_not_running',
    message: `gitspace '${gitspaceId}' is not running (start it first)`,
  };
}

function notIdePath(): Refusal {
  return { status: 404, code: 'not_found', message: 'not a path of the IDE' };
}

function upstreamRefusal(error: UpstreamError, gitspaceId: string, logger: Logger): Refusal {
  logger.warn('gitspace machine did not answer', { gitspaceId, error });
  return error instanceof UpstreamTimeoutError
    ? { status: 504, code: 'machine_timeout', message: `the gitspace machine did not answer in ${error.timeoutMs} ms` }
    : { status: 502, code: 'machine_unreachable', message: `the gitspace machine is unreachable (${error.causeCode})` };
}

function sendRefusal(req: IncomingMessage, res: ServerResponse, refusal: Refusal): void {
  const headers: RawHeaders = [];
  if (refusal.status === 401) headers.push('www-authenticate', 'Bearer');
  if (refusal.retryAfter !== undefined) headers.push('retry-after', String(refusal.retryAfter));
  if (refusal.close) {
    (req.socket as TrackedSocket)[CLOSING] = true;
    headers.push('connection', 'close');
  }
  sendJson(res, refusal.status, { error: { code: refusal.code, message: refusal.message } }, headers);
}

/** Answers on a socket that is no HTTP exchange (an upgrade, CONNECT, a parse error) and closes it. */
function sendRawRefusal(socket: Duplex, refusal: Refusal): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify({ error: { code: refusal.code, message: refusal.message } });
  writeRawResponse(socket, refusal.status, 'application/json; charset=utf-8', body);
  // Whatever the client still sends is read and dropped for a moment, so it gets to read the answer, then it ends.
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: RawHeaders = []): void {
  if (res.headersSent) return void res.destroy();
  const payload = Buffer.from(JSON.stringify(body));
  headers.push(
    'content-type',
    'application/json; charset=utf-8',
    'cache-control',
    'no-store',
    'content-length',
    String(payload.length),
  );
  res.writeHead(status, headers);
  // A HEAD answer has the length a GET would have and no body (Node refuses one: rejectNonStandardBodyWrites).
  if (res.req.method === 'HEAD') res.end();
  else res.end(payload);
}

function destroySelf(this: Duplex): void {
  this.destroy();
}

/** A request made by a page of another site or sibling host (not a top-level navigation), per Fetch metadata. */
function isCrossSiteSubresource(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  return (site === 'cross-site' || site === 'same-site') && req.headers['sec-fetch-mode'] !== 'navigate';
}

function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (!origin) return true; // Not a browser: browsers always send Origin on WebSocket handshakes.
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

function listenOn(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function urlOf(port: number, host: string): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
