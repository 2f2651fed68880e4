/**
 * GET /metrics: the control plane's numbers in the Prometheus text format (version 0.0.4), from a prom-client
 * registry of its own (not prom-client's global one, so several apps can live in one process). What reconciliation
 * did and the gitspaces by state are read from the database at each scrape, so every control-plane replica answers the
 * same and nothing is lost on a restart; request and lifecycle durations and the process's own numbers are this
 * replica's.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ReconcileOutcome } from '../db/schema';
import type { Store } from '../db/store';

type Snapshot = Awaited<ReturnType<Store['readMetrics']>>;

/** The Prometheus content type of the text format. */
export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** Label of a request that matched no route (a 404, a 405): one series for all of them, whatever the path. */
export const UNMATCHED_ROUTE = '(unmatched)';

/** Counter name and labels of each reconciliation outcome; machine actions share one counter with an `action` label. */
const OUTCOME_SERIES: Record<ReconcileOutcome, { name: ReconcileCounter; action?: 'stopped' | 'deleted' }> = {
  runs: { name: 'gitspaces_reconcile_runs_total' },
  machinesStopped: { name: 'gitspaces_reconcile_machines_total', action: 'stopped' },
  machinesDeleted: { name: 'gitspaces_reconcile_machines_total', action: 'deleted' },
  routesRemoved: { name: 'gitspaces_reconcile_routes_removed_total' },
  actionsFailed: { name: 'gitspaces_reconcile_repairs_failed_total' },
};
type ReconcileCounter =
  | 'gitspaces_reconcile_runs_total'
  | 'gitspaces_reconcile_machines_total'
  | 'gitspaces_reconcile_routes_removed_total'
  | 'gitspaces_reconcile_repairs_failed_total';

/** How long lifecycle operations take, from the request to the recorded end: seconds to an hour. */
const LIFECYCLE_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];

export interface ApiMetrics {
  registry: Registry;
  /** `gitspaces_http_request_duration_seconds{method,route,status}`: `route` is the route's template, never the path. */
  httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  /** `gitspaces_lifecycle_duration_seconds{action,outcome}`, observed by the control-plane worker. */
  lifecycleDuration: Histogram<'action' | 'outcome'>;
  /** Reads the database's numbers and renders everything as Prometheus text. */
  render(): Promise<string>;
}

/**
 * The control plane's metrics on a registry of their own. `defaultMetrics`: the process's CPU, memory, event loop and
 * GC (prom-client's default metrics), on by default.
 */
export function createApiMetrics(
  store: Pick<Store, 'readMetrics'>,
  options: { defaultMetrics?: boolean } = {},
): ApiMetrics {
  const registry = new Registry();
  const counter = (name: ReconcileCounter, help: string, labelNames: string[]) =>
    new Counter({ name, help, labelNames, registers: [registry] });
  const reconcileCounters: Record<ReconcileCounter, Counter> = {
    gitspaces_reconcile_runs_total: counter(
      'gitspaces_reconcile_runs_total',
      'Reconciliation runs finished, per infrastructure.',
      ['infrastructure'],
    ),
    gitspaces_reconcile_machines_total: counter(
      'gitspaces_reconcile_machines_total',
      'Machines reconciliation stopped or deleted (leftovers, orphans), per infrastructure.',
      ['infrastructure', 'action'],
    ),
    gitspaces_reconcile_routes_removed_total: counter(
      'gitspaces_reconcile_routes_removed_total',
      'Gateway routes reconciliation removed because their machine was not running.',
      ['infrastructure'],
    ),
    gitspaces_reconcile_repairs_failed_total: counter(
      'gitspaces_reconcile_repairs_failed_total',
      'Repairs that failed after their retries (the next run tries again).',
      ['infrastructure'],
    ),
  };
  const lastRun = new Gauge({
    name: 'gitspaces_reconcile_last_run_timestamp_seconds',
    help: 'When reconciliation last finished on the infrastructure (Unix time).',
    labelNames: ['infrastructure'],
    registers: [registry],
  });
  const orphans = new Gauge({
    name: 'gitspaces_orphan_machines',
    help: 'Machines of unknown gitspaces seen by the last run, kept stopped until their grace period ends.',
    labelNames: ['infrastructure'],
    registers: [registry],
  });
  const gitspaces = new Gauge({
    name: 'gitspaces_gitspaces',
    help: 'Gitspace records per infrastructure and state.',
    labelNames: ['infrastructure', 'state'],
    registers: [registry],
  });
  const httpRequestDuration = new Histogram({
    name: 'gitspaces_http_request_duration_seconds',
    help: 'API requests by method, route template and status, and how long they took to answer.',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const lifecycleDuration = new Histogram({
    name: 'gitspaces_lifecycle_duration_seconds',
    help: 'Lifecycle operations (start, stop, delete) from their request to their recorded end, by outcome.',
    labelNames: ['action', 'outcome'],
    buckets: LIFECYCLE_BUCKETS,
    registers: [registry],
  });
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

  /** Replaces the database-backed series with a snapshot, at once (no await in between). */
  const update = (snapshot: Snapshot) => {
    for (const metric of [...Object.values(reconcileCounters), lastRun, orphans, gitspaces]) metric.reset();
    for (const row of snapshot.reconcileTotals) {
      const series = OUTCOME_SERIES[row.outcome];
      reconcileCounters[series.name].inc(
        { infrastructure: row.infrastructureId, ...(series.action ? { action: series.action } : {}) },
        row.total,
      );
      if (row.outcome === 'runs') {
        lastRun.set({ infrastructure: row.infrastructureId }, Math.floor(new Date(row.updatedAt).getTime() / 1000));
      }
    }
    for (const row of snapshot.orphanMachines) orphans.set({ infrastructure: row.infrastructureId }, row.count);
    for (const row of snapshot.gitspaces) {
      gitspaces.set({ infrastructure: row.infrastructureId, state: row.state }, row.count);
    }
  };

  return {
    registry,
    httpRequestDuration,
    lifecycleDuration,
    async render() {
      update(await store.readMetrics());
      return registry.metrics();
    },
  };
}
