import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { createAccessTokenIssuer } from '../api/access-tokens';
import { ensureAdmin, ensureEmbeddedDefaults } from '../api/server';
import { openDatabase } from '../db/connect';
import { createStore } from '../db/store';
import { lifecycleWorkflowId } from '../contracts/lifecycle';
import { freeLoopbackPorts } from '../common/net';
import { PayloadKeyRing } from '../common/payload-codec';
import { RunnerKeyRing } from '../common/sealed-secret';
import { connectionOptions, embeddedTemporalEnv } from '../common/temporal-connection';
import type { DevServer } from '../engine/dev-server';
import { agentProcessesIn, createLocalProvider, localMachinePaths } from '../providers/local/provider';
import { silentLogger } from '../common/logger';
import { Part, waitFor } from '../scripts/processes';
import { testDatabases } from './support/databases';
import { openThroughGateway } from './support/gateway-client';
import { startGitServer, type GitServer } from './support/git-server';
import { waitForGitspace } from './support/stack';
import { startTestTemporal } from './support/temporal';

/**
 * Two API replicas and two runners for real (issue 12): every part is its own process, spawned as `npm start` spawns
 * them (scripts/processes.ts), on one Temporal dev server and one fresh PostgreSQL database. Both API processes (each
 * with its control-plane worker) start at once on the empty database; both runners poll `gitspaces-infra-local`.
 * While the starts of gitspaces created through both APIs are under way, one API process and the runner that holds a
 * step are killed with SIGKILL; every gitspace still reaches `running` through the survivors, the step the dead
 * runner held runs again on the other one, stop and delete through the surviving API converge, and access tokens
 * signed by either replica open the gitspace through the gateway (one signed with another key does not).
 *
 * What the replicas share, as a deployment on several hosts would: DATABASE_URL, GITSPACES_PAYLOAD_KEYS,
 * GITSPACES_ADMIN_TOKEN, GITSPACES_ACCESS_TOKEN_KEY, GITSPACES_WORK_ORDER_KEY and GITSPACES_LOCAL_RUNNER_PUBLIC_KEYS;
 * each has a data dir of its own (nothing in it is shared state). The runners share GITSPACES_RUNNER_KEYS,
 * GITSPACES_WORK_ORDER_PUBLIC_KEY, GITSPACES_PAYLOAD_KEYS and the gateway admin token, and — because a `local` machine
 * is a directory and a process on this host — GITSPACES_LOCAL_MACHINES_DIR, so either can act on any machine; their
 * data dirs are their own.
 */
const postgres = testDatabases().find(([name]) => name === 'PostgreSQL');
const describeWithPostgres = postgres ? describe : describe.skip;
if (!postgres) {
  process.stderr.write('replicas.test.ts skipped: GITSPACES_TEST_DATABASE_URL names no PostgreSQL server\n');
}

const ADMIN_TOKEN = 'replicas-admin-token';
const GATEWAY_ADMIN_TOKEN = 'replicas-gateway-admin-token';
const CONVERGE_MS = 180_000;
const GITSPACES = 4;

type Answer = { status: number; body: any };
/** A gitspace opened through the gateway: the token exchanged for a cookie, the IDE page served. */
const OPENED = { exchange: 'redirect', page: 200, html: true };

