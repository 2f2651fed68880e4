import type { RateLimit } from '../common/rate-limit';

/**
 * Per-client limits of the gateway's public listener (DESIGN.md §8, Limits): how many connections one client may hold
 * open, and how many failed token checks it may cause before it is slowed down.
 */

/** Default cap on open connections per client address (a browser opens six per host). */
export const DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 256;

/** Default slow-down: 20 failed token checks per minute and client address (a burst of 20), then 429. */
export const DEFAULT_AUTH_FAILURE_LIMIT: RateLimit = { max: 20, windowMs: 60_000 };

/** Counts open connections per client address. */
export class ConnectionLimiter {
  private readonly open = new Map<string, number>();

  constructor(readonly maxPerClient: number) {}

  /** Counts a new connection; false (and not counted) when the client already holds the maximum. */
  acquire(address: string): boolean {
    const count = this.open.get(address) ?? 0;
    if (count >= this.maxPerClient) return false;
    this.open.set(address, count + 1);
    return true;
  }

  release(address: string): void {
    const count = this.open.get(address) ?? 0;
    if (count <= 1) this.open.delete(address);
    else this.open.set(address, count - 1);
  }
}
