/**
 * The REST API without Temporal, for fast route tests: the real app, store (PGlite in memory) and lifecycle service,
 * with a fake at the one edge where the service talks to Temporal (LifecycleTemporal). The fake records every workflow
 * started and cancelled; a test plays the workflow's part by changing the gitspace's state in the store.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import type { AccessTokenIssuer } from '../../api/access-tokens';
import { createApp, type AppOptions } from '../../api/app';
import { EventFeed } from '../../api/event-feed';
import {
  createLifecycleService,
  type LifecycleTemporal,
  type LifecycleWorkflowHandle,
} from '../../api/lifecycle-requests';
import { ensureEmbeddedDefaults } from '../../api/server';
import { silentLogger } from '../../common/logger';
import { CONTROL_PLANE_TASK_QUEUE } from '../../contracts/lifecycle';
import { openDatabase, type Db } from '../../db/connect';
import { createStore, type Store } from '../../db/store';

export interface FakeRun {
  workflowId: string;
  type: string;
  runId: string;
  args: unknown[];
  status: 'RUNNING' | 'COMPLETED' | 'CANCELLED';
}

/** A stand-in for Temporal's client: one workflow at a time per id (conflict policy FAIL), as the server does. */
export function fakeTemporal() {
  const runs: FakeRun[] = [];
  const cancelled: string[] = [];
  let next = 0;
  const latest = (workflowId: string) => runs.filter((r) => r.workflowId === workflowId).at(-1);
  const temporal: LifecycleTemporal = {
    workflow: {
      async start(workflowType, options) {
        // What the real server would need for the API's one-run-per-gitspace rule to hold.
        expect(options.taskQueue).toBe(CONTROL_PLANE_TASK_QUEUE);
        expect(options.workflowIdConflictPolicy).toBe('FAIL');
        if (latest(options.workflowId)?.status === 'RUNNING')
          throw new WorkflowExecutionAlreadyStartedError('already started', options.workflowId, workflowType);
        const run: FakeRun = {
          workflowId: options.workflowId,
          type: workflowType,
          runId: `run-${++next}`,
          args: options.args as unknown[],
          status: 'RUNNING',
        };
        runs.push(run);
        return { firstExecutionRunId: run.runId };
      },
      getHandle(workflowId): LifecycleWorkflowHandle {
        const run = () => {
          const found = latest(workflowId);
          if (!found) throw new WorkflowNotFoundError('not found', workflowId, undefined);
          return found;
        };
        return {
          describe: async () => ({ status: { name: run().status }, type: run().type, runId: run().runId }),
          cancel: async () => {
            cancelled.push(workflowId);
            run().status = 'CANCELLED';
          },
          result: async () => undefined,
        };
      },
    },
  };
  return { temporal, runs, cancelled, finish: (workflowId: string) => (latest(workflowId)!.status = 'COMPLETED') };
}

export interface RouteHarness {
  db: Db;
  store: Store;
  fake: ReturnType<typeof fakeTemporal>;
  /** The admin's API token. */
  adminToken: string;
  /** Where the app listens (`http://127.0.0.1:<port>`), for the routes outside /api/v1. */
  origin: string;
  /** Calls /api/v1`route` with a bearer token; the body parsed when there is one. */
  call(
    method: string,
    route: string,
    token: string | undefined,
    body?: unknown,
  ): Promise<{ status: number; body: any }>;
  /** A new member and their first token. */
  member(name: string): Promise<{ id: string; token: string }>;
  close(): Promise<void>;
}

/**
 * The app on a loopback port, over a fresh in-memory database with the embedded defaults and an admin; `now` is the
 * clock of its rate limits and sign-in (tests move it). Without `accessTokens`, no access token can be issued.
 */
export async function startRouteHarness(
  options: { now?: () => number } & Partial<Pick<AppOptions, 'accessTokens' | 'limits' | 'autoStop'>> = {},
): Promise<RouteHarness> {
  const db = await openDatabase({ kind: 'pglite' });
  const store = createStore(db);
  const adminToken = (await store.createUser('admin', 'admin')).token;
  await ensureEmbeddedDefaults(store, 'http://127.0.0.1:1', silentLogger);
  const fake = fakeTemporal();
  const feed = new EventFeed({ store, pollMs: 50, logger: silentLogger });
  const app = createApp({
    store,
    accessTokens: options.accessTokens ?? ({} as AccessTokenIssuer),
    lifecycle: createLifecycleService({ client: fake.temporal, store, logger: silentLogger, cancelWaitMs: 1000 }),
    logger: silentLogger,
    onInfrastructureCreated: () => Promise.resolve(),
    ready: () => Promise.resolve(),
    eventFeed: feed,
    ...(options.now ? { now: options.now } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.autoStop ? { autoStop: options.autoStop } : {}),
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const base = `${origin}/api/v1`;
  return {
    db,
    store,
    fake,
    adminToken,
    origin,
    async call(method, route, token, body) {
      const response = await fetch(`${base}${route}`, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    },
    async member(name) {
      const { user, token } = await store.createUser(name, 'member');
      return { id: user.id, token };
    },
    async close() {
      feed.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await db.destroy();
    },
  };
}
