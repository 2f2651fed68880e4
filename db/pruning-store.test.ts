import { sql } from 'kysely';
import { gitspaceRow, seedStore, testDatabases } from '../test/support/databases';
import { openDatabase, type Db } from './connect';
import type { OperationsTable } from './schema';
import { createStore, type Store } from './store';

const DAY_MS = 24 * 3600_000;

/** Pruning old records a batch at a time (db/stores/pruning.ts): exactly the old and finished ones go. */
describe.each(testDatabases())('pruning on %s', (_name, location) => {
  let db: Db;
  let store: Store;
  let ownerId: string;
  const now = Date.now();
  const daysAgo = (days: number) => new Date(now - days * DAY_MS);
  const cutoff = daysAgo(30);

  beforeAll(async () => {
    db = await openDatabase(await location());
    store = createStore(db);
    ({ ownerId } = await seedStore(store));
  });
  afterAll(async () => {
    await db?.destroy();
  });

  const gitspace = async (id: string, idempotencyKey?: string) => {
    await store.createGitspace(
      gitspaceRow(id, ownerId),
      idempotencyKey ? { key: idempotencyKey, requestHash: 'h' } : undefined,
    );
  };

  /** An operation created `createdDays` ago and finished `finishedDays` ago (still running without). */
  const operation = async (
    id: string,
    gitspaceId: string,
    action: OperationsTable['action'],
    status: OperationsTable['status'],
    createdDays: number,
    finishedDays?: number,
  ) => {
    await db
      .insertInto('operations')
      .values({
        id,
        gitspaceId,
        action,
        workflowId: `gitspace-${gitspaceId}`,
        runId: `run-${id}`,
        status,
        step: null,
        finishedAt: finishedDays === undefined ? null : daysAgo(finishedDays),
      })
      .execute();
    // The database writes creation times; a test sets them in the past.
    await sql`update operations set created_at = ${daysAgo(createdDays)} where id = ${id}`.execute(db);
  };
  const operationIds = async () =>
    (await db.selectFrom('operations').select('id').orderBy('id').execute()).map((row) => row.id);

  it("deletes finished operations past the cutoff, keeping each gitspace's latest, its latest successful start and running ones", async () => {
    await gitspace('gs-a');
    await operation('op-a1', 'gs-a', 'start', 'succeeded', 40, 40);
    await operation('op-a2', 'gs-a', 'stop', 'succeeded', 39, 39);
    await operation('op-a3', 'gs-a', 'start', 'succeeded', 38, 38); // its latest successful start: the auto-stop's
    await operation('op-a4', 'gs-a', 'stop', 'failed', 37, 37); // its latest: what GET /gitspaces/:id shows
    await gitspace('gs-b');
    await operation('op-b1', 'gs-b', 'start', 'failed', 40, 40);
    await operation('op-b2', 'gs-b', 'stop', 'running', 40); // not finished
    await operation('op-b3', 'gs-b', 'delete', 'cancelled', 12, 12); // within the retention
    await operation('op-b4', 'gs-b', 'start', 'succeeded', 1, 1);
    await gitspace('gs-c');
    await operation('op-c1', 'gs-c', 'delete', 'succeeded', 100, 100); // its only one

    expect(await store.pruneRecords('operations', cutoff, 100)).toBe(3);
    expect(await operationIds()).toEqual(['op-a3', 'op-a4', 'op-b2', 'op-b3', 'op-b4', 'op-c1']);
    // What the API and the auto-stop read is unchanged.
    const latest = await store.latestOperations(['gs-a', 'gs-b', 'gs-c']);
    expect([...latest.values()].map((row) => row.id).sort()).toEqual(['op-a4', 'op-b4', 'op-c1']);
    expect(await store.pruneRecords('operations', cutoff, 100)).toBe(0);
  });

  it('deletes a batch at a time, oldest first, and says when a batch was full', async () => {
    await gitspace('gs-many');
    for (let i = 0; i < 7; i++) await operation(`op-many-${i}`, 'gs-many', 'stop', 'succeeded', 60 - i, 60 - i);
    await operation('op-many-latest', 'gs-many', 'start', 'succeeded', 2, 2);
    expect(await store.pruneRecords('operations', cutoff, 3)).toBe(3);
    // The three oldest went first.
    expect((await operationIds()).filter((id) => id.startsWith('op-many'))).toEqual([
      'op-many-3',
      'op-many-4',
      'op-many-5',
      'op-many-6',
      'op-many-latest',
    ]);
    expect(await store.pruneRecords('operations', cutoff, 3)).toBe(3);
    expect(await store.pruneRecords('operations', cutoff, 3)).toBe(1);
    expect((await operationIds()).filter((id) => id.startsWith('op-many'))).toEqual(['op-many-latest']);
  });

  it('deletes idempotency keys and reconcile runs older than the cutoff, and keeps the newer', async () => {
    await gitspace('gs-key-old', 'key-old');
    await gitspace('gs-key-new', 'key-new');
    await sql`update idempotency_keys set created_at = ${daysAgo(2)} where key = 'key-old'`.execute(db);
    expect(await store.pruneRecords('idempotencyKeys', daysAgo(1), 100)).toBe(1);
    const keys = await db.selectFrom('idempotencyKeys').select('key').execute();
    expect(keys.map((row) => row.key)).toEqual(['key-new']);

    const run = (runId: string, at: Date) =>
      store.recordReconcileRun({
        runId,
        infrastructureId: 'inf',
        counts: {},
        events: [],
        actor: { type: 'reconciler' },
        at,
      });
    await run('rec-old', daysAgo(8));
    await run('rec-new', daysAgo(6));
    expect(await store.pruneRecords('reconcileRuns', daysAgo(7), 100)).toBe(1);
    const runs = await db.selectFrom('reconcileRuns').select('runId').execute();
    expect(runs.map((row) => row.runId)).toEqual(['rec-new']);
    // A run still kept is still known: a retried recording of it counts nothing twice.
    expect(await run('rec-new', daysAgo(6))).toBe(false);
  });

  it('deletes CLI login codes and sessions past their expiry, and keeps the others', async () => {
    const code = (codeHash: string, expiresAt: Date) =>
      store.createCliAuthorization({
        codeHash,
        userId: ownerId,
        challenge: 'c',
        redirectUri: 'http://127.0.0.1:1/cb',
        clientName: 'cli',
        expiresAt,
      });
    // In this order: making a code deletes those long expired at its own time.
    await code('code-new', daysAgo(0.5));
    await code('code-old', daysAgo(3));
    expect(await store.pruneRecords('cliAuthorizations', daysAgo(1), 100)).toBe(1);
    const codes = await db.selectFrom('cliAuthorizations').select('codeHash').execute();
    expect(codes.map((row) => row.codeHash)).toEqual(['code-new']);

    const session = (idHash: string, expiresAt: Date) =>
      store.createSession({
        idHash,
        userId: ownerId,
        csrfToken: 'csrf',
        expiresAt,
        lastSeenAt: daysAgo(1),
        issuer: null,
        refreshTokenSealed: null,
        checkedAt: null,
      });
    await session('session-ended', daysAgo(0.1));
    await session('session-open', new Date(now + DAY_MS));
    expect(await store.pruneRecords('sessions', new Date(now), 100)).toBe(1);
    const sessions = await db.selectFrom('sessions').select('idHash').execute();
    expect(sessions.map((row) => row.idHash)).toEqual(['session-open']);
  });
});
