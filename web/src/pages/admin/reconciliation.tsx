import { useMemo } from 'react';
import { PageHeader } from '../../components/page';
import { ErrorBanner, Loading, RelativeTime, TableHead } from '../../components/ui';
import { useMetricsReadings } from '../../data/hooks';
import { samplesOf, total, type Sample } from '../../data/prometheus';
import { AdminTabs } from './admin-tabs';

/** Read again this often while the page is open, so the orphan line shows a trend. */
const REFRESH_MS = 30_000;

/** The figures per infrastructure, from the series README "Reconciliation and metrics" lists. */
const FIGURES = [
  { key: 'orphans', label: 'Orphan machines awaiting grace', tone: 'warn' },
  { key: 'stopped', label: 'Machines stopped', tone: 'info' },
  { key: 'deleted', label: 'Machines deleted', tone: 'accent' },
  { key: 'routes', label: 'Routes removed', tone: 'muted' },
  { key: 'failed', label: 'Repairs failed', tone: 'error' },
] as const;
type FigureKey = (typeof FIGURES)[number]['key'];

interface InfrastructureFigures {
  infrastructure: string;
  runs: number;
  lastRun?: number;
  values: Record<FigureKey, number>;
}

export function reconciliationFigures(samples: Sample[]): InfrastructureFigures[] {
  const names = new Set(
    samples
      .filter((sample) => sample.name.startsWith('gitspaces_reconcile_') || sample.name === 'gitspaces_orphan_machines')
      .map((sample) => sample.labels.infrastructure)
      .filter((name): name is string => name !== undefined),
  );
  return [...names].sort().map((infrastructure) => {
    const of = { infrastructure };
    const lastRun = samplesOf(samples, 'gitspaces_reconcile_last_run_timestamp_seconds', of)[0]?.value;
    return {
      infrastructure,
      runs: total(samples, 'gitspaces_reconcile_runs_total', of),
      ...(lastRun ? { lastRun } : {}),
      values: {
        orphans: total(samples, 'gitspaces_orphan_machines', of),
        stopped: total(samples, 'gitspaces_reconcile_machines_total', { ...of, action: 'stopped' }),
        deleted: total(samples, 'gitspaces_reconcile_machines_total', { ...of, action: 'deleted' }),
        routes: total(samples, 'gitspaces_reconcile_routes_removed_total', of),
        failed: total(samples, 'gitspaces_reconcile_repairs_failed_total', of),
      },
    };
  });
}