describeWithPostgres('two API replicas and two runners on one queue, as separate processes', () => {
  let temporal: DevServer;
  let git: GitServer;
  let base: string;
  let machinesDir: string;
  let connection: Connection;
  const log: string[] = [];
  const urls = { a: '', b: '', gateway: '', admin: '' };
  let apis: { a: Part; b: Part };
  let runners: [Part, Part];
  let gateway: Part;
  let accessTokenKeyPem: string;
  let userToken = '';
  let apiAKilled = false;
  const ids: string[] = [];
  /** Which runner was killed, and which step of which gitspace it held then. */
  let victim: { runner: Part; survivor: Part; gitspaceId: string; activity: string } | undefined;

  const tail = () => `\n--- last lines of the parts' output ---\n${log.slice(-80).join('\n')}`;

  async function call(baseUrl: string, method: string, route: string, body?: unknown, token = ADMIN_TOKEN) {
    const response = await fetch(`${baseUrl}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined } as Answer;
  }

  /** Polls the gitspace through one API until it is in `state`; an `error` fails at once, with its lastError. */
  async function until(apiUrl: string, id: string, state: string): Promise<any> {
    const through = { api: (method: string, route: string) => call(apiUrl, method, route) };
    const seen = await waitForGitspace(
      through,
      id,
      (g) => g?.state === state || g?.state === 'error',
      CONVERGE_MS,
    ).catch((error: Error) => ({ state: 'timed out', error: error.message }));
    if (seen.state !== state)
      throw new Error(`gitspace ${id} did not reach ${state}: ${JSON.stringify(seen)}${tail()}`);
    return seen;
  }

  /** The raw description of a gitspace's lifecycle workflow (no payload is decoded: this test holds the keys only as the parts do). */
  async function describeLifecycle(id: string) {
    return connection.workflowService.describeWorkflowExecution({
      namespace: 'default',
      execution: { workflowId: lifecycleWorkflowId(id) },
    });
  }

  async function historyOf(id: string) {
    const events = [];
    let nextPageToken: Uint8Array | undefined;
    do {
      const page = await connection.workflowService.getWorkflowExecutionHistory({
        namespace: 'default',
        execution: { workflowId: lifecycleWorkflowId(id) },
        ...(nextPageToken ? { nextPageToken } : {}),
      });
      events.push(...(page.history?.events ?? []));
      nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
    } while (nextPageToken);
    return events;
  }

  beforeAll(async () => {
    const database = await postgres![1]();
    if (database.kind !== 'postgres') throw new Error('expected a PostgreSQL database');
    temporal = await startTestTemporal();
    connection = await Connection.connect(connectionOptions(temporal.connection));
    git = await startGitServer();
    // A setup step that takes a few seconds keeps each start under way long enough to be interrupted.
    await git.createRepository('replicas', {
      'README.md': '# replicas\n',
      '.devcontainer/devcontainer.json': '{ "postCreateCommand": "sleep 4" }\n',
    });
    base = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-replicas-'));
    machinesDir = path.join(base, 'machines');
    const dataDir = async (name: string) => {
      const dir = path.join(base, name);
      await mkdir(dir, { mode: 0o700 });
      return dir;
    };

    // The keys an operator generates once and gives to every replica (README: configuration).
    accessTokenKeyPem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const workOrder = generateKeyPairSync('ed25519');
    const runnerKeys = RunnerKeyRing.generateKey();
    const ports = await freeLoopbackPorts(['a', 'b', 'gateway', 'admin']);
    urls.a = `http://127.0.0.1:${ports.a}`;
    urls.b = `http://127.0.0.1:${ports.b}`;
    urls.gateway = `http://127.0.0.1:${ports.gateway}`;
    urls.admin = `http://127.0.0.1:${ports.admin}`;
    const common = {
      // This run's dev server, in plaintext on loopback, whatever Temporal settings the shell has.
      ...embeddedTemporalEnv(process.env, temporal.connection).env,
      // Jest's --experimental-vm-modules is not for the parts.
      NODE_OPTIONS: '',
      GITSPACES_PAYLOAD_KEYS: PayloadKeyRing.generateText(),
    };
    const api = async (name: 'a' | 'b') => ({
      ...common,
      GITSPACES_DATA_DIR: await dataDir(`api-${name}`),
      GITSPACES_API_PORT: String(ports[name]),
      DATABASE_URL: database.url,
      GITSPACES_ADMIN_TOKEN: ADMIN_TOKEN,
      GITSPACES_ACCESS_TOKEN_KEY: accessTokenKeyPem,
      GITSPACES_WORK_ORDER_KEY: workOrder.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      GITSPACES_LOCAL_RUNNER_PUBLIC_KEYS: RunnerKeyRing.parse(runnerKeys).publicKeys().map(String).join(','),
      GITSPACES_PUBLIC_GATEWAY_URL: urls.gateway,
      GITSPACES_RUNNER_PICKUP_TIMEOUT_SECONDS: '120',
      GITSPACES_RECONCILE_EVERY_SECONDS: '30',
    });
    const runner = async (n: number) => ({
      ...common,
      GITSPACES_DATA_DIR: await dataDir(`runner-${n}`),
      GITSPACES_INFRASTRUCTURE_ID: 'local',
      GITSPACES_INSTALLATION_ID: 'replicas',
      GITSPACES_RUNNER_KEYS: runnerKeys,
      GITSPACES_WORK_ORDER_PUBLIC_KEY: workOrder.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
      GITSPACES_LOCAL_MACHINES_DIR: machinesDir,
      GITSPACES_GATEWAY_ADMIN_URL: urls.admin,
      GITSPACES_GATEWAY_ADMIN_TOKEN: GATEWAY_ADMIN_TOKEN,
    });
    const options = { restartOnExit: false, output: (line: string) => log.push(line) };
    apis = {
      a: new Part('api-a', 'api/main.ts', await api('a'), options),
      b: new Part('api-b', 'api/main.ts', await api('b'), options),
    };
    runners = [
      new Part('runner-1', 'workers/runner-main.ts', await runner(1), options),
      new Part('runner-2', 'workers/runner-main.ts', await runner(2), options),
    ];
    gateway = new Part(
      'gateway',
      'gateway/main.ts',
      {
        ...common,
        GITSPACES_DATA_DIR: await dataDir('gateway'),
        GITSPACES_GATEWAY_PORT: String(ports.gateway),
        GITSPACES_GATEWAY_ADMIN_PORT: String(ports.admin),
        GITSPACES_GATEWAY_ADMIN_TOKEN: GATEWAY_ADMIN_TOKEN,
        // Both replicas, the one to be killed first: while it is down, the gateway takes the keys from the other.
        GITSPACES_JWKS_URL: `${urls.a}/api/v1/.well-known/jwks.json,${urls.b}/api/v1/.well-known/jwks.json`,
      },
      options,
    );
    // Everything at once: both replicas migrate and register the embedded defaults on the same empty database.
    for (const part of [apis.a, apis.b, ...runners, gateway]) part.start();
    try {
      await Promise.all([
        waitFor(`${urls.a}/readyz`, 120_000),
        waitFor(`${urls.b}/readyz`, 120_000),
        waitFor(`${urls.gateway}/healthz`, 60_000),
      ]);
    } catch (error) {
      throw new Error(`${(error as Error).message}${tail()}`, { cause: error });
    }
  }, 200_000);

  afterAll(async () => {
    // Agents outlive runners by design: remove any machine a failed run left.
    if (machinesDir) {
      const machines = createLocalProvider({ rootDir: machinesDir, logger: silentLogger });
      const cleanup = { idempotencyKey: 'replicas-cleanup', signal: AbortSignal.timeout(60_000) };
      for (const machine of await machines.list(cleanup).catch(() => [])) {
        await machines.delete(machine.gitspaceId, cleanup).catch(() => undefined);
      }
    }
    await Promise.all([apis?.a, apis?.b, ...(runners ?? []), gateway].map((part) => part?.stop()));
    await connection?.close();
    await temporal?.stop();
    await git?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  }, 120_000);

  it('starts both API replicas at once on one empty database: one admin, one local infrastructure, one key', async () => {
    for (const url of [urls.a, urls.b]) {
      const infrastructures = await call(url, 'GET', '/api/v1/infrastructures');
      expect(infrastructures.status).toBe(200);
      expect(infrastructures.body.items.map((i: any) => i.id)).toEqual(['local']);
      const users = await call(url, 'GET', '/api/v1/users');
      expect(users.body.items.map((u: any) => u.name)).toEqual(['admin']);
    }
    const jwksA = await call(urls.a, 'GET', '/api/v1/.well-known/jwks.json');
    const jwksB = await call(urls.b, 'GET', '/api/v1/.well-known/jwks.json');
    expect(jwksA.body.keys).toHaveLength(1);
    expect(jwksA.body).toEqual(jwksB.body);

    // A user made through one replica is known to the other (tokens are stored hashed in the shared database).
    const ada = await call(urls.a, 'POST', '/api/v1/users', { name: 'ada' });
    expect(ada.status).toBe(201);
    userToken = ada.body.token;
    expect((await call(urls.b, 'GET', '/api/v1/gitspaces', undefined, userToken)).status).toBe(200);
  });

  it('brings every gitspace to running after one API and the runner holding a step are killed mid-start', async () => {
    for (let i = 0; i < GITSPACES; i++) {
      const through = i % 2 === 0 ? urls.a : urls.b;
      const created = await call(
        through,
        'POST',
        '/api/v1/gitspaces',
        {
          name: `replica-${i}`,
          repository: { url: git.urlOf('replicas') },
          infrastructureId: 'local',
          machineId: 'local-default',
          ide: 'terminal',
        },
        userToken,
      );
      expect(created.status).toBe(201);
      ids.push(created.body.gitspace.id);
    }

    // Wait until a runner is executing a step of some gitspace: that runner is the one killed.
    const runnerPids = runners.map((r) => r.pid);
    const deadline = Date.now() + 60_000;
    while (!victim && Date.now() < deadline) {
      for (const id of ids) {
        const { pendingActivities } = await describeLifecycle(id);
        for (const activity of pendingActivities ?? []) {
          const pid = Number(activity.lastWorkerIdentity?.split('@')[0]);
          const index = runnerPids.indexOf(pid);
          // PENDING_ACTIVITY_STATE_STARTED (2): the runner has it now (its first attempt). prepareWorkspace runs the
          // repository's 4 s setup, so the kill lands before it ends (a shorter step could finish in between).
          if (
            index >= 0 &&
            activity.state === 2 &&
            activity.attempt === 1 &&
            activity.activityType?.name === 'prepareWorkspace'
          ) {
            victim = {
              runner: runners[index]!,
              survivor: runners[1 - index]!,
              gitspaceId: id,
              activity: activity.activityType?.name ?? '',
            };
          }
        }
        if (victim) break;
      }
      if (!victim) await new Promise((r) => setTimeout(r, 100));
    }
    if (!victim) throw new Error(`no runner picked up a step within 60 s${tail()}`);
    const states = await Promise.all(
      ids.map(async (id) => (await call(urls.b, 'GET', `/api/v1/gitspaces/${id}`)).body.state),
    );
    // The kill lands while starts are under way, not after.
    expect(states.filter((s) => s === 'running').length).toBeLessThan(GITSPACES);
    const killed = victim.runner;
    await Promise.all([apis.a.kill(), killed.kill()]);
    apiAKilled = true;
    const said = `killed api-a and ${killed.name} (SIGKILL) while ${killed.name} ran ${victim.activity} of ${victim.gitspaceId}; states then: ${states.join(', ')}`;
    log.push(`[test] ${said}`);
    process.stderr.write(`replicas.test.ts: ${said}\n`);
    expect((await fetch(`${urls.a}/healthz`).catch(() => undefined))?.status).toBeUndefined();

    for (const id of ids) {
      const running = await until(urls.b, id, 'running');
      expect(running.url).toBe(`${urls.gateway}/gitspaces/${id}/`);
      expect(running.operation).toMatchObject({ action: 'start', status: 'succeeded' });
      // One machine each: one agent, however many runners and attempts touched it.
      expect(await agentProcessesIn(localMachinePaths(machinesDir, id).dir)).toHaveLength(1);
      const events = (await call(urls.b, 'GET', `/api/v1/gitspaces/${id}/events`)).body.items;
      expect(events.map((e: any) => e.seq)).toEqual(events.map((_: unknown, i: number) => i + 1));
      expect(events.filter((e: any) => e.state).map((e: any) => e.state)).toEqual(['stopped', 'starting', 'running']);
    }

    // The step the dead runner held ran again, to completion, on the other runner.
    const history = await historyOf(victim.gitspaceId);
    const scheduled = history.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === victim!.activity,
    );
    const started = history.find(
      (e) => e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() === scheduled?.eventId?.toString(),
    )?.activityTaskStartedEventAttributes;
    expect(started?.identity?.split('@')[0]).toBe(String(victim.survivor.pid));
    expect(started?.attempt).toBeGreaterThanOrEqual(2);
    expect(
      history.some(
        (e) => e.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === scheduled?.eventId?.toString(),
      ),
    ).toBe(true);
  }, 400_000);

  it('opens a gitspace through the gateway with a token from the surviving replica while the other is down', async () => {
    const access = await call(urls.b, 'POST', `/api/v1/gitspaces/${ids[0]}/access`, undefined, userToken);
    expect(access.status).toBe(200);
    expect(await openThroughGateway(access.body.url)).toEqual(OPENED);
  });

  it('converges stop and delete asked through the surviving replica', async () => {
    expect((await call(urls.b, 'POST', `/api/v1/gitspaces/${ids[1]}/actions`, { action: 'stop' })).status).toBe(202);
    for (const id of ids.slice(2)) expect((await call(urls.b, 'DELETE', `/api/v1/gitspaces/${id}`)).status).toBe(202);
    await until(urls.b, ids[1]!, 'stopped');
    for (const id of ids.slice(2)) await until(urls.b, id, 'deleted');
    expect(await agentProcessesIn(localMachinePaths(machinesDir, ids[1]!).dir)).toHaveLength(0);
    for (const id of ids.slice(2)) expect(existsSync(localMachinePaths(machinesDir, id).dir)).toBe(false);
  }, 400_000);

  it('accepts access tokens from either replica once the killed one is back, and refuses another key', async () => {
    // As its supervisor would (a compose restart policy, systemd): the killed replica comes back.
    expect(apiAKilled).toBe(true);
    apis.a.start();
    await waitFor(`${urls.a}/readyz`, 120_000);
    const jwksA = await call(urls.a, 'GET', '/api/v1/.well-known/jwks.json');
    const jwksB = await call(urls.b, 'GET', '/api/v1/.well-known/jwks.json');
    expect(jwksA.body).toEqual(jwksB.body);

    const fromA = await call(urls.a, 'POST', `/api/v1/gitspaces/${ids[0]}/access`, undefined, userToken);
    const fromB = await call(urls.b, 'POST', `/api/v1/gitspaces/${ids[0]}/access`, undefined, userToken);
    expect(fromA.status).toBe(200);
    expect(fromB.status).toBe(200);
    expect(fromA.body.token).not.toBe(fromB.body.token);
    expect(await openThroughGateway(fromA.body.url)).toEqual(OPENED);
    expect(await openThroughGateway(fromB.body.url)).toEqual(OPENED);

    // A replica with a key of its own would sign tokens like these: the same claims, another key. Refused.
    const claims = JSON.parse(Buffer.from(fromA.body.token.split('.')[1], 'base64url').toString('utf8'));
    const stranger = await createAccessTokenIssuer({
      ttlSeconds: 600,
      privateKeyPem: generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    });
    const foreign = await stranger.issue({ userId: claims.sub, gitspaceId: claims.gitspace_id, runId: claims.run_id });
    const refused = await openThroughGateway(`${urls.gateway}/gitspaces/${ids[0]}/?token=${foreign.token}`);
    expect(refused.exchange).toBe(401);
  }, 200_000);

  it('converges the last stop and deletes asked through the restarted replica; nothing is left behind', async () => {
    expect((await call(urls.a, 'DELETE', `/api/v1/gitspaces/${ids[0]}`)).status).toBe(202);
    expect((await call(urls.a, 'DELETE', `/api/v1/gitspaces/${ids[1]}`)).status).toBe(202);
    for (const id of ids) await until(urls.a, id, 'deleted');
    for (const id of ids) {
      expect(await agentProcessesIn(localMachinePaths(machinesDir, id).dir)).toHaveLength(0);
      expect(existsSync(localMachinePaths(machinesDir, id).dir)).toBe(false);
      const events = (await call(urls.b, 'GET', `/api/v1/gitspaces/${id}/events`)).body.items;
      expect(events.map((e: any) => e.seq)).toEqual(events.map((_: unknown, i: number) => i + 1));
    }
    const routes = await call(urls.admin, 'GET', '/routes', undefined, GATEWAY_ADMIN_TOKEN);
    expect(routes.body.routes).toEqual([]);
  }, 400_000);
});

