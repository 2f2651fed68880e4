/**
 * `npm run bench:api`: how fast GET /api/v1/gitspaces answers with 2,000 gitspace records and 20 concurrent clients
 * (issue 16: p95 ≤ 100 ms; Coder's 2,000-workspace scale test is the anchor). The real app (api/app.ts) and store on
 * loopback, without Temporal: the records are written through the store, each with a created event and a finished
 * operation, in a mix of states. Three reads, each BENCH_REQUESTS times by BENCH_CLIENTS clients at once, as the
 * admin (who sees every record): the first page, the first page of one state, and a deep page (a cursor near the end).
 * The clients run in a worker thread beside the API's.
 *
 * Database: a fresh database on the PostgreSQL server of GITSPACES_BENCH_DATABASE_URL (dropped afterwards), else
 * PGlite in memory. Env: BENCH_GITSPACES (2000), BENCH_CLIENTS (20), BENCH_REQUESTS (1000 per read), BENCH_PAGE_SIZE
 * (the API's default when unset). Exit code 1 when a p95 misses the goal. Not part of `npm test`.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { sql } from 'kysely';
import pg from 'pg';
import type { AccessTokenIssuer } from '../api/access-tokens';
import { createApp } from '../api/app';
import { EventFeed } from '../api/event-feed';
import type { LifecycleService } from '../api/lifecycle-requests';
import { ensureEmbeddedDefaults } from '../api/server';
import { silentLogger } from '../common/logger';
import type { GitspaceState, LifecycleAction } from '../contracts/lifecycle';
import { openDatabase, type DatabaseLocation } from '../db/connect';
import { createStore, type Store } from '../db/store';
import { nearestRank, table } from './bench-figures';

const GITSPACES = Number(process.env.BENCH_GITSPACES ?? 2000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 20);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 1000);
const PAGE_SIZE = process.env.BENCH_PAGE_SIZE ? Number(process.env.BENCH_PAGE_SIZE) : undefined;
const GOAL_P95_MS = 100;
/** Owners of the records: the admin lists them all, as an operator's dashboard does. */
const OWNERS = 20;
/** The mix of states the records are left in, and the operation that left each there. */
const STATES: { state: GitspaceState; action: LifecycleAction; status: 'succeeded' | 'failed' }[] = [
  { state: 'running', action: 'start', status: 'succeeded' },
  { state: 'running', action: 'start', status: 'succeeded' },
  { state: 'stopped', action: 'stop', status: 'succeeded' },
  { state: 'stopped', action: 'stop', status: 'succeeded' },
  { state: 'error', action: 'start', status: 'failed' },
  { state: 'deleted', action: 'delete', status: 'succeeded' },
];

