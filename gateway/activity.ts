import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { GatewayActivity as ActivityReport } from '../contracts/lifecycle';

/**
 * What the gateway sees of each gitspace's use, for the auto-stop (README: auto-stop): the requests it forwards and
 * the tunnels (WebSocket or SSH) it holds open. The runner reads it on the admin listener (`GET
 * /routes/:gitspaceId/activity`); the machine reports nothing. Idle time counts from the latest of the last request,
 * the last tunnel closing and this gateway's own start, so a restarted gateway never makes a gitspace look idle
 * for longer than it has been watching. Seconds on a monotonic clock, never timestamps: the gateway's wall clock does
 * not matter.
 */
export interface GatewayActivity {
  /** A request forwarded to the gitspace: activity now and when its response ends. */
  request(gitspaceId: string, res: ServerResponse): void;
  /** A tunnel forwarded to the gitspace: it is in use until the socket closes. */
  tunnel(gitspaceId: string, socket: Duplex, kind: 'websocket' | 'ssh'): void;
  /** What the admin route answers. */
  of(gitspaceId: string): ActivityReport;
}

interface Seen {
  /** When the gitspace was last used (the clock's milliseconds). */
  lastAt: number;
  openWebSockets: number;
  openSshSessions: number;
}

/** `now`: a monotonic clock in milliseconds (tests give a fake one). */
export function createGatewayActivity(now: () => number = () => performance.now()): GatewayActivity {
  const startedAt = now();
  const seen = new Map<string, Seen>();
  const entry = (gitspaceId: string): Seen => {
    let found = seen.get(gitspaceId);
    if (!found) {
      found = { lastAt: now(), openWebSockets: 0, openSshSessions: 0 };
      seen.set(gitspaceId, found);
    }
    return found;
  };
  const touch = (gitspaceId: string) => {
    entry(gitspaceId).lastAt = now();
  };

  return {
    request(gitspaceId, res) {
      touch(gitspaceId);
      res.once('close', () => touch(gitspaceId));
    },
    tunnel(gitspaceId, socket, kind) {
      const found = entry(gitspaceId);
      found.lastAt = now();
      const field = kind === 'ssh' ? 'openSshSessions' : 'openWebSockets';
      found[field] += 1;
      socket.once('close', () => {
        found[field] -= 1;
        found.lastAt = now();
      });
    },
    of(gitspaceId) {
      const found = seen.get(gitspaceId);
      const open = (found?.openWebSockets ?? 0) + (found?.openSshSessions ?? 0);
      const since = Math.max(startedAt, found?.lastAt ?? startedAt);
      return {
        idleSeconds: open > 0 ? 0 : Math.max(0, (now() - since) / 1000),
        openWebSockets: found?.openWebSockets ?? 0,
        openSshSessions: found?.openSshSessions ?? 0,
      };
    },
  };
}

const ACTIVITY_PATH = /^\/routes\/([^/?#]+)\/activity$/;

/**
 * The admin route `GET /routes/:gitspaceId/activity` (the caller checked the admin token): true when it answered.
 */
export function serveActivity(
  activity: GatewayActivity,
  req: IncomingMessage,
  res: ServerResponse,
  url: string,
): boolean {
  const match = ACTIVITY_PATH.exec(url);
  if (!match) return false;
  const status = req.method === 'GET' ? 200 : 405;
  const body = JSON.stringify(
    status === 200 ? activity.of(match[1]!) : { error: { code: 'method_not_allowed', message: 'use GET' } },
  );
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...(status === 405 ? { allow: 'GET' } : {}),
  });
  res.end(body);
  return true;
}
