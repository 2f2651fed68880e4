import type { IncomingMessage } from 'node:http';
import { bearerToken } from '../common/bearer';
import type { TrustedProxies } from '../common/client-address';
import { ROUTE_SECRET_HEADER, SSH_KEYS_HEADER, TUNNEL_ID_HEADER } from '../common/gateway-route';
import { endToEndHeaders, type RawHeaders } from '../common/http-proxy';
import { isHeaderNamed } from '../common/http1';
import { unmapped } from '../common/rate-limit';
import type { ExchangeKind, GatewayMetrics } from './metrics';
import { firstValue, headerText, isTrustedProxy, schemeOf } from './proxy-claims';
import { withoutCookie } from './request-target';
import type { GatewayRoute } from './routes-store';
import type { Resolved } from './routing';
import { GATEWAY_COOKIE } from './session';

/**
 * What changes on the way between a client and its gitspace machine: the request headers (gateway credentials out,
 * forwarding headers and the route's secret in) and the response headers (redirects and cookies kept under the
 * gitspace's prefix, the gateway's cookie and the route secret never set or shown). The exchanges themselves are
 * requests.ts (HTTP) and upgrade.ts (WebSocket).
 */

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
  // Only the gateway says which keys may open an SSH session (from the verified token) and which tunnel this is.
  SSH_KEYS_HEADER,
  TUNNEL_ID_HEADER,
];

/** Route targets parsed once, not per request (they are validated origins). */
export class TargetUrls {
  private readonly urls = new Map<string, URL>();

  of(target: string): URL {
    let url = this.urls.get(target);
    if (!url) {
      if (this.urls.size > 10_000) this.urls.clear();
      this.urls.set(target, (url = new URL(target)));
    }
    return url;
  }
}

/** The headers forwarded to the machine; an SSH upgrade's add the key fingerprints its verified token names. */
export function forwardHeaders(
  req: IncomingMessage,
  target: Resolved,
  route: GatewayRoute,
  trusted: TrustedProxies,
  sshKeys?: readonly string[],
): RawHeaders {
  // Gateway credentials stop here: the bearer header, our cookie (other cookies are the IDE's) and, via the path
  // rewrite, the token query parameter. The forwarding headers and the route secret are ours, whatever the client
  // sent.
  const headers = endToEndHeaders(req.rawHeaders, REPLACED_REQUEST_HEADERS);
  const { authorization, cookie, host } = req.headers;
  if (authorization && !bearerToken(authorization)) headers.push('authorization', authorization);
  const ideCookies = withoutCookie(cookie, GATEWAY_COOKIE);
  if (ideCookies) headers.push('cookie', ideCookies);
  const peer = unmapped(req.socket.remoteAddress ?? '');
  const fromProxy = isTrustedProxy(trusted, peer);
  const priorFor = fromProxy ? headerText(req.headers['x-forwarded-for']) : undefined;
  const priorHost = fromProxy ? firstValue(headerText(req.headers['x-forwarded-host'])) : undefined;
  headers.push(
    'x-forwarded-for',
    priorFor ? `${priorFor}, ${peer}` : peer,
    'x-forwarded-proto',
    schemeOf(req, trusted, fromProxy),
    ROUTE_SECRET_HEADER,
    route.secret,
  );
  if (priorHost || host) headers.push('x-forwarded-host', (priorHost || host)!);
  if (target.prefix) headers.push('x-forwarded-prefix', target.prefix);
  if (sshKeys) headers.push(SSH_KEYS_HEADER, sshKeys.join(','));
  return headers;
}

/**
 * The machine's response headers, as the client gets them (and the exchange counted as answered): keeps the IDE's
 * redirects and cookies inside its own prefix, and never lets it set the gateway's cookie. An SSH tunnel's answer
 * carries its id from the gateway (`tunnelId`), never one the machine made up.
 */
export function rewriteResponse(
  target: Resolved,
  origin: string,
  kind: ExchangeKind,
  startedAt: number,
  metrics: GatewayMetrics,
  tunnelId?: string,
) {
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
      } else if (isHeaderNamed(name, ROUTE_SECRET_HEADER) || isHeaderNamed(name, TUNNEL_ID_HEADER)) {
        // An upstream that echoes the secret back does not get to show it to the client.
        headers.splice(i, 2);
        i -= 2;
      }
    }
    if (tunnelId) headers.push(TUNNEL_ID_HEADER, tunnelId);
    return headers;
  };
}

/** An upstream redirect made relative to the gateway and kept under the gitspace's path prefix. */
function rewriteLocation(location: string, prefix: string, origin: string): string {
  let rewritten = location;
  if (location.startsWith(origin + '/') || location === origin) rewritten = location.slice(origin.length) || '/';
  if (prefix && rewritten.startsWith('/') && !rewritten.startsWith('//')) rewritten = prefix + rewritten;
  return rewritten;
}
