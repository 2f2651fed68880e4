import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TrustedProxies } from '../common/client-address';
import type { Logger } from '../common/logger';
import { clientAddressKey, unmapped } from '../common/rate-limit';
import { ConnectionLimiter } from './limits';
import { isTrustedProxy } from './proxy-claims';

/**
 * The public listener's client connections: every one (so that closing the gateway ends them all, upgraded ones
 * included, which Node's server forgets), capped per client address, and grouped by the gitspaces whose requests they
 * carried (so that a removed route ends them at once).
 */

const GITSPACES_OF_SOCKET = Symbol('gitspaces.gatewayGitspaces');
/** Set on a connection whose last answer ends it: requests pipelined behind that answer are never handled. */
const CLOSING = Symbol('gitspaces.gatewayClosing');
type TrackedSocket = Duplex & { [GITSPACES_OF_SOCKET]?: Set<string>; [CLOSING]?: boolean };

/** Marks a connection whose answer under way ends it. */
export function markClosing(socket: Duplex): void {
  (socket as TrackedSocket)[CLOSING] = true;
}

/** Whether the connection's last answer ends it (see {@link markClosing}). */
export function isClosing(socket: Duplex): boolean {
  return (socket as TrackedSocket)[CLOSING] === true;
}

/** An `error` listener for a socket that is ours: the error ends it instead of going unheard (and ending the process). */
export function destroySelf(this: Duplex): void {
  this.destroy();
}

export interface Connections {
  /** The `connection` listener: counts the connection, or ends it at once when its client is over the cap. */
  admit(socket: Socket): void;
  /** Notes that a connection carried a request of a gitspace (once per connection, not per request). */
  track(gitspaceId: string, socket: Duplex): void;
  /** Ends every open connection of a gitspace now; returns how many there were. */
  closeGitspace(gitspaceId: string): number;
  /** Open connections that carried requests of a gitspace. */
  countOf(gitspaceId: string): number;
  /** Open public connections. */
  total(): number;
  /** Ends every open public connection. */
  closeAll(): void;
}

export function createConnections(options: {
  logger: Logger;
  trusted: TrustedProxies;
  maxPerClient: number;
}): Connections {
  const { logger, trusted } = options;
  const limiter = new ConnectionLimiter(options.maxPerClient);
  const all = new Set<Socket>();
  // Per gitspace, tracked per connection, not per request: a keep-alive connection is added once.
  const open = new Map<string, Set<Duplex>>();

  const admit = (socket: Socket) => {
    const peer = unmapped(socket.remoteAddress ?? '');
    // A reverse proxy we trust carries many clients' connections: it is not capped as one client.
    const capped = !isTrustedProxy(trusted, peer);
    const client = clientAddressKey(peer);
    if (capped && !limiter.acquire(client)) {
      logger.warn('refused a connection over the per-client cap', {
        client: peer,
        cap: limiter.maxPerClient,
      });
      return void socket.destroy();
    }
    all.add(socket);
    socket.once('close', () => {
      all.delete(socket);
      if (capped) limiter.release(client);
    });
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

  const closeGitspace = (gitspaceId: string) => {
    const sockets = open.get(gitspaceId);
    if (!sockets) return 0;
    open.delete(gitspaceId);
    const count = sockets.size;
    // Ending the client connection ends its exchange in flight too (and with it the upstream connection).
    for (const socket of sockets) socket.destroy();
    if (count > 0) logger.info('closed open connections of a removed route', { gitspaceId, count });
    return count;
  };

  return {
    admit,
    track,
    closeGitspace,
    countOf: (gitspaceId) => open.get(gitspaceId)?.size ?? 0,
    total: () => all.size,
    closeAll() {
      for (const gitspaceId of [...open.keys()]) closeGitspace(gitspaceId);
      for (const socket of all) socket.destroy();
    },
  };
}
