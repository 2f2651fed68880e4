import { sql } from 'kysely';
import { ConflictError, NotFoundError, QuotaReachedError } from '../common/errors';
import { gitspaceRow, seedStore, testDatabases } from '../test/support/databases';
import { openDatabase, type Db } from './connect';
import { createStore, type Store } from './store';

const key = (userId: string, n: number) => ({
  userId,
  name: `key ${n}`,
  publicKey: `ssh-ed25519 AAAA${n} key${n}`,
  fingerprint: `SHA256:fingerprint-${n}`,
});

describe.each(testDatabases())('SSH keys on %s', (_name, location) => {
  let db: Db;
  let store: Store;

  beforeAll(async () => {
    db = await openDatabase(await location());
    store = createStore(db);
  });
  afterAll(async () => {
    await db?.destroy();
  });

  const newUser = async (name: string) => (await store.createUser(name, 'member')).user.id;

  it('adds, lists, names the fingerprints of and removes a user’s keys, and nobody else’s', async () => {
    const ada = await newUser('ada');
    const bob = await newUser('bob');
    const first = await store.addSshKey(key(ada, 1), { maxPerUser: 20 });
    await store.addSshKey(key(ada, 2), { maxPerUser: 20 });
    const bobs = await store.addSshKey(key(bob, 3), { maxPerUser: 20 });
    expect(first).toMatchObject({ ...key(ada, 1), lastUsedAt: null });
    expect(first.id).toMatch(/^key-/);
    expect((await store.listSshKeys(ada)).map((k) => k.name)).toEqual(['key 1', 'key 2']);
    expect(await store.sshFingerprints(ada)).toEqual(['SHA256:fingerprint-1', 'SHA256:fingerprint-2']);
    expect(await store.sshFingerprints(bob)).toEqual(['SHA256:fingerprint-3']);

    await expect(store.removeSshKey(ada, bobs.id)).rejects.toThrow(NotFoundError);
    expect(await store.sshFingerprints(bob)).toEqual(['SHA256:fingerprint-3']);
    await store.removeSshKey(ada, first.id);
    expect(await store.sshFingerprints(ada)).toEqual(['SHA256:fingerprint-2']);
    await expect(store.removeSshKey(ada, first.id)).rejects.toThrow(NotFoundError);
  });

  it('refuses a key the user has already, but lets another user register the same key', async () => {
    const cy = await newUser('cy');
    const dee = await newUser('dee');
    await store.addSshKey(key(cy, 1), { maxPerUser: 20 });
    const again = store.addSshKey({ ...key(cy, 1), name: 'same key, other name' }, { maxPerUser: 20 });
    await expect(again).rejects.toThrow(ConflictError);
    await expect(again).rejects.toThrow(/has this SSH key \(SHA256:fingerprint-1\) already/);
    await store.addSshKey(key(dee, 1), { maxPerUser: 20 });
    expect(await store.listSshKeys(cy)).toHaveLength(1);
  });

  it('holds the quota under concurrent adds: the count is taken under the user’s row lock', async () => {
    const eve = await newUser('eve');
    // Connections open first, so the adds really run at once on PostgreSQL (PGlite runs one at a time anyway).
    await Promise.all(Array.from({ length: 8 }, () => sql`select pg_sleep(0.05)`.execute(db)));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 8 }, (_, n) => store.addSshKey(key(eve, n), { maxPerUser: 3 })),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(3);
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(refused).toHaveLength(5);
    for (const { reason } of refused) expect(reason).toBeInstanceOf(QuotaReachedError);
    expect((refused[0]!.reason as Error).message).toBe(
      "quota reached: user 'eve' has 3 of 3 SSH keys; remove one before adding another",
    );
    expect(await store.listSshKeys(eve)).toHaveLength(3);
  });

  it('refuses a key for a user who does not exist', async () => {
    await expect(store.addSshKey(key('usr-nobody', 1), { maxPerUser: 20 })).rejects.toThrow(NotFoundError);
  });

  it('deletes a user’s keys with the user’s row', async () => {
    const fay = await newUser('fay');
    await store.addSshKey(key(fay, 1), { maxPerUser: 20 });
    await db.deleteFrom('users').where('id', '=', fay).execute();
    const { rows } = await sql<{
      count: string;
    }>`select count(*) as count from ssh_keys where user_id = ${fay}`.execute(db);
    expect(Number(rows[0]!.count)).toBe(0);
  });

  it('gives each gitspace a host key that is null until its agent publishes one', async () => {
    const { ownerId: owner } = await seedStore(store);
    const { gitspace } = await store.createGitspace(gitspaceRow('gs-hostkey', owner, { name: 'hostkey' }));
    expect(gitspace.sshHostKey).toBeNull();
    await db
      .updateTable('gitspaces')
      .set({ sshHostKey: 'ssh-ed25519 AAAAhost' })
      .where('id', '=', gitspace.id)
      .execute();
    expect((await store.getGitspace(gitspace.id)).sshHostKey).toBe('ssh-ed25519 AAAAhost');
  });
});
