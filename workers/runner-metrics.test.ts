import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { valueOf } from '../test/support/prometheus-text';
import { RunnerMetrics, isLoopbackHost, serveRunnerMetrics } from './runner-metrics';

/** The runner's metrics listener and its provider timing, without Temporal (test/metrics.test.ts has the real start). */
describe('runner metrics', () => {
  it('times provider calls by provider, method and outcome, one wrapper per provider', async () => {
    const metrics = new RunnerMetrics({ defaultMetrics: false });
    const provider = {
      calls: 0,
      async describe(id: string) {
        this.calls++;
        return { id };
      },
      async stop() {
        throw new Error('the cloud said no');
      },
      async delete(_id: string, options: { signal: AbortSignal }) {
        options.signal.throwIfAborted();
      },
    };
    const wrapped = metrics.instrumentProvider(provider, 'local');
    expect(metrics.instrumentProvider(provider, 'local')).toBe(wrapped);
    expect(await wrapped.describe('gs-1')).toEqual({ id: 'gs-1' });
    expect(await wrapped.describe('gs-2')).toEqual({ id: 'gs-2' });
    expect(provider.calls).toBe(2);
    await expect(wrapped.stop()).rejects.toThrow('the cloud said no');
    await expect(wrapped.delete('gs-1', { signal: AbortSignal.abort() })).rejects.toThrow();
    const text = await metrics.render();
    const count = (method: string, outcome: string) =>
      valueOf(text, 'gitspaces_runner_provider_call_duration_seconds_count', { provider: 'local', method, outcome });
    expect(count('describe', 'succeeded')).toBe(2);
    expect(count('stop', 'failed')).toBe(1);
    expect(count('delete', 'cancelled')).toBe(1);
    expect(text).not.toContain('process_cpu');
  });

  it('serves GET /metrics with the bearer token only, and nothing else', async () => {
    const metrics = new RunnerMetrics();
    const server = await serveRunnerMetrics(metrics, { host: '127.0.0.1', port: 0, token: 'scrape' });
    try {
      const anonymous = await fetch(`${server.url}/metrics`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
      expect((await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer scrap' } })).status).toBe(401);
      const scraped = await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer scrape' } });
      expect(scraped.status).toBe(200);
      expect(await scraped.text()).toContain('# TYPE gitspaces_runner_activities_started_total counter');
      const post = await fetch(`${server.url}/metrics`, {
        method: 'POST',
        headers: { authorization: 'Bearer scrape' },
      });
      expect(post.status).toBe(405);
      expect((await fetch(`${server.url}/other`)).status).toBe(404);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('knows loopback listen addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.1', 'runner.example.test']) {
      expect(isLoopbackHost(host)).toBe(false);
    }
  });

  it('refuses to start with a metrics listener beyond loopback and no token (npm run runner)', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'runner-main.ts')], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        GITSPACES_RUNNER_METRICS_PORT: '0',
        GITSPACES_RUNNER_METRICS_HOST: '0.0.0.0',
        GITSPACES_DATA_DIR: path.join(__dirname, 'never-created'),
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.stderr).toContain("GITSPACES_RUNNER_METRICS_HOST: '0.0.0.0' is not a loopback address");
    expect(result.status).toBe(2);
  });
});
