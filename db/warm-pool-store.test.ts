import { gitspaceRow, seedStore, testDatabases } from '../test/support/databases';
import { openDatabase, type Db } from './connect';
import { createStore, type Store } from './store';
import { WARM_KEY_PATTERN } from '../contracts/provider';
import { warmPoolBackoffMs } from './stores/warm-pool';

const STALE_MS = 45 * 60_000;

/** Warm pools' records (db/stores/warm-pool.ts): filling, claiming, retiring, backing off, and never losing one. */
describe.each(testDatabases())('warm pools on %s', (_name, location) => {
  let db: Db;
  let store: Store;
  let ownerId: string;
  let now = new Date('2026-12-02T10:00:00Z');

  beforeAll(async () => {
    db = await openDatabase(await location());
    store = createStore(db);
    ({ ownerId } = await seedStore(store));
  });
  afterAll(async () => {
    await db?.destroy();
  });
  beforeEach(async () => {
    await db.deleteFrom('warmMachines').execute();
    await db.deleteFrom('operations').execute();
    await db.updateTable('machines').set({ warmPoolSize: 0, warmPoolFailures: 0, warmPoolRetryAt: null }).execute();
  });

  const plan = () => store.planWarmPool('inf', now, STALE_MS);
  const states = async () =>
    Object.fromEntries(
      (await db.selectFrom('warmMachines').select(['key', 'state']).execute()).map((r) => [r.key, r.state]),
    );
  /** Fills the pool of `inf-m` to `size` ready machines; returns their keys. */
  const fill = async (size: number): Promise<string[]> => {
    await store.updateMachine('inf-m', { warmPoolSize: size });
    const { prepare } = await plan();
    for (const { key } of prepare) expect(await store.warmMachineReady(key, now)).toBe(true);
    return prepare.map((p) => p.key);
  };
  let gitspaces = 0;
  const newGitspace = async (state: 'starting' | 'running' = 'starting') => {
    const id = `gs-${++gitspaces}`;
    await store.createGitspace(gitspaceRow(id, ownerId));
    await db.updateTable('gitspaces').set({ state }).where('id', '=', id).execute();
    return id;
  };

  it('orders machines up to the size, each under its own warm key, and no more while they are made', async () => {
    expect(await store.infrastructuresWithWarmPools()).toEqual(new Set());
    await store.updateMachine('inf-m', { warmPoolSize: 3 });
    expect(await store.infrastructuresWithWarmPools()).toEqual(new Set(['inf']));
    const first = await plan();
    expect(first.prepare).toHaveLength(3);
    expect(first.retire).toEqual([]);
    for (const { key, machine } of first.prepare) {
      expect(key).toMatch(WARM_KEY_PATTERN);
      expect(machine.id).toBe('inf-m');
    }
    expect(new Set(first.prepare.map((p) => p.key)).size).toBe(3);
    expect(await plan()).toEqual({ prepare: [], retire: [] });
  });

  it('two plans at once never order more than the size between them', async () => {
    await store.updateMachine('inf-m', { warmPoolSize: 4 });
    const [a, b] = await Promise.all([plan(), plan()]);
    expect(a.prepare.length + b.prepare.length).toBe(4);
  });

  it('a start claims a ready machine once, finds the same claim again, and concurrent starts take different ones', async () => {
    const keys = await fill(2);
    const [one, two, three] = [await newGitspace(), await newGitspace(), await newGitspace()];
    const claims = await Promise.all([one, two, three].map((g) => store.claimWarmMachine(g, 'inf-m', now)));
    expect(claims.filter((c) => c !== null).sort()).toEqual([...keys].sort());
    expect(claims.filter((c) => c === null)).toHaveLength(1);
    const holder = [one, two, three][claims.findIndex((c) => c !== null)]!;
    expect(await store.claimWarmMachine(holder, 'inf-m', now)).toBe(claims.find((c) => c !== null));
  });

  it('a gitspace that ran before claims nothing: its machine is its own', async () => {
    await fill(1);
    const gitspaceId = await newGitspace();
    await store.recordOperation({ gitspaceId, action: 'start', workflowId: 'w', runId: 'r1' });
    await store.updateOperation('r1', { status: 'succeeded' });
    expect(await store.claimWarmMachine(gitspaceId, 'inf-m', now)).toBeNull();
  });

  it('a claim lasts while its start runs, then retires; the pool orders a replacement', async () => {
    const [key] = await fill(1);
    const gitspaceId = await newGitspace('starting');
    expect(await store.claimWarmMachine(gitspaceId, 'inf-m', now)).toBe(key);
    const during = await plan();
    expect(during.retire).toEqual([]);
    expect(during.prepare).toHaveLength(1);
    await db.updateTable('gitspaces').set({ state: 'running' }).where('id', '=', gitspaceId).execute();
    expect((await plan()).retire).toEqual([key]);
    await store.forgetWarmMachine(key!);
    expect(Object.keys(await states())).not.toContain(key);
  });

  it('a smaller size retires ready machines; a removed shape size 0 retires them all', async () => {
    await fill(3);
    await store.updateMachine('inf-m', { warmPoolSize: 1 });
    expect((await plan()).retire).toHaveLength(2);
    await store.updateMachine('inf-m', { warmPoolSize: 0 });
    // Size 0, but machines still to delete: the pool's schedule is still needed.
    expect(await store.infrastructuresWithWarmPools()).toEqual(new Set(['inf']));
    expect((await plan()).retire).toHaveLength(3);
    expect(Object.values(await states())).toEqual(['retiring', 'retiring', 'retiring']);
  });

  it('a machine still being made is not retired for surplus, but is once stale (its run died)', async () => {
    await store.updateMachine('inf-m', { warmPoolSize: 1 });
    const { key } = (await plan()).prepare[0]!;
    await store.updateMachine('inf-m', { warmPoolSize: 0 });
    expect((await plan()).retire).toEqual([]);
    now = new Date(+now + STALE_MS + 1000);
    expect((await plan()).retire).toEqual([key]);
    expect(await store.warmMachineReady(key, now)).toBe(false);
  });

  it('a failed machine retires and its shape backs off, doubling, until one is ready', async () => {
    await store.updateMachine('inf-m', { warmPoolSize: 1 });
    const { key } = (await plan()).prepare[0]!;
    await store.warmMachineFailed(key, now);
    const backingOff = await plan();
    expect(backingOff).toEqual({ prepare: [], retire: [key] });
    now = new Date(+now + warmPoolBackoffMs(1));
    const again = await plan();
    expect(again.prepare).toHaveLength(1);
    await store.warmMachineFailed(again.prepare[0]!.key, now);
    now = new Date(+now + warmPoolBackoffMs(1));
    expect((await plan()).prepare).toEqual([]);
    now = new Date(+now + warmPoolBackoffMs(2));
    const third = await plan();
    expect(third.prepare).toHaveLength(1);
    expect(await store.warmMachineReady(third.prepare[0]!.key, now)).toBe(true);
    const shape = await store.getMachine('inf-m');
    expect([shape.warmPoolFailures, shape.warmPoolRetryAt]).toEqual([0, null]);
    expect(warmPoolBackoffMs(1)).toBe(30_000);
    expect(warmPoolBackoffMs(40)).toBe(3600_000);
  });

  it('a shape or an infrastructure with pooled machines cannot be removed; the count says how many', async () => {
    await fill(2);
    // Nothing else holds them: their gitspaces are deleted.
    await db.updateTable('gitspaces').set({ state: 'deleted' }).execute();
    expect(await store.countWarmMachines(['inf-m'])).toEqual(new Map([['inf-m', { ready: 2, preparing: 0 }]]));
    await expect(store.deleteMachine('inf-m')).rejects.toThrow(/2 machine\(s\) in a warm pool; set warmPoolSize to 0/);
    await expect(store.deleteInfrastructure('inf')).rejects.toThrow(/warm pool/);
    expect((await store.listWarmMachines('inf')).map((row) => row.state)).toEqual(['ready', 'ready']);
  });
});
