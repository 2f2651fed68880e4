import type { ServerResponse } from 'node:http';
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
  /** Marks it used now: made once per gitspace, so that a request's `close` listener costs no allocation. */
  touch: () => void;
}

/** `now`: a monotonic clock in milliseconds (tests give a fake one). */
export function createGatewayActivity(now: () => number = () => performance.now()): GatewayActivity {
  const startedAt = now();
  const seen = new Map<string, Seen>();
  const entry = (gitspaceId: string): Seen => {
    let found = seen.get(gitspaceId);
    if (!found) {
      const created: Seen = { lastAt: 0, openWebSockets: 0, openSshSessions: 0, touch: () => (created.lastAt = now()) };
      seen.set(gitspaceId, (found = created));
    }
    return found;
  };

  return {
    request(gitspaceId, res) {
      const found = entry(gitspaceId);
      found.touch();
      // `on`, not `once`: a response closes once, and `once` would wrap the listener anew for every request.
      res.on('close', found.touch);
    },
    tunnel(gitspaceId, socket, kind) {
      const found = entry(gitspaceId);
      found.touch();
      const field = kind === 'ssh' ? 'openSshSessions' : 'openWebSockets';
      found[field] += 1;
      socket.once('close', () => {
        found[field] -= 1;
        found.touch();
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
