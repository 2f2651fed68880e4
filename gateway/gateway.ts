import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ACCESS_TOKEN_QUERY_PARAM, GITSPACE_ID_PATTERN, type AccessTokenClaims } from '../common/access-token';
import { bearerToken } from '../common/bearer';
import {
  UpstreamTimeoutError,
  endToEndHeaders,
  proxyHttp,
  proxyUpgrade,
  type RawHeaders,
  type UpstreamError,
} from '../common/http-proxy';
import type { Logger } from '../common/logger';
import { isHeaderNamed, writeRawResponse } from '../common/http1';
import { Http1Server, type RequestHead, type ServerExchange } from '../common/http1-server';
import { UpstreamPool } from '../common/upstream-client';
import { createAdminHandler } from './admin';
import {
  ExpiredAccessTokenError,
  InvalidAccessTokenError,
  KeysUnavailableError,
  MissingAccessTokenError,
  WrongGitspaceTokenError,
  type AccessTokenVerifier,
} from './auth';
import type { RoutesStore } from './routes-store';

/**
 * The CDE gateway (DESIGN.md §4), the only door into a gitspace machine.
 *
 * Routing: `/gitspaces/<id>/<rest>` is forwarded to the route target as `/<rest>`: the prefix is STRIPPED, so the IDE
 * always sees itself at `/` and must use relative URLs (it gets `X-Forwarded-Prefix` to know better). With a domain
 * configured, `<id>.<domain>/<path>` is forwarded as `/<path>`. Every request needs an access token for that very
 * gitspace (query on first visit, then the cookie; or `Authorization: Bearer`), and only registered route targets are
 * ever dialled: the request target and `Host` only select a route, never an address.
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

/** Paths of the agent's private API (for the runner); the gateway never forwards them. */
const AGENT_PRIVATE_PREFIX = '/_agent/';

/** Dot segments (plain or percent-encoded), backslashes and NUL: refused rather than normalised. */
const UNSAFE_PATH = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)|\\|%5c|%00/i;

export interface GatewayOptions {
  logger: Logger;
  routes: RoutesStore;
  verifier: AccessTokenVerifier;
  /** Bearer secret of the admin listener. */
  adminToken: string;
  /** Enables host routing (`<id>.<domain>`). */
  domain?: string;
  upstreamTimeoutMs?: number;
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
  close(): Promise<void>;
}

/** A refusal the gateway answers itself: status, machine-readable code and a sentence for the user. */
interface Refusal {
  status: number;
  code: string;
  message: string;
}