/** What reconciliation found and did per infrastructure, from GET /metrics. */
export function AdminReconciliationPage() {
  const metrics = useMetricsReadings(REFRESH_MS);
  const figures = useMemo(() => reconciliationFigures(metrics.latest ?? []), [metrics.latest]);
  const orphanHistory = metrics.readings.map((reading) => total(reading.samples, 'gitspaces_orphan_machines'));

  return (
    <>
      <AdminTabs />
      <PageHeader
        title="Reconciliation"
        subtitle="What the reconciliation runs found and repaired: machines nobody owns, machines left running, stale routes."
        actions={
          <button type="button" className="button" onClick={metrics.read} disabled={metrics.loading}>
            {metrics.loading ? 'Refreshing…' : 'Refresh'}
          </button>
        }
      />
      <ErrorBanner error={metrics.error} title="Could not read /metrics" />
      {!metrics.latest && metrics.loading && <Loading label="Reading the metrics…" />}
      {metrics.latest && figures.length === 0 && (
        <p className="empty">No reconciliation has run yet. It runs at control-plane start and on its schedule.</p>
      )}
      {figures.length > 0 && (
        <>
          <section className="card" aria-labelledby="chart-title">
            <h2 id="chart-title">Per infrastructure</h2>
            <BarChart figures={figures} />
          </section>
          <section className="card" aria-labelledby="orphans-title">
            <h2 id="orphans-title">Orphan machines while this page is open</h2>
            <Sparkline points={orphanHistory} />
            <p className="muted small">
              Now {orphanHistory.at(-1) ?? 0}; read every {REFRESH_MS / 1000} s. An orphan is a machine with this
              installation’s label and no gitspace record: stopped at once, deleted after the grace period.
            </p>
          </section>
          <div className="table-wrap">
            <table>
              <caption>Reconciliation figures (counters since the control plane’s database began)</caption>
              <TableHead columns={['Infrastructure', 'Runs', 'Last run', ...FIGURES.map((figure) => figure.label)]} />
              <tbody>
                {figures.map((row) => (
                  <tr key={row.infrastructure}>
                    <th scope="row">{row.infrastructure}</th>
                    <td>{row.runs}</td>
                    <td>{row.lastRun ? <RelativeTime iso={new Date(row.lastRun * 1000).toISOString()} /> : 'never'}</td>
                    {FIGURES.map((figure) => (
                      <td
                        key={figure.key}
                        className={figure.key === 'failed' && row.values.failed > 0 ? 'error-text' : undefined}
                      >
                        {row.values[figure.key]}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </>
  );
}

const ROW_HEIGHT = 20;
const BAR_HEIGHT = 12;
const LABEL_WIDTH = 210;
const CHART_WIDTH = 640;
const HEADING_HEIGHT = 24;

/** A group of labelled bars per infrastructure, scaled to the largest figure; the table below gives the numbers. */
function BarChart({ figures }: { figures: InfrastructureFigures[] }) {
  const largest = Math.max(1, ...figures.flatMap((row) => Object.values(row.values)));
  const groupHeight = HEADING_HEIGHT + FIGURES.length * ROW_HEIGHT + 12;
  const scale = (value: number) => ((CHART_WIDTH - LABEL_WIDTH - 40) * value) / largest;
  const summary = figures
    .map(
      (row) =>
        `${row.infrastructure}: ${FIGURES.map((f) => `${row.values[f.key]} ${f.label.toLowerCase()}`).join(', ')}`,
    )
    .join('; ');
  return (
    <svg
      className="chart"
      viewBox={`0 0 ${CHART_WIDTH} ${figures.length * groupHeight}`}
      role="img"
      aria-label={`Reconciliation per infrastructure. ${summary}`}
    >
      {figures.map((row, group) => (
        <g key={row.infrastructure} transform={`translate(0 ${group * groupHeight})`}>
          <text x={0} y={16} className="chart-heading">
            {row.infrastructure}
          </text>
          {FIGURES.map((figure, index) => {
            const y = HEADING_HEIGHT + index * ROW_HEIGHT;
            const width = scale(row.values[figure.key]);
            return (
              <g key={figure.key}>
                <text x={0} y={y + BAR_HEIGHT - 1} className="chart-label">
                  {figure.label}
                </text>
                <rect
                  x={LABEL_WIDTH}
                  y={y}
                  width={Math.max(width, 1.5)}
                  height={BAR_HEIGHT}
                  rx={2}
                  className={`bar-${figure.tone}`}
                />
                <text x={LABEL_WIDTH + width + 6} y={y + BAR_HEIGHT - 1} className="chart-value">
                  {row.values[figure.key]}
                </text>
              </g>
            );
          })}
        </g>
      ))}
    </svg>
  );
}

/** A line of the values over time, 0 at the bottom. */
function Sparkline({ points }: { points: number[] }) {
  const width = 600;
  const height = 60;
  if (points.length < 2) return <p className="muted small">The line appears after the next reading.</p>;
  const top = Math.max(1, ...points);
  const coordinates = points
    .map((value, index) => `${(index / (points.length - 1)) * width},${height - 4 - (value / top) * (height - 8)}`)
    .join(' ');
  return (
    <svg
      className="chart sparkline"
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`Orphan machines over the last ${points.length} readings: from ${points[0]} to ${points.at(-1)}, at most ${top}.`}
    >
      <polyline points={coordinates} className="sparkline-line" />
    </svg>
  );
}
