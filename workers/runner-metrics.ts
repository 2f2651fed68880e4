import http from 'node:http';
import { listen as listenOn } from '../common/net';
import { performance } from 'node:perf_hooks';
import { CancelledFailure, type Context } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { bearerMatches } from '../common/bearer';

/** How long a runner's steps and provider calls take: a millisecond to the half hour a workspace step may run. */
const DURATION_BUCKETS = [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

type Outcome = 'succeeded' | 'failed' | 'cancelled';

/**
 * The runner's metrics (GET /metrics on its optional metrics listener): every infrastructure activity (each step of a
 * lifecycle, and reconciliation's) started, failed and timed by name, and every call to the cloud provider timed by
 * provider, method and outcome. A registry of its own, not prom-client's global one.
 */
export class RunnerMetrics {
  readonly registry = new Registry();
  private readonly started: Counter<'activity'>;
  private readonly failed: Counter<'activity'>;
  private readonly activitySeconds: Histogram<'activity' | 'outcome'>;
  private readonly providerSeconds: Histogram<'provider' | 'method' | 'outcome'>;
  private readonly instrumented = new WeakMap<object, object>();

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.started = new Counter({
      name: 'gitspaces_runner_activities_started_total',
      help: 'Infrastructure activities (lifecycle steps, reconciliation) this runner started, by name; retries count.',
      labelNames: ['activity'],
      registers,
    });
    this.failed = new Counter({
      name: 'gitspaces_runner_activities_failed_total',
      help: 'Infrastructure activities that failed (an attempt Temporal may retry), by name; cancellations are not failures.',
      labelNames: ['activity'],
      registers,
    });
    this.activitySeconds = new Histogram({
      name: 'gitspaces_runner_activity_duration_seconds',
      help: 'How long each activity attempt ran, by name and outcome (succeeded, failed, cancelled).',
      labelNames: ['activity', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.providerSeconds = new Histogram({
      name: 'gitspaces_runner_provider_call_duration_seconds',
      help: 'Calls to the cloud provider (local, aws, gcp) by method and outcome, and how long they took.',
      labelNames: ['provider', 'method', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The worker interceptor that counts and times every activity. */
  readonly activityInterceptor: ActivityInterceptorsFactory = (ctx: Context) => {
    const activity = ctx.info.activityType;
    return {
      inbound: {
        execute: async (input, next) => {
          this.started.inc({ activity });
          const began = performance.now();
          let outcome: Outcome = 'succeeded';
          try {
            return await next(input);
          } catch (error) {
            outcome = error instanceof CancelledFailure ? 'cancelled' : 'failed';
            if (outcome === 'failed') this.failed.inc({ activity });
            throw error;
          } finally {
            this.activitySeconds.observe({ activity, outcome }, (performance.now() - began) / 1000);
          }
        },
      },
    };
  };

  /** The same provider, with each of its methods timed (one wrapper per provider object). */
  instrumentProvider<T extends object>(provider: T, name: string): T {
    const known = this.instrumented.get(provider);
    if (known) return known as T;
    const histogram = this.providerSeconds;
    const wrapped = new Proxy(provider, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function' || typeof property !== 'string') return value;
        return function (this: unknown, ...args: unknown[]) {
          const began = performance.now();
          const observe = (outcome: Outcome) =>
            histogram.observe({ provider: name, method: property, outcome }, (performance.now() - began) / 1000);
          let result: unknown;
          try {
            result = (value as (...a: unknown[]) => unknown).apply(this === wrapped ? target : this, args);
          } catch (error) {
            observe('failed');
            throw error;
          }
          if (result instanceof Promise) {
            return result.then(
              (resolved: unknown) => {
                observe('succeeded');
                return resolved;
              },
              (error: unknown) => {
                observe(isAbort(error) ? 'cancelled' : 'failed');
                throw error;
              },
            );
          }
          observe('succeeded');
          return result;
        };
      },
    });
    this.instrumented.set(provider, wrapped);
    return wrapped;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

function isAbort(error: unknown): boolean {
  // An aborted signal's DOMException (not always an Error of this realm), or Temporal's cancellation.
  return (error as { name?: unknown } | null)?.name === 'AbortError' || error instanceof CancelledFailure;
}

export interface RunnerMetricsListen {
  host: string;
  port: number;
  /** Bearer token a scrape must carry; required unless the listener is on a loopback address (checked by main). */
  token?: string;
}

/** Whether a listen address is loopback only (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Serves `GET /metrics` (and `GET /healthz`) on its own listener; everything else is 404. */
export async function serveRunnerMetrics(
  metrics: Pick<RunnerMetrics, 'render'>,
  listen: RunnerMetricsListen,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const answer = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.url === '/healthz' && req.method === 'GET') return answer(200, 'ok\n');
    if (req.url !== '/metrics') return answer(404, 'not found\n');
    if (listen.token !== undefined && !bearerMatches(req.headers.authorization, listen.token)) {
      res.setHeader('www-authenticate', 'Bearer');
      return answer(401, 'the runner metrics token is missing or wrong\n');
    }
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET');
      return answer(405, 'use GET\n');
    }
    metrics.render().then(
      (text) => answer(200, text, 'text/plain; version=0.0.4; charset=utf-8'),
      () => answer(500, 'the metrics could not be rendered\n'),
    );
  });
  return {
    url: await listenOn(server, listen.port, listen.host),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