const GITSPACES_OF_SOCKET = Symbol('gitspaces.gatewayGitspaces');
type TrackedSocket = Duplex & { [GITSPACES_OF_SOCKET]?: Set<string> };

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
  const pool = new UpstreamPool();
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

  function resolve(req: RequestHead): Resolved | Refusal {
    const rawUrl = req.url;
    // Only origin-form targets: an absolute URI (`GET http://elsewhere/`) must never choose where we connect.
    if (!rawUrl.startsWith('/') || rawUrl.startsWith('//')) {
      return { status: 400, code: 'bad_request_target', message: 'only paths are accepted as request targets' };
    }
    const q = rawUrl.indexOf('?');
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const rawQuery = q < 0 ? '' : rawUrl.slice(q + 1);
    if (UNSAFE_PATH.test(path)) {
      return { status: 400, code: 'bad_path', message: 'paths with dot segments or backslashes are refused' };
    }
    const { query, token: queryToken } = splitToken(rawQuery);

    const hostId = domainSuffix ? gitspaceOfHost(req.header('host'), domainSuffix) : undefined;
    if (hostId) return { gitspaceId: hostId, upstreamPath: path, query, queryToken, prefix: '', publicPath: path };

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
    // `/gitspaces/<id>` has no trailing slash: send the browser to `/gitspaces/<id>/` so relative URLs and the cookie
    // path line up (handled by the caller as a redirect).
    const upstreamPath = slash < 0 ? '' : path.slice(slash);
    return { gitspaceId, upstreamPath, query, queryToken, prefix, publicPath: path };
  }

  /**
   * Finds the token (query, then `Authorization: Bearer`, then the cookie) and checks it for this gitspace: at once
   * for a token seen before (no promise on the hot path), else after verifying its signature.
   */
  function authenticate(
    req: RequestHead,
    target: Resolved,
  ): Authenticated | Refusal | Promise<Authenticated | Refusal> {
    const headerToken = bearerToken(req.header('authorization'));
    const cookieToken = readCookie(req.header('cookie'), GATEWAY_COOKIE);
    const source = target.queryToken ? 'query' : headerToken ? 'header' : 'cookie';
    const token = target.queryToken ?? headerToken ?? cookieToken;
    try {
      const cached = verifier.verifyCached(token, target.gitspaceId);
      if (cached) return { claims: cached, source, token: token! };
    } catch (error) {
      return refusalOf(error);
    }
    return verifier.verify(token, target.gitspaceId).then((claims) => ({ claims, source, token: token! }), refusalOf);
  }

  function forwardHeaders(req: RequestHead, target: Resolved): RawHeaders {
    // Gateway credentials stop here: the bearer header, our cookie (other cookies are the IDE's) and, via the path
    // rewrite, the token query parameter. The forwarding headers are ours, whatever the client sent.
    const headers = endToEndHeaders(req.rawHeaders, REPLACED_REQUEST_HEADERS);
    const authorization = req.header('authorization');
    const cookie = req.header('cookie');
    const host = req.header('host');
    if (authorization && !bearerToken(authorization)) headers.push('authorization', authorization);
    const ideCookies = withoutCookie(cookie, GATEWAY_COOKIE);
    if (ideCookies) headers.push('cookie', ideCookies);
    const clientIp = req.socket.remoteAddress ?? '';
    const priorFor = req.header('x-forwarded-for');
    headers.push(
      'x-forwarded-for',
      priorFor ? `${priorFor}, ${clientIp}` : clientIp,
      'x-forwarded-proto',
      isSecure(req) ? 'https' : 'http',
    );
    if (host) headers.push('x-forwarded-host', host);
    if (target.prefix) headers.push('x-forwarded-prefix', target.prefix);
    return headers;
  }

  function upstreamTarget(target: Resolved): string {
    return target.upstreamPath + (target.query ? `?${target.query}` : '');
  }

  /** Keeps the IDE's redirects and cookies inside its own prefix, and never lets it set the gateway's cookie. */
  function rewriteResponse(target: Resolved, origin: string) {
    return (headers: RawHeaders): RawHeaders => {
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
        }
      }
      return headers;
    };
  }

  function onRequest(exchange: ServerExchange): void | Promise<void> {
    if (exchange.method === 'CONNECT') {
      // A gateway is not a forward proxy.
      return refuse(exchange, { status: 405, code: 'method_not_allowed', message: 'CONNECT is not supported' });
    }
    if (exchange.url === '/healthz' && !(domainSuffix && gitspaceOfHost(exchange.header('host'), domainSuffix))) {
      return sendJson(exchange, 200, { status: 'ok' });
    }
    const target = resolve(exchange);
    if ('status' in target) return refuse(exchange, target);
    if (target.prefix && target.upstreamPath === '') {
      const location = `${target.prefix}/${rebuildQuery(target.query, target.queryToken)}`;
      return exchange.respond(308, ['location', location]);
    }
    if (target.upstreamPath.startsWith(AGENT_PRIVATE_PREFIX)) {
      return refuse(exchange, { status: 404, code: 'not_found', message: 'not a path of the IDE' });
    }
    const auth = authenticate(exchange, target);
    if (auth instanceof Promise) return auth.then((checked) => forward(exchange, target, checked));
    forward(exchange, target, auth);
  }

  /** The rest of a request once its token was checked: the cookie exchange, or the proxied exchange itself. */
  function forward(exchange: ServerExchange, target: Resolved, auth: Authenticated | Refusal): void {
    if ('status' in auth) return refuse(exchange, auth);
    if (auth.source === 'cookie' && isCrossSiteSubresource(exchange)) {
      return refuse(exchange, { status: 403, code: 'cross_site', message: 'requests from other sites are refused' });
    }
    if (auth.source === 'query' && (exchange.method === 'GET' || exchange.method === 'HEAD')) {
      // Exchange the token for a cookie and take it out of the address bar (and out of history and Referer).
      const maxAge = Math.max(0, auth.claims.expiresAt - Math.floor(Date.now() / 1000));
      const cookie = [
        `${GATEWAY_COOKIE}=${auth.token}`,
        `Path=${target.prefix ? `${target.prefix}/` : '/'}`,
        `Max-Age=${maxAge}`,
        'HttpOnly',
        'SameSite=Lax',
        ...(isSecure(exchange) ? ['Secure'] : []),
      ].join('; ');
      const location = target.publicPath + (target.query ? `?${target.query}` : '');
      return exchange.respond(303, ['location', location, 'set-cookie', cookie, 'cache-control', 'no-store']);
    }
    const route = routes.get(target.gitspaceId);
    if (!route) return refuse(exchange, notRunning(target.gitspaceId));

    const upstream = parsedTarget(route.target);
    track(target.gitspaceId, exchange.socket);
    proxyHttp(exchange, {
      target: upstream,
      path: upstreamTarget(target),
      headers: forwardHeaders(exchange, target),
      timeoutMs,
      pool,
      responseHeaders: rewriteResponse(target, upstream.origin),
      onError: answerUpstreamFailure(exchange, target.gitspaceId),
    });
  }

  async function onUpgrade(req: RequestHead, socket: Duplex, head: Buffer): Promise<void> {
    const target = resolve(req);
    if ('status' in target) return refuseRaw(socket, target);
    if (target.upstreamPath === '' || target.upstreamPath.startsWith(AGENT_PRIVATE_PREFIX)) {
      return refuseRaw(socket, { status: 404, code: 'not_found', message: 'not a path of the IDE' });
    }
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
    const upstream = parsedTarget(route.target);
    track(target.gitspaceId, socket);
    proxyUpgrade(socket, head, {
      method: req.method,
      protocol: req.header('upgrade') ?? 'websocket',
      target: upstream,
      path: upstreamTarget(target),
      headers: forwardHeaders(req, target),
      timeoutMs,
      responseHeaders: rewriteResponse(target, upstream.origin),
      onError: (error) => refuseRaw(socket, upstreamRefusal(error, target.gitspaceId, logger)),
    });
  }

  // Made by a function rather than written inline: tsx (esbuild's keepNames) would give an inline closure its name
  // with a defineProperty call on every request, which costs more than the rest of the routing.
  const answerUpstreamFailure =
    (exchange: ServerExchange, gitspaceId: string) =>
    (error: UpstreamError): void =>
      refuse(exchange, upstreamRefusal(error, gitspaceId, logger));

  const requestFailed = (exchange: ServerExchange, error: unknown) => {
    logger.error('gateway request failed', { error, url: exchange.url });
    if (!exchange.headSent) refuse(exchange, { status: 500, code: 'internal', message: 'the gateway failed' });
    else exchange.destroy();
  };
  const publicServer = new Http1Server({
    onRequest(exchange) {
      try {
        onRequest(exchange)?.catch((error: unknown) => requestFailed(exchange, error));
      } catch (error) {
        requestFailed(exchange, error);
      }
    },
    onUpgrade(req, socket, head) {
      onUpgrade(req, socket, head).catch((error: unknown) => {
        logger.error('gateway upgrade failed', { error, url: req.url });
        socket.destroy();
      });
    },
  });

  const adminServer = http.createServer(
    createAdminHandler({
      routes,
      adminToken: options.adminToken,
      logger: logger.child('admin'),
      onRouteGone: closeConnections,
    }),
  );

  return {
    async listen({ host, port, adminHost, adminPort }) {
      await publicServer.listen(port, host);
      await listenOn(adminServer, adminPort, adminHost ?? host);
      return {
        publicUrl: urlOf(publicServer.address().port, host),
        adminUrl: urlOf((adminServer.address() as AddressInfo).port, adminHost ?? host),
      };
    },
    closeConnections,
    connectionCount: (gitspaceId) => open.get(gitspaceId)?.size ?? 0,
    async close() {
      for (const gitspaceId of [...open.keys()]) closeConnections(gitspaceId);
      pool.destroy();
      await Promise.all([publicServer.close(), closeServer(adminServer)]);
    },
  };
}

