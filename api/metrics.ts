/**
 * GET /metrics: the control plane's numbers in the Prometheus text format (version 0.0.4), read from its database
 * so every control-plane replica answers the same and nothing is lost on a restart.
 */
import type { ReconcileOutcome } from '../db/schema';
import type { Store } from '../db/store';

type Snapshot = Awaited<ReturnType<Store['readMetrics']>>;

/** The Prometheus content type of the text format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Counter name and help of each reconciliation outcome; machine actions share one counter with an `action` label. */
const OUTCOME_SERIES: Record<ReconcileOutcome, { name: string; labels?: Record<string, string> }> = {
  runs: { name: 'gitspaces_reconcile_runs_total' },
  machinesStopped: { name: 'gitspaces_reconcile_machines_total', labels: { action: 'stopped' } },
  machinesDeleted: { name: 'gitspaces_reconcile_machines_total', labels: { action: 'deleted' } },
  routesRemoved: { name: 'gitspaces_reconcile_routes_removed_total' },
  actionsFailed: { name: 'gitspaces_reconcile_repairs_failed_total' },
};

const HELP: Record<string, { type: 'counter' | 'gauge'; help: string }> = {
  gitspaces_reconcile_runs_total: { type: 'counter', help: 'Reconciliation runs finished, per infrastructure.' },
  gitspaces_reconcile_machines_total: {
    type: 'counter',
    help: 'Machines reconciliation stopped or deleted (leftovers, orphans), per infrastructure.',
  },
  gitspaces_reconcile_routes_removed_total: {
    type: 'counter',
    help: 'Gateway routes reconciliation removed because their machine was not running.',
  },
  gitspaces_reconcile_repairs_failed_total: {
    type: 'counter',
    help: 'Repairs that failed after their retries (the next run tries again).',
  },
  gitspaces_reconcile_last_run_timestamp_seconds: {
    type: 'gauge',
    help: 'When reconciliation last finished on the infrastructure (Unix time).',
  },
  gitspaces_orphan_machines: {
    type: 'gauge',
    help: 'Machines of unknown gitspaces seen by the last run, kept stopped until their grace period ends.',
  },
  gitspaces_gitspaces: { type: 'gauge', help: 'Gitspace records per infrastructure and state.' },
};

/** Renders a snapshot of the database's numbers as Prometheus text. */
export function renderMetrics(snapshot: Snapshot): string {
  const samples = new Map<string, string[]>();
  const add = (name: string, labels: Record<string, string>, value: number) => {
    const rendered = Object.entries(labels)
      .map(([key, label]) => `${key}="${escapeLabel(label)}"`)
      .join(',');
    samples.set(name, [...(samples.get(name) ?? []), `${name}{${rendered}} ${value}`]);
  };
  for (const row of snapshot.reconcileTotals) {
    const series = OUTCOME_SERIES[row.outcome];
    add(series.name, { infrastructure: row.infrastructureId, ...series.labels }, row.total);
    if (row.outcome === 'runs') {
      add(
        'gitspaces_reconcile_last_run_timestamp_seconds',
        { infrastructure: row.infrastructureId },
        Math.floor(new Date(row.updatedAt).getTime() / 1000),
      );
    }
  }
  for (const row of snapshot.orphanMachines) {
    add('gitspaces_orphan_machines', { infrastructure: row.infrastructureId }, row.count);
  }
  for (const row of snapshot.gitspaces) {
    add('gitspaces_gitspaces', { infrastructure: row.infrastructureId, state: row.state }, row.count);
  }
  const lines: string[] = [];
  for (const [name, { type, help }] of Object.entries(HELP)) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...(samples.get(name) ?? []));
  }
  return `${lines.join('\n')}\n`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
