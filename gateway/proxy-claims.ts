import type { IncomingMessage } from 'node:http';
import type { TrustedProxies } from '../common/client-address';
import { unmapped } from '../common/rate-limit';

/**
 * What a request says about its client — address, scheme, host — in `X-Forwarded-*` headers: believed only when the
 * connection comes from a trusted reverse proxy, whatever the client claims otherwise.
 */

/** Whether a connection's peer (its unmapped address) is a reverse proxy we trust. */
export function isTrustedProxy(trusted: TrustedProxies, peer: string): boolean {
  return !trusted.none && trusted.trusts(peer);
}

/** The client address behind a request: the socket's, or what a trusted proxy says it forwarded. */
export function clientAddress(req: IncomingMessage, trusted: TrustedProxies): string {
  return trusted.clientOf(req.socket.remoteAddress ?? '', headerText(req.headers['x-forwarded-for']));
}

/**
 * `https` over TLS, or when a trusted proxy says so; `http` otherwise, whatever the client claims. `fromProxy` is
 * {@link isTrustedProxy} of the request's peer when the caller knows it already.
 */
export function schemeOf(req: IncomingMessage, trusted: TrustedProxies, fromProxy?: boolean): 'http' | 'https' {
  if ((req.socket as { encrypted?: boolean }).encrypted === true) return 'https';
  if (fromProxy ?? isTrustedProxy(trusted, unmapped(req.socket.remoteAddress ?? ''))) {
    const claimed = firstValue(headerText(req.headers['x-forwarded-proto']))?.toLowerCase();
    if (claimed === 'https') return 'https';
  }
  return 'http';
}

/** A header as Node types those it does not know (repeats joined already, as `joinDuplicateHeaders` is off). */
export function headerText(header: string | string[] | undefined): string | undefined {
  return Array.isArray(header) ? header.join(', ') : header;
}

/** The first element of a comma-separated header, if not empty. */
export function firstValue(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const comma = header.indexOf(',');
  return (comma < 0 ? header : header.slice(0, comma)).trim() || undefined;
}
