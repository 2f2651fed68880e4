import { ConflictError } from '../common/errors';
import { testDatabases } from '../test/support/databases';
import { openDatabase, type Db } from './connect';
import { createStore, type Store } from './store';

/** The queries behind dashboard sessions and provider identities (db/stores/sessions.ts, identities.ts). */
describe.each(testDatabases())('sessions and identities on %s', (_name, location) => {
  let db: Db;
  let store: Store;
  const issuer = 'https://idp.example.test';

  beforeAll(async () => {
    db = await openDatabase(await location());
    store = createStore(db);
  });
  afterAll(async () => {
    await db?.destroy();
  });

  const session = (idHash: string, userId: string, at: Date) => ({
    idHash,
    userId,
    csrfToken: `csrf-${idHash}`,
    expiresAt: new Date(at.getTime() + 3600_000),
    lastSeenAt: at,
    issuer,
    refreshTokenSealed: 'v1.sealed',
    checkedAt: at,
  });

  it('finds a session with its user and whether the user may act; removes ended ones', async () => {
    const { user } = await store.createUser('sam', 'member');
    const at = new Date('2030-01-01T00:00:00.000Z');
    await store.createSession(session('hash-sam', user.id, at));
    const found = await store.findSession('hash-sam');
    expect(found?.session).toEqual(expect.objectContaining({ idHash: 'hash-sam', userId: user.id, checkedAt: at }));
    expect(found?.user).toEqual(expect.objectContaining({ id: user.id, name: 'sam', active: true }));
    await db.updateTable('users').set({ disabledAt: new Date() }).where('id', '=', user.id).execute();
    expect((await store.findSession('hash-sam'))?.user.active).toBe(false);
    expect(await store.findSession('no-such-hash')).toBeUndefined();

    // Idle since before `idleSince`, or past its end: gone; the others stay.
    await store.createSession(session('hash-fresh', user.id, new Date(at.getTime() + 1800_000)));
    await store.deleteEndedSessions(new Date(at.getTime() + 1800_000), new Date(at.getTime() + 60_000));
    expect(await store.findSession('hash-sam')).toBeUndefined();
    expect(await store.findSession('hash-fresh')).toBeDefined();
  });

  it('lets one of two concurrent provider checks of a session take it', async () => {
    const { user } = await store.createUser('cleo', 'member');
    const at = new Date('2030-01-01T00:00:00.000Z');
    await store.createSession(session('hash-cleo', user.id, at));
    const later = new Date(at.getTime() + 300_000);
    const claims = await Promise.all([
      store.claimSessionCheck('hash-cleo', at, later),
      store.claimSessionCheck('hash-cleo', at, later),
    ]);
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect(await store.claimSessionCheck('hash-cleo', at, later)).toBe(false);
    await store.recordSessionCheck('hash-cleo', { checkedAt: at, refreshTokenSealed: 'v1.rotated' });
    expect((await store.findSession('hash-cleo'))?.session).toEqual(
      expect.objectContaining({ checkedAt: at, refreshTokenSealed: 'v1.rotated' }),
    );
  });

  it('finds an invitation by e-mail whatever its case, binds it once, and then finds the user by subject only', async () => {
    const { user } = await store.createUser('iris', 'member', 'Iris@Example.test');
    expect((await store.findInvitedUser(issuer, 'iris@example.TEST'))?.id).toBe(user.id);
    // Accounts of the provider with that address signing in at once: one gets the invitation.
    const subjects = Array.from({ length: 8 }, (_, i) => `subject-${i}`);
    // Connections open first, so the sign-ins do run at once on PostgreSQL.
    await Promise.all(subjects.map(() => store.ping()));
    const bound = await Promise.allSettled(subjects.map((subject) => store.bindIdentity(issuer, subject, user.id)));
    expect(bound.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    for (const result of bound) if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(ConflictError);
    expect(await store.findInvitedUser(issuer, 'iris@example.test')).toBeUndefined();
    const winners = await Promise.all(subjects.map((subject) => store.findUserByIdentity(issuer, subject)));
    expect(winners.filter(Boolean).map((winner) => winner!.id)).toEqual([user.id]);
    // Another provider may still bind its own identity of her.
    expect((await store.findInvitedUser('https://other-idp.example.test', 'iris@example.test'))?.id).toBe(user.id);
  });

  it('creates a user with their identity at the first sign-in, and refuses a taken name', async () => {
    const created = await store.createUserWithIdentity({
      name: 'otto',
      email: 'otto@example.test',
      role: 'member',
      issuer,
      subject: 'subject-otto',
    });
    expect((await store.findUserByIdentity(issuer, 'subject-otto'))?.id).toBe(created.id);
    await expect(
      store.createUserWithIdentity({ name: 'otto', email: null, role: 'member', issuer, subject: 'subject-other' }),
    ).rejects.toBeInstanceOf(ConflictError);
    expect(await store.findUserByIdentity(issuer, 'subject-other')).toBeUndefined();
    await store.setRoleFromProvider(created.id, 'admin');
    expect((await store.findUserById(created.id))?.role).toBe('admin');
  });
});
