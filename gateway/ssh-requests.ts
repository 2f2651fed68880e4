import type { IncomingMessage, ServerResponse } from 'node:http';
import { TUNNEL_ID_HEADER } from '../common/gateway-route';
import type { GatewayParts } from './parts';
import { notRunning } from './refusals';
import type { Resolved } from './routing';
import { revoked } from './session';

/**
 * Plain HTTP requests on a gitspace's SSH paths, which the gateway answers itself and never forwards: the tunnel path
 * takes only WebSocket upgrades (upgrade.ts), and `POST …/_gitspaces/ssh/renew` moves an open tunnel's end to a fresh
 * ssh token's expiry (tunnels.ts).
 */
export function createSshRequestHandler(
  parts: GatewayParts,
): (req: IncomingMessage, res: ServerResponse, target: Resolved) => Promise<void> {
  const { routes, sessions, tunnels } = parts;
  const { refuse } = parts.refusals;

  return async (req, res, target) => {
    if (target.kind === 'ssh') {
      return refuse(req, res, {
        status: 400,
        code: 'websocket_required',
        message: 'SSH goes over a WebSocket: use `gitspaces ssh`',
      });
    }
    if (req.method !== 'POST') {
      return refuse(req, res, { status: 405, code: 'method_not_allowed', message: 'renew an SSH tunnel with POST' });
    }
    // The same checks as the tunnel's upgrade: an ssh token as a bearer, for this gitspace and its route's run.
    const auth = await sessions.authenticate(req, target);
    if ('status' in auth) return refuse(req, res, auth);
    const route = routes.get(target.gitspaceId);
    if (!route) return refuse(req, res, notRunning(target.gitspaceId));
    if (route.runId !== auth.claims.runId) return refuse(req, res, revoked(target.gitspaceId, auth));
    const tunnelId = req.headers[TUNNEL_ID_HEADER];
    if (typeof tunnelId !== 'string' || tunnelId === '') {
      return refuse(req, res, {
        status: 400,
        code: 'tunnel_id_missing',
        message: `name the tunnel to renew in ${TUNNEL_ID_HEADER} (from the answer that opened it)`,
      });
    }
    const refusal = tunnels.renew(tunnelId, auth.claims);
    if (refusal) return refuse(req, res, refusal);
    res.writeHead(204, ['cache-control', 'no-store']);
    res.end();
  };
}
