/**
 * Where a repository URL leads, checked where the clone runs (DESIGN.md §8): the URL is put in one canonical form,
 * its host is resolved once, and every address it resolves to must be one the infrastructure allows. The clone then
 * connects to the addresses checked here (agent/git.ts), so a second resolution cannot lead elsewhere.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';

/** Repository URL schemes a gitspace may clone from; anything else could read the machine's own disk. */
export const ALLOWED_REPOSITORY_SCHEMES = ['https:', 'http:', 'ssh:', 'git:'] as const;

/**
 * The infrastructure setting `config.repositoryNetworks`: which internal networks a repository may live on. Both are
 * off by default; link-local and metadata addresses are refused whatever it says.
 */
export const repositoryNetworksSchema = z.strictObject({
  /** Repositories on the machine itself (127.0.0.0/8, ::1): git servers on the runner host of a `local` setup. */
  allowLoopback: z.boolean().optional(),
  /** Repositories on private networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): on-premises git servers. */
  allowPrivate: z.boolean().optional(),
});
export type RepositoryNetworks = z.infer<typeof repositoryNetworksSchema>;

/** Resolves a host name to all its addresses (dns.lookup by default: the system resolver, as git would use). */
export type HostLookup = (hostname: string) => Promise<readonly { address: string; family: number }[]>;

const systemLookup: HostLookup = (hostname) => dnsLookup(hostname, { all: true });

/** A repository URL whose host resolved to addresses the infrastructure allows. */
export interface RepositoryEndpoint {
  /** The canonical URL: what git is given (the host is still a name when the URL named one). */
  url: URL;
  scheme: 'https' | 'http' | 'ssh' | 'git';
  /** The canonical host: a lower-case name without a trailing dot, or an IP address (IPv6 without brackets). */
  host: string;
  /** Whether `host` is an IP address rather than a name. */
  hostIsAddress: boolean;
  port: number;
  /** Every address the host resolved to, all checked; the clone connects only to these. */
  addresses: string[];
}

/** Why an address is refused; `unreachable` (the host does not resolve) is told apart from nothing else. */
export type AddressRule = 'invalid' | 'unreachable' | 'link-local' | 'unroutable' | 'loopback' | 'private';

export type EndpointCheck =
  { ok: true; endpoint: RepositoryEndpoint } | { ok: false; rule: AddressRule; reason: string; detail?: string };

const DEFAULT_PORTS = { https: 443, http: 80, ssh: 22, git: 9418 } as const;
const HOST_NAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;
const USER_NAME = /^[A-Za-z0-9._~][A-Za-z0-9._~-]*$/;

/**
 * Puts `rawUrl` in canonical form, resolves its host once and checks every address against the rules and `networks`.
 * Never connects anywhere: a refused address is refused before any packet is sent to it.
 */
export async function checkRepositoryEndpoint(
  rawUrl: string,
  networks: RepositoryNetworks,
  lookup: HostLookup = systemLookup,
): Promise<EndpointCheck> {
  const parsed = canonicalRepositoryUrl(rawUrl);
  if (!parsed.ok) return parsed;
  const { url, scheme, host, hostIsAddress } = parsed;
  let addresses = [host];
  if (!hostIsAddress) {
    try {
      addresses = (await lookup(host)).map((r) => r.address);
    } catch (error) {
      return { ok: false, rule: 'unreachable', reason: 'the repository host does not resolve', detail: String(error) };
    }
  }
  if (addresses.length === 0) return { ok: false, rule: 'unreachable', reason: 'the repository host does not resolve' };
  for (const address of addresses) {
    const refusal = refusalOf(classifyAddress(address), networks);
    if (refusal) return { ok: false, ...refusal };
  }
  const port = url.port ? Number(url.port) : DEFAULT_PORTS[scheme];
  return { ok: true, endpoint: { url, scheme, host, hostIsAddress, port, addresses } };
}

type CanonicalUrl =
  | { ok: true; url: URL; scheme: RepositoryEndpoint['scheme']; host: string; hostIsAddress: boolean }
  | { ok: false; rule: 'invalid'; reason: string };

/**
 * The URL as git will be given it. WHATWG parsing normalises the host of http(s) URLs (`0x7f000001`, `2130706433`,
 * `127.1` all become `127.0.0.1`) but keeps the host of ssh:// and git:// URLs opaque, so those hosts go through the
 * same host parser; anything but a plain name or an IP address is refused rather than left to another parser.
 */
