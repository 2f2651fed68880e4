import { CompiledQuery, createQueryId, sql, type KyselyPlugin, type RootOperationNode } from 'kysely';
import { gitspaceRow, seedStore, testDatabases } from '../test/support/databases';
import { openDatabase, type Db } from './connect';
import { createStore, type Store } from './store';

/**
 * The hot reads use their indexes (migration 0015): each store query is captured as the store sends it and explained
 * with sequential scans, bitmap scans and sorts made a last resort, so the plan names the index that serves it in
 * order, or shows the scan and sort a missing index would leave.
 */
describe.each(testDatabases())('query plans on %s', (_name, location) => {
  let db: Db;
  /** The store over a connection that keeps every query it sends. */
  let store: Store;
  let sent: RootOperationNode[] = [];
  let ownerId: string;

  beforeAll(async () => {
    db = await openDatabase(await location());
    const capture: KyselyPlugin = {
      transformQuery: ({ node }) => {
        sent.push(node);
        return node;
      },
      transformResult: async ({ result }) => result,
    };
    store = createStore(db.withPlugin(capture));
    ({ ownerId } = await seedStore(store));
    for (let i = 0; i < 60; i++) {
      const id = `gs-${i.toString().padStart(3, '0')}`;
      await store.createGitspace(gitspaceRow(id, ownerId));
      await store.recordOperation({
        gitspaceId: id,
        action: 'start',
        workflowId: `gitspace-${id}`,
        runId: `run-${id}`,
      });
    }
    await sql`analyze`.execute(db);
  });
  afterAll(async () => {
    await db?.destroy();
  });

  /** The plan of the one query `read` sends (the last, when it sends several), as EXPLAIN prints it. */
  async function planOf(read: () => Promise<unknown>): Promise<string> {
    sent = [];
    await read();
    const node = sent.at(-1);
    if (!node) throw new Error('the read sent no query');
    const query = db.getExecutor().compileQuery(node, createQueryId());
    return db.transaction().execute(async (trx) => {
      for (const setting of ['enable_seqscan', 'enable_bitmapscan', 'enable_sort']) {
        await sql`select set_config(${setting}, 'off', true)`.execute(trx);
      }
      const { rows } = await trx.executeQuery<{ 'QUERY PLAN': string }>(
        CompiledQuery.raw(`explain ${query.sql}`, [...query.parameters]),
      );
      return rows.map((row) => row['QUERY PLAN']).join('\n');
    });
  }

  /** The plan reads `index` and neither scans the table nor sorts. */
  function expectServedBy(plan: string, index: string) {
    expect(plan).toMatch(new RegExp(`Index (Only )?Scan( Backward)? using ${index} `));
    expect(plan).not.toMatch(/Seq Scan|Sort/);
  }

  it('pages gitspaces newest first from an index: all, one owner, one state, and after a cursor', async () => {
    expectServedBy(await planOf(() => store.pageGitspaces({ limit: 50 })), 'gitspaces_created');
    expectServedBy(await planOf(() => store.pageGitspaces({ ownerId, limit: 50 })), 'gitspaces_owner_created');
    expectServedBy(
      await planOf(() => store.pageGitspaces({ states: ['stopped'], limit: 50 })),
      'gitspaces_state_created',
    );
    const { next } = await store.pageGitspaces({ limit: 10 });
    const deep = await planOf(() => store.pageGitspaces({ after: next!, limit: 10 }));
    expectServedBy(deep, 'gitspaces_created');
    // The cursor is a condition of the index scan, not a filter over every row before it.
    expect(deep).toMatch(/Index Cond: \(ROW\(created_at, id\) < ROW\(/);
  });

  it("reads a gitspace's events after a number, and its latest operation, from an index", async () => {
    expectServedBy(await planOf(() => store.listEvents('gs-007', 1)), 'events_pk');
    expectServedBy(await planOf(() => store.latestOperations(['gs-001', 'gs-002'])), 'operations_gitspace_latest');
  });

  it('finds the records to prune from an index', async () => {
    const cutoff = new Date();
    for (const [kind, index] of [
      ['operations', 'operations_finished'],
      ['idempotencyKeys', 'idempotency_keys_created'],
      ['reconcileRuns', 'reconcile_runs_recorded'],
      ['cliAuthorizations', 'cli_authorizations_expires_at'],
      ['sessions', 'sessions_expires'],
    ] as const) {
      const plan = await planOf(() => store.pruneRecords(kind, cutoff, 10));
      expect(plan).toMatch(new RegExp(`Index (Only )?Scan using ${index} `));
      expect(plan).not.toMatch(/Seq Scan/);
    }
  });
});
