import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Logger } from '../common/logger';
import type { AccessTokenClaims } from '../contracts/access-token';
import type { Refusal } from './refusals';

/**
 * How long a tunnel lives: a token bounds the tunnel it opened, so every WebSocket ends when its token expires. An SSH
 * tunnel (`gitspaces ssh`) is registered under a random id the client gets in the 101's `x-gitspaces-tunnel-id`, and
 * moves its end to a fresh token's expiry when renewed with one of the same user, gitspace and run. Route removal ends
 * tunnels apart from this (connections.ts).
 */

/** Longest delay a Node timer takes (about 24.8 days); a later deadline is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Random bytes of a tunnel id: it is all a renewal names the tunnel by. */
const TUNNEL_ID_BYTES = 32;

export interface Tunnels {
  /** Ends a (browser's) WebSocket when the token that opened it expires. */
  endAtExpiry(socket: Duplex, claims: AccessTokenClaims): void;
  /** Registers an SSH tunnel, ended at its token's expiry unless renewed; returns its id, for renewals. */
  open(socket: Duplex, claims: AccessTokenClaims): string;
  /**
   * Moves an open SSH tunnel's end to a fresh ssh token's expiry (never earlier), when the token names the same
   * gitspace, user and run as the one that opened it; otherwise a refusal, and the tunnel is left as it was. The token
   * was checked for its lane and the route's current run already (ssh-requests.ts).
   */
  renew(id: string, claims: AccessTokenClaims): Refusal | undefined;
  /** Open SSH tunnels. */
  count(): number;
}

/** An SSH tunnel: whose it is, and its deadline. */
interface SshTunnel {
  claims: AccessTokenClaims;
  deadline: Deadline;
}

export function createTunnels(logger: Logger): Tunnels {
  const ssh = new Map<string, SshTunnel>();
  return {
    endAtExpiry(socket, claims) {
      new Deadline(socket, claims.expiresAt, logger);
    },
    open(socket, claims) {
      const id = randomBytes(TUNNEL_ID_BYTES).toString('base64url');
      ssh.set(id, { claims, deadline: new Deadline(socket, claims.expiresAt, logger) });
      socket.once('close', () => ssh.delete(id));
      return id;
    },
    renew(id, claims) {
      const tunnel = ssh.get(id);
      // A tunnel of another gitspace is not found here: the id is all a renewal names it by.
      if (!tunnel || tunnel.claims.gitspaceId !== claims.gitspaceId) {
        return { status: 404, code: 'tunnel_not_found', message: 'no open SSH tunnel has this id: connect again' };
      }
      if (tunnel.claims.userId !== claims.userId) {
        return { status: 403, code: 'tunnel_other_user', message: 'this SSH tunnel was opened by another user' };
      }
      if (tunnel.claims.runId !== claims.runId) {
        return {
          status: 401,
          code: 'token_revoked',
          message: 'the access token is of another run of the gitspace than the tunnel: connect again',
        };
      }
      tunnel.deadline.extend(claims.expiresAt);
      return undefined;
    },
    count: () => ssh.size,
  };
}

/** Ends a socket at a time (seconds since the epoch) that may be moved later. */
class Deadline {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Duplex,
    private expiresAt: number,
    private readonly logger: Logger,
  ) {
    this.arm();
    socket.once('close', () => clearTimeout(this.timer));
  }

  extend(expiresAt: number): void {
    if (expiresAt <= this.expiresAt) return;
    this.expiresAt = expiresAt;
    clearTimeout(this.timer);
    this.arm();
  }

  private arm(): void {
    const left = this.expiresAt * 1000 - Date.now();
    this.timer = setTimeout(
      () => {
        if (left > MAX_TIMER_MS) return this.arm();
        this.logger.info('closing a tunnel whose access token expired');
        this.socket.destroy();
      },
      Math.min(Math.max(0, left), MAX_TIMER_MS),
    );
  }
}
