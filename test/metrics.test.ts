import { samplesOf, valueOf } from './support/prometheus-text';
import { startGitServer, type GitServer } from './support/git-server';
import { GATEWAY_ADMIN_TOKEN, startTestStack, waitForGitspace, type TestStack } from './support/stack';

/**
 * The three metrics endpoints on a real stack (Temporal dev server, control plane, gateway, a runner with its metrics
 * listener), scraped after a real start and stop of a local gitspace: the API's lifecycle durations, the runner's
 * activities and provider calls, the gateway's admin endpoint; each refused without its credentials.
 */
const RUNNER_METRICS_TOKEN = 'runner-metrics-token-for-tests';

describe('metrics after a real start', () => {
  let git: GitServer;
  let stack: TestStack;
  let runnerMetricsUrl: string;

  beforeAll(async () => {
    git = await startGitServer();
    await git.createRepository('repo', { 'README.md': 'measured\n' });
    stack = await startTestStack({ runner: false });
    const runner = await stack.startRunner({ metrics: { host: '127.0.0.1', port: 0, token: RUNNER_METRICS_TOKEN } });
    runnerMetricsUrl = `${runner.metricsUrl}/metrics`;
  });
  afterAll(async () => {
    await stack?.stop();
    await git?.stop();
  });

  const scrape = async (url: string, token: string) => {
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    return response.text();
  };

  it('observes the start and the stop, on the API, the runner and the gateway', async () => {
    const created = await stack.api('POST', '/api/v1/gitspaces', {
      name: 'measured',
      repository: { url: git.urlOf('repo') },
      infrastructureId: 'local',
      machineId: 'local-default',
      start: true,
    });
    expect(created.status).toBe(201);
    const id = created.body.gitspace.id as string;
    expect((await waitForGitspace(stack, id, (g) => g.state === 'running' || g.state === 'error')).state).toBe(
      'running',
    );
    await waitForGitspace(stack, id, (g) => g.operation?.status === 'succeeded');

    const api = await scrape(`${stack.controlPlane.url}/metrics`, stack.controlPlane.adminToken);
    expect(valueOf(api, 'gitspaces_lifecycle_duration_seconds_count', { action: 'start', outcome: 'succeeded' })).toBe(
      1,
    );
    expect(
      valueOf(api, 'gitspaces_lifecycle_duration_seconds_sum', { action: 'start', outcome: 'succeeded' }),
    ).toBeGreaterThan(0);
    expect(
      valueOf(api, 'gitspaces_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/api/v1/gitspaces',
        status: '201',
      }),
    ).toBe(1);
    expect(
      samplesOf(api, 'gitspaces_http_request_duration_seconds_count', { route: '/api/v1/gitspaces/:id' }).length,
    ).toBeGreaterThan(0);
    expect(api).toContain(`gitspaces_gitspaces{infrastructure="local",state="running"} 1`);

    // The runner: refused without its token, then every step of the start counted and timed.
    const anonymous = await fetch(runnerMetricsUrl);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).not.toContain('gitspaces_runner');
    expect((await fetch(runnerMetricsUrl, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const runner = await scrape(runnerMetricsUrl, RUNNER_METRICS_TOKEN);
    for (const activity of ['ensureMachine', 'waitForAgent', 'prepareWorkspace', 'registerRoute']) {
      expect(valueOf(runner, 'gitspaces_runner_activities_started_total', { activity })).toBeGreaterThanOrEqual(1);
      expect(
        valueOf(runner, 'gitspaces_runner_activity_duration_seconds_count', { activity, outcome: 'succeeded' }),
      ).toBeGreaterThanOrEqual(1);
    }
    expect(
      samplesOf(runner, 'gitspaces_runner_provider_call_duration_seconds_count', { provider: 'local' }).length,
    ).toBeGreaterThan(0);
    expect(valueOf(runner, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    // The gateway: its admin listener, with the admin token only.
    expect((await fetch(`${stack.gatewayAdminUrl}/metrics`)).status).toBe(401);
    const gateway = await scrape(`${stack.gatewayAdminUrl}/metrics`, GATEWAY_ADMIN_TOKEN);
    expect(gateway).toContain('# TYPE gitspaces_gateway_requests_total counter');
    expect(valueOf(gateway, 'gitspaces_gateway_open_connections')).toBeGreaterThanOrEqual(0);

    expect((await stack.api('POST', `/api/v1/gitspaces/${id}/actions`, { action: 'stop' })).status).toBe(202);
    await waitForGitspace(stack, id, (g) => g.state === 'stopped' && g.operation?.status === 'succeeded');
    const after = await scrape(`${stack.controlPlane.url}/metrics`, stack.controlPlane.adminToken);
    expect(valueOf(after, 'gitspaces_lifecycle_duration_seconds_count', { action: 'stop', outcome: 'succeeded' })).toBe(
      1,
    );
    expect(
      valueOf(after, 'gitspaces_lifecycle_duration_seconds_count', { action: 'start', outcome: 'succeeded' }),
    ).toBe(1);
    const runnerAfter = await scrape(runnerMetricsUrl, RUNNER_METRICS_TOKEN);
    expect(
      valueOf(runnerAfter, 'gitspaces_runner_activities_started_total', { activity: 'stopMachine' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      valueOf(runnerAfter, 'gitspaces_runner_provider_call_duration_seconds_count', {
        provider: 'local',
        method: 'stop',
        outcome: 'succeeded',
      }),
    ).toBeGreaterThanOrEqual(1);
  });
});
