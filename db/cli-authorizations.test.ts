import { testDatabases } from '../test/support/databases';
import { openDatabase, type Db } from './connect';
import { createStore, hashToken, type Store } from './store';

/** The one-time codes of `gitspaces login --web` (db/stores/cli-authorizations.ts): each gives one token, once. */
describe.each(testDatabases())('CLI sign-in codes on %s', (_name, location) => {
  let db: Db;
  let store: Store;
  const at = new Date('2030-01-01T00:00:00.000Z');
  const redirectUri = 'http://127.0.0.1:41234/callback';

  beforeAll(async () => {
    db = await openDatabase(await location());
    store = createStore(db);
  });
  afterAll(async () => {
    await db?.destroy();
  });

  async function authorize(userName: string, code: string) {
    const { user } = await store.createUser(userName, 'member');
    await store.createCliAuthorization({
      codeHash: hashToken(code),
      userId: user.id,
      challenge: `challenge-${code}`,
      redirectUri,
      clientName: 'laptop',
      expiresAt: new Date(at.getTime() + 60_000),
    });
    return user;
  }
  /** The names of a user's tokens but the first, which createUser gives. */
  const cliTokens = async (userId: string) =>
    (await store.listTokens(userId)).filter((token) => token.name !== null).map((token) => token.name);
  const redeem = (code: string, changes: Partial<{ challenge: string; redirectUri: string; now: Date }> = {}) =>
    store.redeemCliAuthorization({
      codeHash: hashToken(code),
      challenge: `challenge-${code}`,
      redirectUri,
      now: at,
      tokenName: (client) => `cli ${client} 2030-01-01`,
      ...changes,
    });

  it('gives one token for a code, once, even to exchanges racing each other; a replay revokes that token', async () => {
    const user = await authorize('rita', 'code-rita');
    // Connections open first, so the exchanges do run at once on PostgreSQL.
    await Promise.all(Array.from({ length: 6 }, () => store.ping()));
    const results = await Promise.all(Array.from({ length: 6 }, () => redeem('code-rita')));
    const issued = results.filter((result) => result.outcome === 'issued');
    expect(issued).toHaveLength(1);
    expect(results.filter((result) => result.outcome === 'refused')).toEqual(
      Array.from({ length: 5 }, () => ({ outcome: 'refused', reason: 'replayed' })),
    );
    // The replays that came after the exchange revoked its token.
    expect(await cliTokens(user.id)).toEqual([]);
  });

  it('issues a named token, and revokes it when the code comes back', async () => {
    const user = await authorize('sven', 'code-sven');
    const first = await redeem('code-sven');
    if (first.outcome !== 'issued') throw new Error(`not issued: ${JSON.stringify(first)}`);
    expect(first.user.id).toBe(user.id);
    expect((await store.findUserByToken(first.token))?.tokenId).toBe(first.tokenId);
    expect(await cliTokens(user.id)).toEqual(['cli laptop 2030-01-01']);
    expect(await redeem('code-sven')).toEqual({ outcome: 'refused', reason: 'replayed' });
    expect(await store.findUserByToken(first.token)).toBeUndefined();
  });

  it('refuses an unknown or expired code, another challenge or redirect, and a user disabled since', async () => {
    await authorize('tara', 'code-tara');
    expect(await redeem('no-such-code')).toEqual({ outcome: 'refused', reason: 'unknown' });
    expect(await redeem('code-tara', { now: new Date(at.getTime() + 60_000) })).toEqual({
      outcome: 'refused',
      reason: 'expired',
    });
    expect(await redeem('code-tara', { challenge: 'another' })).toEqual({ outcome: 'refused', reason: 'mismatch' });
    expect(await redeem('code-tara', { redirectUri: 'http://127.0.0.1:1/callback' })).toEqual({
      outcome: 'refused',
      reason: 'mismatch',
    });
    const ugo = await authorize('ugo', 'code-ugo');
    await db.updateTable('users').set({ disabledAt: new Date() }).where('id', '=', ugo.id).execute();
    expect(await redeem('code-ugo')).toEqual({ outcome: 'refused', reason: 'inactive' });
    expect(await cliTokens(ugo.id)).toEqual([]);
    // Refusals do not use the code up: the right exchange still works.
    expect((await redeem('code-tara')).outcome).toBe('issued');
  });
});