async function main(): Promise<number> {
  const database = await benchDatabase();
  const db = await openDatabase(database.location);
  const store = createStore(db);
  const adminToken = (await store.createUser('admin', 'admin')).token;
  await ensureEmbeddedDefaults(store, 'http://127.0.0.1:1', silentLogger);
  const seeding = Date.now();
  await seed(store);
  // The statistics autovacuum would have gathered by now in a database that grew over time.
  await sql`analyze`.execute(db);
  process.stdout.write(
    `seeded ${GITSPACES} gitspaces (${OWNERS} owners) on ${database.name} in ${Date.now() - seeding} ms\n`,
  );

  const feed = new EventFeed({ store, pollMs: 1000, logger: silentLogger });
  const app = createApp({
    store,
    accessTokens: {} as AccessTokenIssuer,
    lifecycle: { request: () => Promise.reject(new Error('nothing starts here')) } as unknown as LifecycleService,
    logger: silentLogger,
    onInfrastructureCreated: () => Promise.resolve(),
    ready: () => Promise.resolve(),
    eventFeed: feed,
    limits: { requestsPerMinute: 10_000_000 },
  });
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/gitspaces`;
  const limit = PAGE_SIZE ? `limit=${PAGE_SIZE}` : '';
  const urlOf = (query: string) => `${base}?${[limit, query].filter(Boolean).join('&')}`;
  const get = async (query: string) => {
    const response = await fetch(urlOf(query), {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const body = (await response.json()) as { items: unknown[]; nextCursor?: string };
    if (response.status !== 200) throw new Error(`GET /gitspaces?${query}: ${response.status} ${JSON.stringify(body)}`);
    return body;
  };

  let code = 0;
  try {
    const deepCursor = await cursorNearTheEnd(get);
    const reads = [
      { name: 'first page', query: '' },
      { name: 'state=running', query: 'state=running' },
      { name: 'deep cursor page', query: `cursor=${encodeURIComponent(deepCursor)}` },
    ];
    const rows: string[][] = [];
    for (const read of reads) {
      await measure(urlOf(read.query), adminToken, CLIENTS * 5); // warm: connections, plans, the JIT
      const started = Date.now();
      const times = await measure(urlOf(read.query), adminToken, REQUESTS);
      const [p50, p95, p99] = [0.5, 0.95, 0.99].map((p) => nearestRank(times, p)) as [number, number, number];
      const perSecond = Math.round((times.length * 1000) / (Date.now() - started));
      if (p95 > GOAL_P95_MS) code = 1;
      rows.push([
        read.name,
        ms(p50),
        ms(p95),
        ms(p99),
        `${perSecond}/s`,
        `≤ ${GOAL_P95_MS} ms`,
        p95 <= GOAL_P95_MS ? 'met' : 'MISSED',
      ]);
    }
    process.stdout.write(
      `\nGET /api/v1/gitspaces as the admin, ${CLIENTS} clients at once, ${REQUESTS} requests each read\n\n` +
        table(['read', 'p50', 'p95', 'p99', 'throughput', 'goal (p95)', ''], rows),
    );
  } finally {
    feed.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await db.destroy();
    await database.drop();
  }
  return code;
}

/** A fresh database on GITSPACES_BENCH_DATABASE_URL's server (dropped at the end), or PGlite in memory. */
async function benchDatabase(): Promise<{ name: string; location: DatabaseLocation; drop(): Promise<void> }> {
  const url = process.env.GITSPACES_BENCH_DATABASE_URL;
  if (!url) return { name: 'PGlite (in memory)', location: { kind: 'pglite' }, drop: () => Promise.resolve() };
  const name = `gitspaces_bench_${process.pid}_${Date.now().toString(36)}`;
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const target = new URL(url);
  target.pathname = `/${name}`;
  return {
    name: `PostgreSQL (${target.host})`,
    location: { kind: 'postgres', url: target.toString() },
    drop: () => admin(`DROP DATABASE ${name}`),
  };
}

/** Writes the records through the store, as the API and the workflows do: a few at a time, to stay quick. */
async function seed(store: Store): Promise<void> {
  const owners = await Promise.all(
    Array.from({ length: OWNERS }, async (_, i) => (await store.createUser(`owner-${i}`, 'member')).user),
  );
  const one = async (i: number) => {
    const owner = owners[i % OWNERS]!;
    const { state, action, status } = STATES[i % STATES.length]!;
    const { gitspace } = await store.createGitspace({
      id: `gs-bench-${i.toString().padStart(5, '0')}`,
      name: `bench-${i}`,
      ownerId: owner.id,
      repositoryUrl: `https://git.example.test/org/repo-${i}.git`,
      repositoryBranch: null,
      repositoryTokenSealed: null,
      repositoryTokenRef: null,
      infrastructureId: 'local',
      machineId: 'local-default',
      ide: 'vscode-web',
    });
    const runId = `run-bench-${i}`;
    await store.recordOperation({ gitspaceId: gitspace.id, action, workflowId: `gitspace-${gitspace.id}`, runId });
    await store.updateOperation(runId, { status, step: null });
    if (state !== 'stopped') {
      const actor = { type: 'user' as const, id: owner.id, name: owner.name };
      await store.changeState(gitspace.id, { to: state, actor, message: `bench: ${state}` });
    }
  };
  const batch = 10;
  for (let i = 0; i < GITSPACES; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, GITSPACES - i) }, (_, j) => one(i + j)));
  }
}

/** The cursor of a page about 90 % of the way down the list, found by following nextCursor from the first page. */
async function cursorNearTheEnd(get: (query: string) => Promise<{ nextCursor?: string }>): Promise<string> {
  const pages: string[] = [];
  let page = await get('');
  while (page.nextCursor) {
    pages.push(page.nextCursor);
    page = await get(`cursor=${encodeURIComponent(page.nextCursor)}`);
  }
  const cursor = pages[Math.floor(pages.length * 0.9)];
  if (!cursor) throw new Error('the list has a single page: nothing deep to read');
  return cursor;
}

/**
 * The clients: CLIENTS loops at once sending `requests` GETs of `url` in all, from a worker thread, so reading the
 * answers does not take the API's own thread as it would in one process. Each request's duration in milliseconds.
 */
function measure(url: string, token: string, requests: number): Promise<number[]> {
  const worker = new Worker(CLIENTS_SOURCE, { eval: true, workerData: { url, token, clients: CLIENTS, requests } });
  return new Promise((resolve, reject) => {
    worker.once('message', (times: number[]) => resolve(times));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the clients' thread ended with ${code}`)));
  });
}

const CLIENTS_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { url, token, clients, requests } = workerData;
let remaining = requests;
const times = [];
async function client() {
  while (remaining-- > 0) {
    const started = performance.now();
    const response = await fetch(url, { headers: { authorization: 'Bearer ' + token } });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(url + ' answered ' + response.status);
    times.push(performance.now() - started);
  }
}
Promise.all(Array.from({ length: clients }, client)).then(() => parentPort.postMessage(times));
`;

const ms = (value: number) => `${value.toFixed(1)} ms`;

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
