import { PGlite } from '@electric-sql/pglite';
import { CamelCasePlugin, Kysely, Migrator, sql } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import { gitspaceRow, seedStore, testDatabases } from '../test/support/databases';
import { migrate, openDatabase, type Db } from './connect';
import { migrationProvider, migrations } from './migrations';
import type { Database } from './schema';
import { createStore, type Store } from './store';

/** The auto-stop's records (migration 0013, db/stores/auto-stop.ts). */
describe.each(testDatabases())('auto-stop records on %s', (_name, location) => {
  let db: Db;
  let store: Store;
  let ownerId: string;
  const actor = { type: 'auto-stop' as const, reason: 'idle' as const };

  beforeAll(async () => {
    db = await openDatabase(await location());
    store = createStore(db);
    ({ ownerId } = await seedStore(store));
  });
  afterAll(async () => {
    await db?.destroy();
  });

  /** A start of the gitspace that ended `status`. */
  const start = async (id: string, runId: string, status: 'succeeded' | 'failed' = 'succeeded') => {
    await store.recordOperation({ gitspaceId: id, action: 'start', workflowId: `gitspace-${id}`, runId });
    await store.updateOperation(runId, { status });
  };
  const runningGitspace = async (id: string, runId: string) => {
    await store.createGitspace(gitspaceRow(id, ownerId));
    await start(id, runId);
    await store.changeState(id, { to: 'running', actor: { type: 'reconciler' }, message: 'running' });
  };

  it('gives new infrastructures an hour of idle time, and gitspaces their own values over it (0: never)', async () => {
    const infrastructure = await store.getInfrastructure('inf');
    expect(infrastructure.autoStopIdleSeconds).toBe(3600);
    expect(infrastructure.autoStopMaxLifetimeSeconds).toBeNull();
    await runningGitspace('gs-policy', 'run-1');
    let facts = await store.autoStopFacts('gs-policy');
    expect(facts).toEqual(
      expect.objectContaining({
        state: 'running',
        startRunId: 'run-1',
        idle: { seconds: 3600, source: 'infrastructure' },
        maxLifetime: { seconds: null, source: 'none' },
        warned: null,
      }),
    );
    expect(facts?.runningSince).toBeInstanceOf(Date);
    await store.setGitspaceAutoStop('gs-policy', { idleTimeoutSeconds: 0, maxLifetimeSeconds: 7200 });
    facts = await store.autoStopFacts('gs-policy');
    expect(facts?.idle).toEqual({ seconds: null, source: 'gitspace' });
    expect(facts?.maxLifetime).toEqual({ seconds: 7200, source: 'gitspace' });
    // A field left out keeps its value; null gives the infrastructure's back.
    await store.setGitspaceAutoStop('gs-policy', { idleTimeoutSeconds: null });
    facts = await store.autoStopFacts('gs-policy');
    expect(facts?.idle).toEqual({ seconds: 3600, source: 'infrastructure' });
    expect(facts?.maxLifetime).toEqual({ seconds: 7200, source: 'gitspace' });
  });

  it('records a warning once per deadline, with its event', async () => {
    await runningGitspace('gs-warn', 'run-w');
    const marker = { startRunId: 'run-w', reason: 'idle' as const, deadline: '2030-01-01T00:00:00.000Z' };
    const event = { message: 'stops soon', actor, data: {} };
    const given = await Promise.all([1, 2, 3].map(() => store.recordAutoStopWarning('gs-warn', marker, event)));
    expect(given.filter(Boolean)).toHaveLength(1);
    expect(
      await store.recordAutoStopWarning('gs-warn', { ...marker, deadline: '2030-01-01T01:00:00.000Z' }, event),
    ).toBe(true);
    const warnings = (await store.listEvents('gs-warn')).filter((e) => e.type === 'auto-stop-warning');
    expect(warnings.map((e) => e.actor)).toEqual([actor, actor]);
  });

  it('records a stop request only for the run the gitspace is running under', async () => {
    await runningGitspace('gs-stop', 'run-a');
    expect(await store.recordAutoStopRequest({ gitspaceId: 'gs-stop', startRunId: 'run-old', reason: 'idle' })).toBe(
      undefined,
    );
    const id = await store.recordAutoStopRequest({ gitspaceId: 'gs-stop', startRunId: 'run-a', reason: 'idle' });
    expect(id).toMatch(/^asr-/);
    expect(await store.findAutoStopRequest('gs-stop', id!)).toEqual({ id, reason: 'idle' });
    expect(await store.findAutoStopRequest('gs-policy', id!)).toBeUndefined();
    await store.changeState('gs-stop', { to: 'stopping', actor, message: 'stop requested' });
    expect(await store.recordAutoStopRequest({ gitspaceId: 'gs-stop', startRunId: 'run-a', reason: 'idle' })).toBe(
      undefined,
    );
  });

  it('believes a stop request only while the gitspace runs under the start it was recorded for', async () => {
    await runningGitspace('gs-again', 'run-1st');
    const id = await store.recordAutoStopRequest({ gitspaceId: 'gs-again', startRunId: 'run-1st', reason: 'idle' });
    expect(await store.findAutoStopRequest('gs-again', id!)).toEqual({ id, reason: 'idle' });
    // Stopped, then started again: the old request, named by a later stop's input, is not believed.
    await store.changeState('gs-again', { to: 'stopped', actor, message: 'stopped' });
    await start('gs-again', 'run-2nd');
    expect(await store.findAutoStopRequest('gs-again', id!)).toBeUndefined();
  });

  it('lists the latest successful start of each running gitspace, and of no other, for the watchers to arm', async () => {
    await runningGitspace('gs-armed', 'run-early');
    await start('gs-armed', 'run-late');
    await start('gs-armed', 'run-failed', 'failed');
    await runningGitspace('gs-stopping', 'run-s');
    await store.changeState('gs-stopping', { to: 'stopping', actor, message: 'stop requested' });
    const starts = new Map((await store.runningStarts()).map((row) => [row.gitspaceId, row.startRunId]));
    expect(starts.get('gs-armed')).toBe('run-late');
    expect(starts.has('gs-stopping')).toBe(false);
    // Every running gitspace of this file has its one entry.
    const running = await store.listGitspaces({ states: ['running'] });
    expect([...starts.keys()].sort()).toEqual(running.map((g) => g.id).sort());
  });
});

describe('migration 0013_auto_stop', () => {
  it('leaves the infrastructures of before without an auto-stop, and their gitspaces on their default', async () => {
    const db: Db = new Kysely<Database>({ dialect: new PGliteDialect(new PGlite()), plugins: [new CamelCasePlugin()] });
    try {
      const names = Object.keys(migrations).sort();
      const before = names[names.indexOf('0013_auto_stop') - 1]!;
      expect((await new Migrator({ db, provider: migrationProvider }).migrateTo(before)).error).toBeUndefined();
      await sql`insert into infrastructures (id, name, provider, gateway_url) values ('old', 'old', 'local', 'http://g')`.execute(
        db,
      );
      await migrate(db);
      const store = createStore(db);
      expect(await store.getInfrastructure('old')).toEqual(
        expect.objectContaining({ autoStopIdleSeconds: null, autoStopMaxLifetimeSeconds: null }),
      );
      await store.createInfrastructure({
        id: 'new',
        name: 'new',
        provider: 'local',
        config: {},
        gatewayUrl: 'http://g',
      });
      expect((await store.getInfrastructure('new')).autoStopIdleSeconds).toBe(3600);
    } finally {
      await db.destroy();
    }
  });
});
