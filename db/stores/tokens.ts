import { createHash } from 'node:crypto';
import { newId, newToken } from '../../common/ids';
import type { Db } from '../connect';
import type { UserRow } from '../schema';

/** What the database keeps of an API token: its hash, never the token. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Makes a new API token for a user and stores its hash; the token itself is returned once, to be shown once. */
export async function issueToken(db: Db, userId: string): Promise<string> {
  const token = newToken('gsp');
  await db
    .insertInto('apiTokens')
    .values({ id: newId('tok'), userId, tokenHash: hashToken(token), lastUsedAt: null })
    .execute();
  return token;
}

/** API tokens: registering them and finding whose a token is. */
export function createTokenStore(db: Db) {
  return {
    /** Registers a token for a user (the configured admin token); a token already registered is left as it is. */
    async addToken(userId: string, token: string): Promise<void> {
      await db
        .insertInto('apiTokens')
        .values({ id: newId('tok'), userId, tokenHash: hashToken(token), lastUsedAt: null })
        .onConflict((oc) => oc.column('tokenHash').doNothing())
        .execute();
    },

    async findUserByToken(token: string): Promise<UserRow | undefined> {
      return db
        .selectFrom('apiTokens')
        .innerJoin('users', 'users.id', 'apiTokens.userId')
        .selectAll('users')
        .where('apiTokens.tokenHash', '=', hashToken(token))
        .executeTakeFirst();
    },
  };
}
