import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../common/logger';
import { openDatabase, type Db } from '../db/connect';
import { createStore, type Store } from '../db/store';
import { parseSamples, samplesOf, valueOf } from '../test/support/prometheus-text';
import type { AccessTokenIssuer } from './access-tokens';
import { createApp } from './app';
import { ensureEmbeddedDefaults } from './server';
import { EventFeed } from './event-feed';
import type { LifecycleService } from './lifecycle-requests';
import { createApiMetrics, type ApiMetrics } from './metrics';

/** GET /metrics of the API (prom-client, a registry per app): who may scrape it, and what it says after real traffic. */
describe('API metrics', () => {
  let db: Db;
  let store: Store;
  let feed: EventFeed;
  const servers: Server[] = [];
  let adminToken: string;
  let memberToken: string;

  const listen = async (metrics?: ApiMetrics): Promise<string> => {
    const app = createApp({
      store,
      accessTokens: {} as AccessTokenIssuer,
      lifecycle: {} as LifecycleService,
      logger: silentLogger,
      onInfrastructureCreated: () => Promise.resolve(),
      ready: () => Promise.resolve(),
      eventFeed: feed,
      limits: { requestsPerMinute: 1_000_000 },
      ...(metrics ? { metrics } : {}),
    });
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const scrape = async (base: string, token = adminToken) => {
    const response = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    return response.text();
  };

  beforeAll(async () => {
    db = await openDatabase({ kind: 'pglite' });
    store = createStore(db);
    adminToken = (await store.createUser('admin', 'admin')).token;
    memberToken = (await store.createUser('ada', 'member')).token;
    await ensureEmbeddedDefaults(store, 'http://127.0.0.1:1', silentLogger);
    feed = new EventFeed({ store, pollMs: 50, logger: silentLogger });
  });
  afterAll(async () => {
    feed?.close();
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await db?.destroy();
  });

  it('is refused without a token (401) and to a member (403)', async () => {
    const base = await listen();
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    expect((await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const member = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${memberToken}` } });
    expect(member.status).toBe(403);
    expect(await member.text()).not.toContain('gitspaces_');
  });

  it('keeps the database-backed series and their names, and adds the process metrics', async () => {
    const base = await listen();
    const created = await fetch(`${base}/api/v1/gitspaces`, {
      method: 'POST',
      headers: { authorization: `Bearer ${memberToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'measured',
        repository: { url: 'https://git.example.test/org/repo.git' },
        infrastructureId: 'local',
        machineId: 'local-default',
        start: false,
      }),
    });
    expect(created.status).toBe(201);
    await store.recordReconcileRun({
      runId: 'run-a',
      infrastructureId: 'local',
      counts: { runs: 1, machinesStopped: 2, machinesDeleted: 3, routesRemoved: 0, actionsFailed: 1 },
      events: [],
      actor: { type: 'reconciler' },
      at: new Date(),
    });
    const text = await scrape(base);
    // The same lines dashboards read before prom-client, label order included.
    expect(text).toContain('gitspaces_gitspaces{infrastructure="local",state="stopped"} 1');
    expect(text).toContain('gitspaces_reconcile_runs_total{infrastructure="local"} 1');
    expect(text).toContain('gitspaces_reconcile_machines_total{infrastructure="local",action="stopped"} 2');
    expect(text).toContain('gitspaces_reconcile_machines_total{infrastructure="local",action="deleted"} 3');
    expect(text).toContain('gitspaces_reconcile_repairs_failed_total{infrastructure="local"} 1');
    expect(text).toMatch(/^gitspaces_reconcile_last_run_timestamp_seconds\{infrastructure="local"\} \d{10}$/m);
    expect(text).toContain('# TYPE gitspaces_orphan_machines gauge');
    expect(text).toContain('# TYPE gitspaces_reconcile_runs_total counter');
    // prom-client's default metrics, on this app's registry.
    expect(valueOf(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(valueOf(text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    // The request that made the gitspace, by its route's template.
    expect(
      valueOf(text, 'gitspaces_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/api/v1/gitspaces',
        status: '201',
      }),
    ).toBe(1);
  });

  it('labels requests with the route template: a thousand ids make one series, not a thousand', async () => {
    const base = await listen();
    const ids = Array.from({ length: 1000 }, (_, i) => `gs-probe-${i}-${Math.random().toString(36).slice(2)}`);
    const statuses = new Set<number>();
    for (let i = 0; i < ids.length; i += 50) {
      await Promise.all(
        ids.slice(i, i + 50).map(async (id) => {
          const response = await fetch(`${base}/api/v1/gitspaces/${id}`, {
            headers: { authorization: `Bearer ${memberToken}` },
          });
          statuses.add(response.status);
          await response.arrayBuffer();
        }),
      );
    }
    expect([...statuses]).toEqual([404]);
    // Paths no route matches, and made-up methods: one label each, whatever they were.
    for (let i = 0; i < 20; i++) {
      await (
        await fetch(`${base}/api/v1/nothing-${i}`, { headers: { authorization: `Bearer ${memberToken}` } })
      ).text();
      await (await fetch(`${base}/elsewhere-${i}`)).text();
    }
    const text = await scrape(base);
    expect(
      valueOf(text, 'gitspaces_http_request_duration_seconds_count', {
        method: 'GET',
        route: '/api/v1/gitspaces/:id',
        status: '404',
      }),
    ).toBe(1000);
    expect(
      valueOf(text, 'gitspaces_http_request_duration_seconds_count', { route: '(unmatched)', status: '404' }),
    ).toBe(40);
    for (const id of ids.slice(0, 50)) expect(text).not.toContain(id);
    expect(text).not.toContain('nothing-');
    const series = samplesOf(text, 'gitspaces_http_request_duration_seconds_count');
    expect(series.length).toBeLessThanOrEqual(3);
    expect(parseSamples(text).length).toBeLessThan(400);
  });

  it('gives each app a registry of its own', async () => {
    const a = createApiMetrics(store, { defaultMetrics: false });
    const b = createApiMetrics(store, { defaultMetrics: false });
    a.lifecycleDuration.observe({ action: 'start', outcome: 'succeeded' }, 12);
    const [baseA, baseB] = [await listen(a), await listen(b)];
    const [textA, textB] = [await scrape(baseA), await scrape(baseB)];
    expect(
      valueOf(textA, 'gitspaces_lifecycle_duration_seconds_count', { action: 'start', outcome: 'succeeded' }),
    ).toBe(1);
    expect(
      valueOf(textA, 'gitspaces_lifecycle_duration_seconds_bucket', {
        action: 'start',
        outcome: 'succeeded',
        le: '10',
      }),
    ).toBe(0);
    expect(
      valueOf(textA, 'gitspaces_lifecycle_duration_seconds_bucket', {
        action: 'start',
        outcome: 'succeeded',
        le: '30',
      }),
    ).toBe(1);
    expect(samplesOf(textB, 'gitspaces_lifecycle_duration_seconds_count')).toEqual([]);
    expect(textA).not.toContain('process_cpu_user_seconds_total');
  });
});
