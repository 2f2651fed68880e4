import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { proxyUpgrade } from '../common/http-proxy';
import { isHeaderNamed } from '../common/http1';
import { originOf } from '../common/upstream-client';
import { destroySelf } from './connections';
import { forwardHeaders, rewriteResponse } from './forwarding';
import type { GatewayParts } from './parts';
import { notIdePath, notRunning, upstreamRefusal } from './refusals';
import { checkRequestHead } from './request-head';
import { resolveTarget, upstreamTarget } from './routing';
import { revoked, sameOrigin } from './session';

/**
 * WebSocket upgrades on the public listener, the only protocol tunnelled: the same checks as a request (plus the
 * origin of a cookie-authenticated handshake), then the socket is spliced to the machine's until either side ends it,
 * or the route goes, or the token that opened it expires (tunnels.ts). An SSH tunnel also carries its token's key
 * fingerprints up, and its id down (for renewals).
 */

/** The server's `upgrade` listener. */
export function createUpgradeHandler(
  parts: GatewayParts,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { logger, routes, sessions, connections, tunnels, metrics, trusted, targets, timeoutMs, domainSuffix } = parts;
  const { refuseRaw } = parts.refusals;

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
    const target = resolveTarget(req, domainSuffix);
    if ('status' in target) return refuseRaw(socket, target);
    if (target.upstreamPath === '' || target.kind === 'ssh-renew') return refuseRaw(socket, notIdePath());
    const auth = await sessions.authenticate(req, target);
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
    const upstream = targets.of(route.target);
    connections.track(target.gitspaceId, socket);
    const ssh = target.kind === 'ssh';
    parts.activity.tunnel(target.gitspaceId, socket, ssh ? 'ssh' : 'websocket');
    const tunnelId = ssh ? tunnels.open(socket, auth.claims) : undefined;
    if (!ssh) tunnels.endAtExpiry(socket, auth.claims);
    metrics.webSocketOpened();
    socket.once('close', metrics.webSocketClosed);
    proxyUpgrade(socket, head, {
      method: 'GET',
      protocol: 'websocket',
      target: upstream,
      path: upstreamTarget(target),
      headers: forwardHeaders(req, target, route, trusted, ssh ? auth.claims.sshKeys : undefined),
      timeoutMs,
      responseHeaders: rewriteResponse(target, originOf(upstream), 'websocket', performance.now(), metrics, tunnelId),
      onError: (error) => refuseRaw(socket, upstreamRefusal(error, target.gitspaceId, logger)),
    });
  }

  return (req, socket, head) => {
    // The socket is ours from here: an error on it must not go unheard (it would end the process).
    socket.on('error', destroySelf);
    onUpgrade(req, socket, head).catch((error: unknown) => {
      logger.error('gateway upgrade failed', { error, url: req.url });
      socket.destroy();
    });
  };
}

/** `Upgrade: websocket` (one protocol, any letter case) with `Connection: upgrade` (llhttp checked that). */
function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const protocol = req.headers.upgrade;
  return protocol !== undefined && isHeaderNamed(protocol.trim(), 'websocket');
}
