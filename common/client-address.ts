import net from 'node:net';
import { unmapped } from './rate-limit';

/**
 * Who a connection really comes from. The socket's address is the truth, unless it is a reverse proxy the operator
 * configured as trusted (`GITSPACES_GATEWAY_TRUSTED_PROXIES` for the gateway, `GITSPACES_API_TRUSTED_PROXIES` for the API): only then are the client's `X-Forwarded-For` and
 * `X-Forwarded-Proto` believed. Anything a client sends directly is replaced.
 */

/** Thrown for an entry of the trusted proxies list that is neither an IP address nor a CIDR range. */
export class InvalidTrustedProxyError extends Error {
  constructor(readonly entry: string) {
    super(`'${entry}' is not an IP address or CIDR range (like 10.0.0.5, 10.0.0.0/8 or fd00::/8)`);
    this.name = 'InvalidTrustedProxyError';
  }
}

/** The set of addresses whose forwarding headers are believed. */
export class TrustedProxies {
  private readonly list = new net.BlockList();
  /** The addresses and ranges as configured (for the start-up log). */
  readonly entries: readonly string[];
  /** No proxy is trusted: the common case, answered without a lookup. */
  readonly none: boolean;

  /** `entries`: IP addresses and CIDR ranges, IPv4 or IPv6; throws {@link InvalidTrustedProxyError}. */
  constructor(entries: readonly string[] = []) {
    this.entries = entries.map((entry) => entry.trim()).filter(Boolean);
    for (const entry of this.entries) this.add(entry);
    this.none = this.entries.length === 0;
  }

  /** Parses a comma-separated list (the environment variable's form). */
  static parse(list: string | undefined): TrustedProxies {
    return new TrustedProxies(list ? list.split(',') : []);
  }

  trusts(address: string | undefined): boolean {
    if (this.none || !address) return false;
    const plain = unmapped(address);
    const family = net.isIP(plain);
    return family !== 0 && this.list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * The address of the client behind a connection: the socket's peer, or, when the peer is a trusted proxy, the
   * nearest address in `X-Forwarded-For` (from the right) that is not itself a trusted proxy.
   */
  clientOf(socketAddress: string, forwardedFor: string | undefined): string {
    const peer = unmapped(socketAddress);
    if (!forwardedFor || !this.trusts(peer)) return peer;
    const hops = forwardedFor.split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = unmapped(hops[i]!.trim());
      if (net.isIP(hop) === 0) return peer; // a value we cannot read: the proxy is the best we know
      if (!this.trusts(hop)) return hop;
    }
    return peer;
  }

  private add(entry: string): void {
    const slash = entry.indexOf('/');
    const address = slash < 0 ? entry : entry.slice(0, slash);
    const family = net.isIP(address);
    if (family === 0) throw new InvalidTrustedProxyError(entry);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash < 0) return this.list.addAddress(address, type);
    const prefixText = entry.slice(slash + 1);
    const prefix = Number(prefixText);
    if (!/^\d{1,3}$/.test(prefixText) || prefix > (family === 4 ? 32 : 128)) {
      throw new InvalidTrustedProxyError(entry);
    }
    this.list.addSubnet(address, prefix, type);
  }
}