describeWithPostgres('API replicas starting at the same moment on an empty database', () => {
  // Caught here first: the second replica died at start on a duplicate key (users_name_key, infrastructures_pkey).
  it('both register the admin and the embedded defaults, whichever wins: one admin, one local infrastructure', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-replicas-start-'));
    try {
      for (let round = 0; round < 5; round++) {
        const database = await postgres![1]();
        // Migrations race too (Kysely takes an advisory lock on PostgreSQL); then both seed the same rows at once.
        const dbs = await Promise.all([openDatabase(database), openDatabase(database)]);
        try {
          const stores = dbs.map(createStore);
          const admins = await Promise.all(
            stores.map((store) => ensureAdmin(store, { adminToken: 'same-admin-token', dataDir })),
          );
          expect(admins.map((a) => a.token)).toEqual(['same-admin-token', 'same-admin-token']);
          await Promise.all(
            stores.map((store) =>
              ensureEmbeddedDefaults(store, 'http://127.0.0.1:3001', silentLogger, ['key'], { replaceKeys: true }),
            ),
          );
          expect((await stores[0]!.listUsers()).map((u) => u.name)).toEqual(['admin']);
          expect((await stores[1]!.findUserByToken('same-admin-token'))?.name).toBe('admin');
          expect((await stores[1]!.listInfrastructures()).map((i) => i.id)).toEqual(['local']);
          expect((await stores[0]!.listMachines('local')).map((m) => m.id)).toEqual(['local-default']);
        } finally {
          await Promise.all(dbs.map((db) => db.destroy()));
        }
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
