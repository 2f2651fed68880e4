import { ConflictError, NotFoundError, QuotaReachedError } from '../common/errors';
import { ACTOR_NOT_RECORDED, RECONCILER, type Actor } from '../contracts/lifecycle';
import { PGlite } from '@electric-sql/pglite';
import { CamelCasePlugin, Kysely, Migrator, sql } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import { openDatabase, migrate, type Db } from './connect';
import { migrationProvider } from './migrations';
import type { Database } from './schema';
import { createStore, hashToken, type Store } from './store';
import { createAutoStopStore } from './stores/auto-stop';
import { createCliAuthorizationStore } from './stores/cli-authorizations';
import { createPruningStore } from './stores/pruning';
import { createWarmPoolStore } from './stores/warm-pool';
import { createEventStore } from './stores/events';
import { createSshKeyStore } from './stores/ssh-keys';
import { createGitspaceStore } from './stores/gitspaces';
import { createIdentityStore } from './stores/identities';
import { createInfrastructureStore } from './stores/infrastructures';
import { createMachineStore } from './stores/machines';
import { createMetricsStore } from './stores/metrics';
import { createOperationStore } from './stores/operations';
import { createReconciliationStore } from './stores/reconciliation';
import { createSessionStore } from './stores/sessions';
import { createTokenStore } from './stores/tokens';
import { createUserStore } from './stores/users';
import { gitspaceRow, seedStore, testDatabases } from '../test/support/databases';

