import { sql } from 'kysely';
import { silentLogger } from '../common/logger';
import { openDatabase, type Db } from '../db/connect';
import { createStore, type Store } from '../db/store';
import { createPruningActivities, DEFAULT_RETENTION } from './pruning';
import { gitspaceRow, seedStore } from '../test/support/databases';

const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;

/** What each retention means, on the real store (PGlite): records just past it go, records just within it stay. */
describe('pruning activities', () => {
  let db: Db;
  let store: Store;
  let ownerId: string;
  const ago = (ms: number) => new Date(Date.now() - ms);

  beforeAll(async () => {
    db = await openDatabase({ kind: 'pglite' });
    store = createStore(db);
    ({ ownerId } = await seedStore(store));
  });
  afterAll(async () => {
    await db?.destroy();
  });

  /** A gitspace created with an idempotency key `age` ago, with a finished stop that old and a later start. */
  async function gitspaceAged(id: string, age: number) {
    await store.createGitspace(gitspaceRow(id, ownerId), { key: `key-${id}`, requestHash: 'h' });
    await sql`update idempotency_keys set created_at = ${ago(age)} where key = ${`key-${id}`}`.execute(db);
    await store.recordOperation({ gitspaceId: id, action: 'stop', workflowId: `gitspace-${id}`, runId: `stop-${id}` });
    await sql`update operations set status = 'succeeded', created_at = ${ago(age)}, finished_at = ${ago(age)}
      where run_id = ${`stop-${id}`}`.execute(db);
    await store.recordOperation({
      gitspaceId: id,
      action: 'start',
      workflowId: `gitspace-${id}`,
      runId: `start-${id}`,
    });
    await store.recordReconcileRun({
      runId: `reconcile-${id}`,
      infrastructureId: 'inf',
      counts: {},
      events: [],
      actor: { type: 'reconciler' },
      at: ago(age),
    });
  }

  const left = async () => ({
    operations: (await db.selectFrom('operations').select('runId').orderBy('runId').execute()).map((r) => r.runId),
    keys: (await db.selectFrom('idempotencyKeys').select('key').orderBy('key').execute()).map((r) => r.key),
    runs: (await db.selectFrom('reconcileRuns').select('runId').orderBy('runId').execute()).map((r) => r.runId),
  });

  async function pruneAll(activities: ReturnType<typeof createPruningActivities>) {
    for (const kind of ['operations', 'idempotencyKeys', 'reconcileRuns'] as const) {
      expect(await activities.pruneBatch({ kind })).toEqual({ deleted: expect.any(Number), more: false });
    }
  }

  it('keeps operations 30 days, idempotency keys a day and reconcile runs 7 days by default', async () => {
    expect(DEFAULT_RETENTION).toEqual({ operationDays: 30, idempotencyKeyDays: 1, reconcileRunDays: 7 });
    await gitspaceAged('gs-31d', 31 * DAY_MS);
    await gitspaceAged('gs-8d', 8 * DAY_MS);
    await gitspaceAged('gs-25h', 25 * HOUR_MS);
    await gitspaceAged('gs-23h', 23 * HOUR_MS);
    await pruneAll(createPruningActivities({ store, logger: silentLogger }));
    expect(await left()).toEqual({
      operations: [
        'start-gs-23h',
        'start-gs-25h',
        'start-gs-31d',
        'start-gs-8d',
        'stop-gs-23h',
        'stop-gs-25h',
        'stop-gs-8d',
      ],
      keys: ['key-gs-23h'],
      runs: ['reconcile-gs-23h', 'reconcile-gs-25h'],
    });
  });

  it('follows a configured retention', async () => {
    await pruneAll(
      createPruningActivities({ store, logger: silentLogger, retention: { operationDays: 7, reconcileRunDays: 1 } }),
    );
    expect(await left()).toEqual({
      operations: ['start-gs-23h', 'start-gs-25h', 'start-gs-31d', 'start-gs-8d', 'stop-gs-23h', 'stop-gs-25h'],
      keys: ['key-gs-23h'],
      runs: ['reconcile-gs-23h'],
    });
  });
});
