import { parsePrometheusText, total } from './prometheus';

const TEXT = `# HELP gitspaces_reconcile_machines_total machines stopped or deleted
# TYPE gitspaces_reconcile_machines_total counter
gitspaces_reconcile_machines_total{infrastructure="gcp-eu",action="stopped"} 5
gitspaces_reconcile_machines_total{infrastructure="gcp-eu",action="deleted"} 2
gitspaces_reconcile_machines_total{infrastructure="local",action="stopped"} 3
gitspaces_orphan_machines{infrastructure="odd \\"name\\", with comma"} 4
gitspaces_http_request_duration_seconds_bucket{le="+Inf",route="/api/v1/gitspaces/:id"} 12
process_start_time_seconds 1.7e9
broken_line{infrastructure="x" 3
`;

describe('the Prometheus text reader', () => {
  const samples = parsePrometheusText(TEXT);

  test('reads names, labels (escapes and commas inside values included) and values', () => {
    expect(samples).toContainEqual({
      name: 'gitspaces_orphan_machines',
      labels: { infrastructure: 'odd "name", with comma' },
      value: 4,
    });
    expect(samples).toContainEqual({ name: 'process_start_time_seconds', labels: {}, value: 1.7e9 });
    expect(samples.find((s) => s.name.endsWith('_bucket'))?.labels).toEqual({
      le: '+Inf',
      route: '/api/v1/gitspaces/:id',
    });
  });

  test('skips comments and lines it cannot read', () => {
    expect(samples.map((s) => s.name)).not.toContain('broken_line');
    expect(samples).toHaveLength(6);
  });

  test('sums the samples whose labels match', () => {
    expect(total(samples, 'gitspaces_reconcile_machines_total', { infrastructure: 'gcp-eu' })).toBe(7);
    expect(total(samples, 'gitspaces_reconcile_machines_total', { action: 'stopped' })).toBe(8);
    expect(total(samples, 'gitspaces_reconcile_machines_total', { infrastructure: 'aws' })).toBe(0);
  });
});
