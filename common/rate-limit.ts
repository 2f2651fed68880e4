import { isIPv4 } from 'node:net';

/**
 * Per-client limits shared by the API and the gateway (DESIGN.md §8, Limits): token buckets by key, and the key a
 * client address is limited under.
 */

/** What a bucket may hold and how fast it refills: `max` per `windowMs`, at most `max` at once. */
export interface RateLimit {
  max: number;
  windowMs: number;
}

/**
 * Token buckets by key: each key may spend `max` per `windowMs`, `max` at once at most. In memory, per process, and
 * bounded in keys: past `maxKeys` the least recently used buckets are forgotten (a forgotten bucket is a full one, so
 * forgetting only ever allows more).
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;
  private readonly capacity: number;
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(options: RateLimit & { maxKeys?: number; now?: () => number }) {
    this.capacity = options.max;
    this.perMs = options.max / options.windowMs;
    this.maxKeys = options.maxKeys ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  /** Spends one token: 0 when there was one, else the whole seconds until there is one (nothing spent). */
  take(key: string): number {
    const bucket = this.current(key);
    const wait = this.waitFor(bucket);
    if (wait === 0) bucket.tokens -= 1;
    this.keep(key, bucket);
    return wait;
  }

  /** The whole seconds until the key has a token (0 when it has one now); spends nothing. */
  wait(key: string): number {
    return this.buckets.has(key) ? this.waitFor(this.current(key)) : 0;
  }

  /** Gives back a token spent on something that turned out not to count. */
  refund(key: string): void {
    const bucket = this.current(key);
    bucket.tokens = Math.min(this.capacity, bucket.tokens + 1);
    this.keep(key, bucket);
  }

  private waitFor(bucket: { tokens: number }): number {
    return bucket.tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000));
  }

  private current(key: string): { tokens: number; at: number } {
    const now = this.now();
    const bucket = this.buckets.get(key);
    if (!bucket) return { tokens: this.capacity, at: now };
    return { tokens: Math.min(this.capacity, bucket.tokens + Math.max(0, now - bucket.at) * this.perMs), at: now };
  }

  private keep(key: string, bucket: { tokens: number; at: number }): void {
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    if (this.buckets.size <= this.maxKeys) return;
    for (const oldest of this.buckets.keys()) {
      this.buckets.delete(oldest);
      if (this.buckets.size <= this.maxKeys) break;
    }
  }
}

/** An IPv4 address as a dual-stack socket reports it (`::ffff:10.0.0.1`) in its plain form. */
export function unmapped(address: string): string {
  const ipv4 = address.slice(7);
  return address.slice(0, 7).toLowerCase() === '::ffff:' && isIPv4(ipv4) ? ipv4 : address;
}

/**
 * The key a client address is limited under: an IPv4 address as it is, an IPv6 address by its /64 (one host's
 * usual share, which it can fill with addresses at will).
 */
export function clientAddressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const bare = unmapped(address.split('%')[0]!);
  if (!bare.includes(':')) return bare;
  const [head = '', tail] = bare.split('::');
  const front = head === '' ? [] : head.split(':');
  const back = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined
      ? front
      : [...front, ...Array<string>(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back];
  return `${groups
    .slice(0, 4)
    .map((group) => (parseInt(group, 16) || 0).toString(16))
    .join(':')}::/64`;
}
