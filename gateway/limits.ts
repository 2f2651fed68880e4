/**
 * Per-client limits of the gateway's public listener (DESIGN.md §8, Limits): how many connections one client may hold
 * open, and how many failed token checks it may cause before it is slowed down.
 */

/** Default cap on open connections per client address (a browser opens six per host). */
export const DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 256;

/** Default slow-down: after this many failed token checks from one address within the window, 429 until it ends. */
export const DEFAULT_AUTH_FAILURE_LIMIT = { max: 20, windowMs: 60_000 };

/** Entries kept before the expired ones are swept (a flood from many addresses must not grow memory unbounded). */
const MAX_TRACKED_ADDRESSES = 100_000;

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

export interface AuthFailureLimit {
  /** Failed token checks allowed per window and address. */
  max: number;
  windowMs: number;
}

/**
 * Failed token checks per client address in a fixed window that starts with its first failure. Once an address has
 * used up its failures, {@link retryAfterSeconds} says how long it has to wait: until the window ends.
 */
export class AuthFailureLimiter {
  private readonly windows = new Map<string, { failures: number; endsAt: number }>();

  constructor(
    private readonly limit: AuthFailureLimit = DEFAULT_AUTH_FAILURE_LIMIT,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until the address may try again (rounded up), or 0 when it may try now. */
  retryAfterSeconds(address: string): number {
    const window = this.windows.get(address);
    if (!window) return 0;
    const left = window.endsAt - this.now();
    if (left <= 0) {
      this.windows.delete(address);
      return 0;
    }
    return window.failures >= this.limit.max ? Math.ceil(left / 1000) : 0;
  }

  failed(address: string): void {
    const now = this.now();
    const window = this.windows.get(address);
    if (window && window.endsAt > now) {
      window.failures++;
      return;
    }
    if (this.windows.size >= MAX_TRACKED_ADDRESSES) this.sweep(now);
    this.windows.set(address, { failures: 1, endsAt: now + this.limit.windowMs });
  }

  private sweep(now: number): void {
    for (const [address, window] of this.windows) if (window.endsAt <= now) this.windows.delete(address);
    // Still full of live windows (a spread-out flood): forgetting them all is better than growing without bound.
    if (this.windows.size >= MAX_TRACKED_ADDRESSES) this.windows.clear();
  }
}