export function canonicalRepositoryUrl(rawUrl: string): CanonicalUrl {
  const invalid = (why: string): CanonicalUrl => ({ ok: false, rule: 'invalid', reason: `the repository URL ${why}` });
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
  if (/[\s\0-\x1f\x7f\\]/.test(rawUrl)) return invalid('contains spaces, control characters or backslashes');
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return invalid('is not a URL');
  }
  if (!(ALLOWED_REPOSITORY_SCHEMES as readonly string[]).includes(url.protocol)) {
    return invalid(`has scheme '${url.protocol.replace(/:$/, '')}', which is not allowed`);
  }
  const scheme = url.protocol.slice(0, -1) as RepositoryEndpoint['scheme'];
  if (url.password) return invalid('carries a password');
  if (url.username && !USER_NAME.test(url.username)) return invalid('has a user name git could misread');
  let host = url.hostname;
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
    if (!isIPv6(host)) return invalid('has an invalid IPv6 address');
  } else {
    try {
      // The http host parser: IDNA, lower case, every IPv4 spelling to dotted decimal; throws on what is neither.
      host = new URL(`http://${host}/`).hostname;
    } catch {
      return invalid('has an invalid host');
    }
    if (host.endsWith('.')) host = host.slice(0, -1);
    if (!isIPv4(host) && !HOST_NAME.test(host)) return invalid('has an invalid host');
  }
  const hostIsAddress = isIPv4(host) || isIPv6(host);
  const canonical = new URL(url.href);
  // Only a changed host is written back: a non-special URL keeps its opaque host otherwise.
  if (host !== url.hostname) canonical.hostname = isIPv6(host) ? `[${host}]` : host;
  if (canonical.hostname !== (isIPv6(host) ? `[${host}]` : host))
    return invalid('has a host that cannot be normalised');
  canonical.hash = '';
  return { ok: true, url: canonical, scheme, host, hostIsAddress };
}

/** What an address is, as far as the rules care. `public` is everything else. */
export type AddressClass = 'link-local' | 'unroutable' | 'loopback' | 'private' | 'public';

function blockList(subnets: [string, number][]): BlockList {
  const list = new BlockList();
  for (const [network, prefix] of subnets) list.addSubnet(network, prefix, isIPv6(network) ? 'ipv6' : 'ipv4');
  return list;
}

/** Link-local networks, where cloud metadata services answer, and the metadata addresses outside them. */
const LINK_LOCAL = blockList([
  ['169.254.0.0', 16], // link-local; 169.254.169.254 is the metadata service of AWS, GCP, Azure, OCI
  ['fe80::', 10],
  ['fd00:ec2::254', 128], // the AWS metadata service over IPv6
  ['100.100.100.200', 32], // the Alibaba Cloud metadata service
]);
/** Addresses no repository lives at: unspecified (0.0.0.0 reaches this host), multicast, reserved, broadcast. */
const UNROUTABLE = blockList([
  ['0.0.0.0', 8],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
  ['::', 128],
  ['ff00::', 8],
]);
const LOOPBACK = blockList([
  ['127.0.0.0', 8],
  ['::1', 128],
]);
const PRIVATE = blockList([
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['100.64.0.0', 10], // carrier-grade NAT, used as a private range by clouds
  ['192.0.0.0', 24],
  ['198.18.0.0', 15],
  ['fc00::', 7],
  ['fec0::', 10], // deprecated site-local
  ['64:ff9b:1::', 48], // local-use NAT64
]);

/** Classifies one resolved address; an IPv6 address that embeds an IPv4 one is classified by the IPv4 one. */
export function classifyAddress(rawAddress: string): AddressClass {
  const address = rawAddress.replace(/%.*$/, ''); // a zone index (fe80::1%eth0) names an interface, not a network
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (!family) return 'unroutable';
  if (LINK_LOCAL.check(address, family)) return 'link-local';
  if (UNROUTABLE.check(address, family)) return 'unroutable';
  if (LOOPBACK.check(address, family)) return 'loopback';
  if (PRIVATE.check(address, family)) return 'private';
  if (family === 'ipv6') {
    const embedded = embeddedIPv4(address);
    if (embedded) return classifyAddress(embedded);
  }
  return 'public';
}

/**
 * The IPv4 address inside an IPv6 one that carries it to an IPv4 host: IPv4-mapped (::ffff:a.b.c.d), -translated
 * (::ffff:0:a.b.c.d), -compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
 */
function embeddedIPv4(address: string): string | undefined {
  const bytes = ipv6Bytes(address);
  const zero = (from: number, to: number) => bytes.slice(from, to).every((b) => b === 0);
  const v4 = (at: number) => bytes.slice(at, at + 4).join('.');
  if (zero(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return v4(12);
  if (zero(0, 8) && bytes[8] === 0xff && bytes[9] === 0xff && zero(10, 12)) return v4(12);
  if (zero(0, 12)) return v4(12);
  if (bytes[0] === 0x00 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && zero(4, 12)) return v4(12);
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return v4(2);
  return undefined;
}

/** The 16 bytes of a valid IPv6 address (with `::` and a trailing dotted IPv4 part expanded). */
function ipv6Bytes(address: string): number[] {
  let text = address;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  const all = [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

const RULE_REASONS = {
  'link-local': 'the repository host resolves to a link-local or metadata address, which is never allowed',
  unroutable: 'the repository host resolves to an unspecified, multicast or reserved address, which is never allowed',
  loopback:
    'the repository host resolves to a loopback address, which this infrastructure does not allow ' +
    '(config.repositoryNetworks.allowLoopback)',
  private:
    'the repository host resolves to a private address, which this infrastructure does not allow ' +
    '(config.repositoryNetworks.allowPrivate)',
} as const;

function refusalOf(
  kind: AddressClass,
  networks: RepositoryNetworks,
): { rule: Exclude<AddressRule, 'invalid' | 'unreachable'>; reason: string } | undefined {
  if (kind === 'public') return undefined;
  if (kind === 'loopback' && networks.allowLoopback) return undefined;
  if (kind === 'private' && networks.allowPrivate) return undefined;
  return { rule: kind, reason: RULE_REASONS[kind] };
}