/** Request headers the gateway sets itself (see `forwardHeaders`). */
const REPLACED_REQUEST_HEADERS: readonly string[] = [
  'authorization',
  'cookie',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-prefix',
];

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
  if (error instanceof WrongGitspaceTokenError)
    return { status: 403, code: 'token_other_gitspace', message: error.message };
  if (error instanceof KeysUnavailableError) return { status: 503, code: 'keys_unavailable', message: error.message };
  throw error;
}

function notRunning(gitspaceId: string): Refusal {
  return {
    status: 404,
    code: 'gitspace_not_running',
    message: `gitspace '${gitspaceId}' is not running (start it first)`,
  };
}

function upstreamRefusal(error: UpstreamError, gitspaceId: string, logger: Logger): Refusal {
  logger.warn('gitspace machine did not answer', { gitspaceId, error });
  return error instanceof UpstreamTimeoutError
    ? { status: 504, code: 'machine_timeout', message: `the gitspace machine did not answer in ${error.timeoutMs} ms` }
    : { status: 502, code: 'machine_unreachable', message: `the gitspace machine is unreachable (${error.causeCode})` };
}

function refuse(exchange: ServerExchange, refusal: Refusal): void {
  const body = { error: { code: refusal.code, message: refusal.message } };
  sendJson(exchange, refusal.status, body, refusal.status === 401 ? ['www-authenticate', 'Bearer'] : []);
}

