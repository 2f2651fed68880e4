import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Refusal codes that are about the request's access token or where it came from: `auth_refusals_total{reason}`. */
const AUTH_REFUSALS = new Set([
  'token_missing',
  'token_expired',
  'token_invalid',
  'token_revoked',
  'token_other_gitspace',
  'token_scope',
  'keys_unavailable',
  'too_many_failures',
  'cross_site',
  'cross_origin',
]);
/** Refusals that are the gitspace machine's failure, not the client's: outcome `upstream_failed`. */
const UPSTREAM_FAILURES = new Set(['machine_timeout', 'machine_unreachable']);

/** How long a gitspace machine takes to answer a forwarded request's head: a millisecond to the 30 s deadline. */
const UPSTREAM_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export type ExchangeKind = 'http' | 'websocket';

/**
 * The gateway's metrics, served on its admin listener (`GET /metrics`, admin token). The hot path only adds to plain
 * integers (and one histogram observation per forwarded exchange); the prom-client series are filled from them when
 * scraped, so a request costs no label objects or map lookups. A registry of its own per gateway, not prom-client's
 * global one.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  /** HTTP requests by outcome (upgrades are counted apart). */
  private readonly http = { forwarded: 0, redirected: 0, refused: 0, upstream_failed: 0 };
  /** WebSocket upgrades by outcome. */
  private readonly websocket = { forwarded: 0, refused: 0, upstream_failed: 0 };
  private readonly authRefusals = new Map<string, number>();
  /** WebSocket tunnels open now. */
  private readonly tunnels = { open: 0 };
  private readonly upstreamSeconds: Histogram<'kind'>;
  private readonly httpUpstream;
  private readonly websocketUpstream;
  /** Bound once: the close listener of every tunnelled WebSocket. */
  readonly webSocketClosed = () => {
    this.tunnels.open--;
  };

  constructor(
    gauges: { openConnections(): number; openSshTunnels(): number },
    options: { defaultMetrics?: boolean } = {},
  ) {
    const registers = [this.registry];
    const outcomes = <T extends Record<string, number>>(counter: Counter<'outcome'>, counts: T) => {
      counter.reset();
      for (const outcome in counts) counter.inc({ outcome }, counts[outcome]!);
    };
    const http = this.http;
    const websocket = this.websocket;
    const authRefusals = this.authRefusals;
    new Counter({
      name: 'gitspaces_gateway_requests_total',
      help: 'HTTP requests on the public listener by outcome: forwarded (the machine answered), redirected, refused by the gateway, upstream_failed (502/504).',
      labelNames: ['outcome'],
      registers,
      collect() {
        outcomes(this, http);
      },
    });
    new Counter({
      name: 'gitspaces_gateway_websocket_upgrades_total',
      help: 'WebSocket upgrades on the public listener by outcome: forwarded (the machine answered), refused, upstream_failed.',
      labelNames: ['outcome'],
      registers,
      collect() {
        outcomes(this, websocket);
      },
    });
    new Counter({
      name: 'gitspaces_gateway_auth_refusals_total',
      help: 'Requests and upgrades refused for their access token or origin, by reason (the refusal code).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, count] of authRefusals) this.inc({ reason }, count);
      },
    });
    new Gauge({
      name: 'gitspaces_gateway_open_connections',
      help: 'Open client connections on the public listener (keep-alive and WebSocket ones included).',
      registers,
      collect() {
        this.set(gauges.openConnections());
      },
    });
    const tunnels = this.tunnels;
    new Gauge({
      name: 'gitspaces_gateway_open_websockets',
      help: 'WebSocket tunnels open between clients and gitspace machines.',
      registers,
      collect() {
        this.set(tunnels.open);
      },
    });
    new Gauge({
      name: 'gitspaces_gateway_ssh_tunnels_open',
      help: 'SSH tunnels (WebSockets of `gitspaces ssh`, counted among the open WebSockets too) open now.',
      registers,
      collect() {
        this.set(gauges.openSshTunnels());
      },
    });
    this.upstreamSeconds = new Histogram({
      name: 'gitspaces_gateway_upstream_response_seconds',
      help: "Time from forwarding a request (or upgrade) to the gitspace machine's response head, by kind.",
      labelNames: ['kind'],
      buckets: UPSTREAM_BUCKETS,
      registers,
    });
    this.httpUpstream = this.upstreamSeconds.labels({ kind: 'http' });
    this.websocketUpstream = this.upstreamSeconds.labels({ kind: 'websocket' });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** A refusal the gateway answered itself (`code` is the refusal's code). */
  refused(kind: ExchangeKind, code: string): void {
    const counts = kind === 'http' ? this.http : this.websocket;
    if (UPSTREAM_FAILURES.has(code)) counts.upstream_failed++;
    else counts.refused++;
    if (AUTH_REFUSALS.has(code)) this.authRefusals.set(code, (this.authRefusals.get(code) ?? 0) + 1);
  }

  redirected(): void {
    this.http.redirected++;
  }

  /** The machine answered a forwarded exchange started at `startedAt` (performance.now()). */
  answered(kind: ExchangeKind, startedAt: number): void {
    const seconds = (performance.now() - startedAt) / 1000;
    if (kind === 'http') {
      this.http.forwarded++;
      this.httpUpstream.observe(seconds);
    } else {
      this.websocket.forwarded++;
      this.websocketUpstream.observe(seconds);
    }
  }

  /** A WebSocket tunnel opened; call {@link webSocketClosed} when its socket closes. */
  webSocketOpened(): void {
    this.tunnels.open++;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