describe.each(testDatabases())('control-plane store on %s', (_name, location) => {
  let db: Db;
  let store: Store;
  let ownerId: string;
  const someone: Actor = { type: 'user', id: 'usr-someone', name: 'someone' };

  beforeAll(async () => {
    db = await openDatabase(await location());
    store = createStore(db);
    ({ ownerId } = await seedStore(store));
  });
  afterAll(async () => {
    await db?.destroy();
  });

  /** A gitspace's values on the test infrastructure, for `createGitspace`. */
  const gitspaceValues = (id: string, name = id, owner = ownerId) => gitspaceRow(id, owner, { name });
  const newGitspace = async (id: string, name = id) => (await store.createGitspace(gitspaceValues(id, name))).gitspace;

  it('applies migrations once: a second run changes nothing', async () => {
    await migrate(db);
    const tables = await db.introspection.getTables();
    expect(tables.map((t) => t.name)).toEqual(
      expect.arrayContaining([
        'users',
        'api_tokens',
        'infrastructures',
        'machines',
        'gitspaces',
        'operations',
        'events',
      ]),
    );
  });

  it('stores only a hash of API tokens and finds the user by the token', async () => {
    const { user, token } = await store.createUser('hash-check', 'member');
    const rows = await db.selectFrom('apiTokens').selectAll().where('userId', '=', user.id).execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.tokenHash).toBe(hashToken(token));
    expect(JSON.stringify(rows)).not.toContain(token);
    expect((await store.findUserByToken(token))?.id).toBe(user.id);
    expect(await store.findUserByToken(`${token}x`)).toBeUndefined();
    await expect(store.createUser('hash-check', 'member')).rejects.toBeInstanceOf(ConflictError);
  });

  it('creates a user or an infrastructure once when several processes create it at the same moment', async () => {
    // API replicas starting together on an empty database; the losers get a ConflictError, never a driver error.
    const users = await Promise.allSettled([1, 2, 3].map(() => store.createUser('raced', 'admin')));
    expect(users.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of users.filter((r) => r.status === 'rejected')) expect(r.reason).toBeInstanceOf(ConflictError);
    const infrastructure = {
      id: 'raced',
      name: 'raced',
      provider: 'local' as const,
      config: {},
      gatewayUrl: 'http://g',
    };
    const created = await Promise.allSettled([1, 2, 3].map(() => store.createInfrastructure(infrastructure)));
    expect(created.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of created.filter((r) => r.status === 'rejected')) expect(r.reason).toBeInstanceOf(ConflictError);
  });

  it('writes an event with every state change, numbered without gaps even under concurrent writers', async () => {
    await newGitspace('gs-events');
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 2 === 0
          ? store.recordEvent('gs-events', { type: 'step', message: `step ${i}`, actor: someone })
          : store.changeState('gs-events', {
              to: i % 4 === 1 ? 'starting' : 'running',
              message: `change ${i}`,
              actor: someone,
            }),
      ),
    );
    const events = await store.listEvents('gs-events');
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect(events[0]).toMatchObject({ type: 'created', state: 'stopped' });
    expect((await store.listEvents('gs-events', 18)).map((e) => e.seq)).toEqual([19, 20, 21]);
  });

  it('refuses a state change from a state it does not allow, and changes nothing', async () => {
    await newGitspace('gs-guard');
    await expect(
      store.changeState('gs-guard', { to: 'stopping', allowedFrom: ['running'], message: 'no', actor: someone }),
    ).rejects.toThrow("gitspace 'gs-guard' is stopped; it cannot become stopping");
    expect((await store.getGitspace('gs-guard')).state).toBe('stopped');
    expect(await store.listEvents('gs-guard')).toHaveLength(1);
  });

  it('keeps the SSH host key a start brought back until a later start brings another', async () => {
    await newGitspace('gs-host-key');
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFVzbXNnCSQ2ZlJ3WmVoRUtlSFNTaHZ3ZnYycnFQWUlWZWE';
    await store.changeState('gs-host-key', { to: 'running', message: 'running', actor: someone, sshHostKey: key });
    expect((await store.getGitspace('gs-host-key')).sshHostKey).toBe(key);
    await store.changeState('gs-host-key', { to: 'stopped', message: 'stopped', actor: someone });
    expect((await store.getGitspace('gs-host-key')).sshHostKey).toBe(key);
  });

  it('keeps names unique per owner among gitspaces that exist, but frees the name of a deleted one', async () => {
    await newGitspace('gs-name-1', 'shared');
    await expect(newGitspace('gs-name-2', 'shared')).rejects.toBeInstanceOf(ConflictError);
    await store.changeState('gs-name-1', { to: 'deleted', message: 'deleted', actor: someone });
    await expect(newGitspace('gs-name-3', 'shared')).resolves.toMatchObject({ name: 'shared', state: 'stopped' });
  });

  it('creates one gitspace for concurrent creates with one idempotency key, and refuses the key with another request', async () => {
    const attempt = (id: string, requestHash = 'h1') =>
      store.createGitspace(gitspaceValues(id, 'idem'), { key: 'k-1', requestHash });
    const results = await Promise.all(['gs-idem-1', 'gs-idem-2', 'gs-idem-3', 'gs-idem-4'].map((id) => attempt(id)));
    expect(new Set(results.map((r) => r.gitspace.id)).size).toBe(1);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    await expect(attempt('gs-idem-5', 'h2')).rejects.toBeInstanceOf(ConflictError);
    expect(await store.listGitspaces({ ownerId }).then((rows) => rows.filter((g) => g.name === 'idem'))).toHaveLength(
      1,
    );
  });

  it('ends an operation and moves its gitspace in one transaction: a reader never sees one without the other', async () => {
    await newGitspace('gs-ends');
    await store.recordOperation({ gitspaceId: 'gs-ends', action: 'start', workflowId: 'w', runId: 'run-ends' });
    const actor = { type: 'reconciler' } as const;
    await store.changeState('gs-ends', { to: 'starting', actor, message: 'start requested' });
    const eventsBefore = (await store.listEvents('gs-ends', 0)).length;
    // A state change that is refused leaves the operation running too.
    await expect(
      store.updateOperation(
        'run-ends',
        { status: 'succeeded' },
        { gitspaceId: 'gs-ends', change: { to: 'running', actor, message: 'running', allowedFrom: ['stopping'] } },
      ),
    ).rejects.toBeInstanceOf(ConflictError);
    expect((await store.latestOperations(['gs-ends'])).get('gs-ends')?.status).toBe('running');
    expect((await store.listEvents('gs-ends', 0)).length).toBe(eventsBefore);
    await store.updateOperation(
      'run-ends',
      { status: 'succeeded' },
      { gitspaceId: 'gs-ends', change: { to: 'running', actor, message: 'running' } },
    );
    expect((await store.getGitspace('gs-ends')).state).toBe('running');
    expect((await store.latestOperations(['gs-ends'])).get('gs-ends')?.status).toBe('succeeded');
  });

  it('records an operation once per workflow run and tracks its outcome', async () => {
    await newGitspace('gs-ops');
    const first = await store.recordOperation({
      gitspaceId: 'gs-ops',
      action: 'start',
      workflowId: 'gitspace-gs-ops',
      runId: 'run-1',
    });
    const again = await store.recordOperation({
      gitspaceId: 'gs-ops',
      action: 'start',
      workflowId: 'gitspace-gs-ops',
      runId: 'run-1',
    });
    expect(again.id).toBe(first.id);
    await store.updateOperation('run-1', { status: 'succeeded' });
    const latest = await store.latestOperations(['gs-ops']);
    expect(latest.get('gs-ops')).toMatchObject({ status: 'succeeded', finishedAt: expect.any(Date) });

    // The latest of each gitspace, however many it had; a gitspace without any has none.
    await newGitspace('gs-ops-2');
    const record = (gitspaceId: string, action: 'start' | 'stop', runId: string) =>
      store.recordOperation({ gitspaceId, action, workflowId: `gitspace-${gitspaceId}`, runId });
    await record('gs-ops-2', 'start', 'run-2');
    await record('gs-ops', 'stop', 'run-3');
    await record('gs-ops-2', 'stop', 'run-4');
    await record('gs-ops-2', 'start', 'run-5');
    const both = await store.latestOperations(['gs-ops', 'gs-ops-2', 'gs-events']);
    expect([...both].map(([id, op]) => [id, op.action, op.runId]).sort()).toEqual([
      ['gs-ops', 'stop', 'run-3'],
      ['gs-ops-2', 'start', 'run-5'],
    ]);
    // A page of gitspaces brings the same latest operation of each of its rows.
    const page = await store.pageGitspaces({ limit: 200 });
    expect([...page.latestOperations.values()].filter((op) => op.gitspaceId.startsWith('gs-ops'))).toEqual(
      [...both.values()].sort((a, b) => b.gitspaceId.localeCompare(a.gitspaceId)),
    );
    expect(page.rows.filter((row) => !page.latestOperations.has(row.id)).length).toBeGreaterThan(0);
  });

  it('remembers when an orphan machine was first seen, forgets it when gone, and adds up reconciliation totals', async () => {
    const first = new Date('2026-01-01T00:00:00Z');
    const later = new Date('2026-01-01T01:00:00Z');
    expect(await store.trackOrphanMachines('inf', ['gs-a', 'gs-b'], first)).toEqual(
      new Map([
        ['gs-a', first],
        ['gs-b', first],
      ]),
    );
    // Seen again: the first sighting stays; one no longer seen is forgotten, so it would start over.
    expect(await store.trackOrphanMachines('inf', ['gs-a'], later)).toEqual(new Map([['gs-a', first]]));
    expect(await store.trackOrphanMachines('inf', ['gs-a', 'gs-b'], later)).toEqual(
      new Map([
        ['gs-a', first],
        ['gs-b', later],
      ]),
    );
    const run = (runId: string, counts: Record<string, number>, at: Date) =>
      store.recordReconcileRun({ runId, infrastructureId: 'inf', counts, events: [], actor: RECONCILER, at });
    expect(await run('run-1', { runs: 1, machinesDeleted: 2 }, first)).toBe(true);
    expect(await run('run-2', { runs: 1, machinesDeleted: 1, machinesStopped: 1 }, later)).toBe(true);
    // A retried recording of the same run counts nothing.
    expect(await run('run-2', { runs: 1, machinesDeleted: 1, machinesStopped: 1 }, later)).toBe(false);
    const metrics = await store.readMetrics();
    expect(metrics.reconcileTotals.map((t) => [t.outcome, t.total])).toEqual([
      ['machinesDeleted', 3],
      ['machinesStopped', 1],
      ['runs', 2],
    ]);
    expect(new Date(metrics.reconcileTotals.find((t) => t.outcome === 'runs')!.updatedAt)).toEqual(later);
    expect(metrics.orphanMachines).toEqual([{ infrastructureId: 'inf', count: 2 }]);
    await store.trackOrphanMachines('inf', [], later);
    expect((await store.readMetrics()).orphanMachines).toEqual([]);
  });

  // Issue 10, finding 8: an event did not say who asked.
  it('names the actor of every event: the owner on creation, whoever is given on changes, the reconciler on its runs', async () => {
    await newGitspace('gs-actor');
    await store.changeState('gs-actor', { to: 'starting', message: 'start requested', actor: someone });
    await store.recordEvent('gs-actor', { type: 'step', message: 'a step', actor: someone });
    await store.recordReconcileRun({
      runId: 'run-actor',
      infrastructureId: 'inf',
      counts: { runs: 1 },
      events: [{ gitspaceId: 'gs-actor', message: 'reconciled' }],
      actor: RECONCILER,
      at: new Date(),
    });
    expect((await store.listEvents('gs-actor')).map((e) => [e.type, e.actor])).toEqual([
      ['created', { type: 'user', id: ownerId, name: 'owner' }],
      ['state', someone],
      ['step', someone],
      ['reconcile', { type: 'reconciler' }],
    ]);
  });

  it('reads the new events of many gitspaces in one query, from a cursor each', async () => {
    await newGitspace('gs-feed-1');
    await newGitspace('gs-feed-2');
    await store.recordEvent('gs-feed-1', { type: 'step', message: 'one', actor: someone });
    await store.recordEvent('gs-feed-2', { type: 'step', message: 'two', actor: someone });
    await store.recordEvent('gs-feed-2', { type: 'step', message: 'three', actor: someone });
    const rows = await store.eventsAfter([
      { gitspaceId: 'gs-feed-1', afterSeq: 1 },
      { gitspaceId: 'gs-feed-2', afterSeq: 2 },
    ]);
    expect(rows.map((e) => [e.gitspaceId, e.seq, e.message])).toEqual([
      ['gs-feed-1', 2, 'one'],
      ['gs-feed-2', 3, 'three'],
    ]);
    expect(await store.eventsAfter([])).toEqual([]);
  });

  // Issue 10, finding 7: a member created 100 gitspaces.
  it('holds the per-user gitspace quota under concurrent creates, and counts no deleted gitspace', async () => {
    const quota = (await store.createUser('quota', 'member')).user;
    const attempt = (i: number) =>
      store.createGitspace(gitspaceValues(`gs-quota-${i}`, `quota-${i}`, quota.id), undefined, { maxPerOwner: 3 });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => attempt(i)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused).toHaveLength(7);
    for (const { reason } of refused) {
      expect(reason).toBeInstanceOf(QuotaReachedError);
      expect((reason as Error).message).toBe(
        "quota reached: user 'quota' has 3 of 3 gitspaces; delete one before creating another",
      );
    }
    const mine = await store.listGitspaces({ ownerId: quota.id });
    expect(mine).toHaveLength(3);
    await store.changeState(mine[0]!.id, { to: 'deleted', message: 'deleted', actor: someone });
    await expect(attempt(10)).resolves.toMatchObject({ replayed: false });
    await expect(attempt(11)).rejects.toBeInstanceOf(QuotaReachedError);
  });

  it('refuses to delete an infrastructure that gitspaces use, naming them', async () => {
    await expect(store.deleteInfrastructure('inf')).rejects.toThrow(/is used by \d+ gitspace\(s\)/);
    await expect(store.deleteInfrastructure('nope')).rejects.toBeInstanceOf(NotFoundError);
    expect((await store.getInfrastructure('inf')).id).toBe('inf');
  });

  it('removes an infrastructure whose gitspaces are all deleted, keeping their records readable', async () => {
    await store.createInfrastructure({
      id: 'retired',
      name: 'retired',
      provider: 'local',
      config: {},
      gatewayUrl: 'http://127.0.0.1:1',
    });
    await store.createMachine({
      id: 'retired-m',
      infrastructureId: 'retired',
      name: 'm',
      machineType: 'local',
      diskSizeGb: 10,
      region: null,
      zone: null,
      image: null,
    });
    const { gitspace } = await store.createGitspace({
      ...gitspaceValues('gs-retired'),
      infrastructureId: 'retired',
      machineId: 'retired-m',
    });
    await expect(store.deleteInfrastructure('retired')).rejects.toThrow(/is used by 1 gitspace\(s\)/);
    await store.changeState(gitspace.id, { to: 'deleted', message: 'deleted', actor: someone });
    await store.deleteInfrastructure('retired');
    await expect(store.getInfrastructure('retired')).rejects.toBeInstanceOf(NotFoundError);
    expect((await store.listInfrastructures()).map((i) => i.id)).not.toContain('retired');
    await expect(store.updateInfrastructure('retired', { gatewayUrl: 'http://x' })).rejects.toBeInstanceOf(
      NotFoundError,
    );
    await expect(store.deleteInfrastructure('retired')).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.getGitspace(gitspace.id)).toMatchObject({ state: 'deleted', infrastructureId: 'retired' });
    // Its name stays taken by those records, and the refusal says so.
    await expect(
      store.createInfrastructure({
        id: 'retired',
        name: 'retired',
        provider: 'local',
        config: {},
        gatewayUrl: 'http://127.0.0.1:1',
      }),
    ).rejects.toThrow(/was removed, and the records of its deleted gitspaces still name it/);
  });
});