function refuseRaw(socket: Duplex, refusal: Refusal): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify({ error: { code: refusal.code, message: refusal.message } });
  writeRawResponse(socket, refusal.status, 'application/json; charset=utf-8', body);
}

function sendJson(exchange: ServerExchange, status: number, body: unknown, headers: RawHeaders = []): void {
  headers.push('content-type', 'application/json; charset=utf-8', 'cache-control', 'no-store');
  exchange.respond(status, headers, JSON.stringify(body));
}

/** Removes the token parameter from a raw query, keeping every other parameter byte for byte. */
function splitToken(rawQuery: string): { query: string; token: string | undefined } {
  if (!rawQuery.includes(`${ACCESS_TOKEN_QUERY_PARAM}=`)) return { query: rawQuery, token: undefined };
  let token: string | undefined;
  const kept: string[] = [];
  for (const part of rawQuery.split('&')) {
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    if (safeDecode(name) === ACCESS_TOKEN_QUERY_PARAM) token ??= safeDecode(part.slice(eq + 1)) || undefined;
    else kept.push(part);
  }
  return { query: kept.join('&'), token };
}

function rebuildQuery(query: string, token: string | undefined): string {
  const parts = [
    ...(query ? [query] : []),
    ...(token ? [`${ACCESS_TOKEN_QUERY_PARAM}=${encodeURIComponent(token)}`] : []),
  ];
  return parts.length ? `?${parts.join('&')}` : '';
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

function withoutCookie(header: string | undefined, name: string): string | undefined {
  if (!header || !header.includes(name)) return header;
  const kept = header.split(';').filter((part) => part.slice(0, part.indexOf('=')).trim() !== name);
  return kept.map((part) => part.trim()).join('; ') || undefined;
}

/** The gitspace id of `<id>.<domain>[:port]`, if the Host names one. */
function gitspaceOfHost(host: string | undefined, domainSuffix: string): string | undefined {
  if (!host) return undefined;
  const name = host.toLowerCase().replace(/:\d+$/, '');
  if (!name.endsWith(domainSuffix)) return undefined;
  const label = name.slice(0, -domainSuffix.length);
  return GITSPACE_ID_PATTERN.test(label) ? label : undefined;
}

function isSecure(req: RequestHead): boolean {
  const forwarded = req.header('x-forwarded-proto');
  return (req.socket as { encrypted?: boolean }).encrypted === true || forwarded === 'https';
}

/** A request made by a page of another site or sibling host (not a top-level navigation), per Fetch metadata. */
function isCrossSiteSubresource(req: RequestHead): boolean {
  const site = req.header('sec-fetch-site');
  return (site === 'cross-site' || site === 'same-site') && req.header('sec-fetch-mode') !== 'navigate';
}

function sameOrigin(req: RequestHead): boolean {
  const origin = req.header('origin');
  if (!origin) return true; // Not a browser: browsers always send Origin on WebSocket handshakes.
  try {
    return new URL(origin).host === req.header('host');
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