describe('createStore', () => {
  it('composes the parts in db/stores/ without one hiding a query of another', () => {
    // The parts are spread into one object, where a second query of the same name would silently replace the first.
    const db = {} as Db;
    const parts = [
      createUserStore,
      createTokenStore,
      createInfrastructureStore,
      createMachineStore,
      createGitspaceStore,
      createEventStore,
      createOperationStore,
      createReconciliationStore,
      createMetricsStore,
      createIdentityStore,
      createSessionStore,
      createSshKeyStore,
      createAutoStopStore,
      createCliAuthorizationStore,
      createPruningStore,
      createWarmPoolStore,
    ].map((createPart) => Object.keys(createPart(db)));
    const names = parts.flat();
    expect(names.filter((name, i) => names.indexOf(name) !== i)).toEqual([]);
    expect(Object.keys(createStore(db)).sort()).toEqual([...names, 'db', 'ping'].sort());
  });
});

describe('migration 0006_event_actor', () => {
  it('reads the events written before it as unknown, saying why', async () => {
    const db: Db = new Kysely<Database>({ dialect: new PGliteDialect(new PGlite()), plugins: [new CamelCasePlugin()] });
    try {
      const migrator = new Migrator({ db, provider: migrationProvider });
      expect((await migrator.migrateTo('0005_reconcile_runs')).error).toBeUndefined();
      // The data a control plane of before wrote.
      await sql`insert into users (id, name, role) values ('usr-1', 'old', 'member')`.execute(db);
      await sql`insert into infrastructures (id, name, provider, gateway_url) values ('inf', 'inf', 'local', 'http://g')`.execute(
        db,
      );
      await sql`insert into machines (id, infrastructure_id, name, machine_type, disk_size_gb) values ('m', 'inf', 'm', 'local', 10)`.execute(
        db,
      );
      await sql`insert into gitspaces (id, name, owner_id, repository_url, infrastructure_id, machine_id, ide, state)
                values ('gs-old', 'old', 'usr-1', 'https://example.test/r.git', 'inf', 'm', 'terminal', 'stopped')`.execute(
        db,
      );
      await sql`insert into events (gitspace_id, seq, type, state, message) values ('gs-old', 1, 'created', 'stopped', 'made')`.execute(
        db,
      );
      await migrate(db);
      const [old] = await createStore(db).listEvents('gs-old');
      expect(old!.actor).toEqual(ACTOR_NOT_RECORDED);
      expect(ACTOR_NOT_RECORDED).toEqual({ type: 'unknown', reason: 'recorded before events named their actor' });
    } finally {
      await db.destroy();
    }
  });
});
