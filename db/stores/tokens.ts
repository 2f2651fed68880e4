import { sql } from 'kysely';
import { NotFoundError, QuotaReachedError } from '../../common/errors';
import { newId } from '../../common/ids';
import type { Db } from '../connect';
import type { ApiTokenRow, UserRow } from '../schema';
import { hashToken, issueToken } from './token-secret';
import { activeUser } from './users';

export { hashToken };

/** How many API tokens one user may hold: enough for every script and machine, not a table without end. */
export const MAX_TOKENS_PER_USER = 50;

/** How often a token's `lastUsedAt` is written at most: a date to the minute, not a write per request. */
const LAST_USED_RESOLUTION_MS = 60_000;

/** What a token's owner may see of it: never the token or its hash. */
export type TokenSummary = Pick<ApiTokenRow, 'id' | 'name' | 'createdAt' | 'lastUsedAt'>;

/** API tokens: issuing, listing and revoking a user's, and finding whose a token is. */
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

    /**
     * The user a token belongs to and the token's id, with `active` false when that user may not act (disabled or
     * removed: the caller refuses them), or undefined for a token nobody has. Notes when an active user's token was
     * used, at most once a minute per token.
     */
    async findUserByToken(token: string): Promise<(UserRow & { active: boolean; tokenId: string }) | undefined> {
      const row = await db
        .selectFrom('apiTokens')
        .innerJoin('users', 'users.id', 'apiTokens.userId')
        .selectAll('users')
        .select((eb) => activeUser(eb).$castTo<boolean>().as('active'))
        .select(['apiTokens.id as tokenId', 'apiTokens.lastUsedAt as tokenLastUsedAt'])
        .where('apiTokens.tokenHash', '=', hashToken(token))
        .executeTakeFirst();
      if (!row) return undefined;
      const { tokenLastUsedAt, ...user } = row;
      const { tokenId } = user;
      if (user.active && !(tokenLastUsedAt && Date.now() - tokenLastUsedAt.getTime() < LAST_USED_RESOLUTION_MS)) {
        // Conditional, so requests that raced here (or another replica) write it once.
        await db
          .updateTable('apiTokens')
          .set({ lastUsedAt: sql<Date>`now()` })
          .where('id', '=', tokenId)
          .where((eb) =>
            eb.or([
              eb('lastUsedAt', 'is', null),
              eb('lastUsedAt', '<', sql<Date>`now() - make_interval(secs => ${LAST_USED_RESOLUTION_MS / 1000})`),
            ]),
          )
          .execute();
      }
      return user;
    },

    /** A user's tokens, oldest first. */
    async listTokens(userId: string): Promise<TokenSummary[]> {
      return db
        .selectFrom('apiTokens')
        .select(['id', 'name', 'createdAt', 'lastUsedAt'])
        .where('userId', '=', userId)
        .orderBy('createdAt')
        .orderBy('id')
        .execute();
    },

    /** A new token for a user, returned once (QuotaReachedError past MAX_TOKENS_PER_USER). */
    async createToken(userId: string, name: string | null): Promise<TokenSummary & { token: string }> {
      return db.transaction().execute((trx) => createTokenWithinQuota(trx, userId, name));
    },

    /** Revokes one of a user's tokens at once (NotFoundError when the user has no such token). */
    async revokeToken(userId: string, tokenId: string): Promise<void> {
      const result = await db
        .deleteFrom('apiTokens')
        .where('id', '=', tokenId)
        .where('userId', '=', userId)
        .executeTakeFirst();
      if (Number(result.numDeletedRows) === 0) throw new NotFoundError('token', tokenId);
    },
  };
}

/**
 * A new token for a user within a transaction the caller holds, returned once (QuotaReachedError past
 * MAX_TOKENS_PER_USER). The user's row is locked while counting, so concurrent requests cannot pass the limit together.
 */
export async function createTokenWithinQuota(
  trx: Db,
  userId: string,
  name: string | null,
): Promise<TokenSummary & { token: string }> {
  await trx.selectFrom('users').select('id').where('id', '=', userId).forUpdate().executeTakeFirstOrThrow();
  const { count } = await trx
    .selectFrom('apiTokens')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('userId', '=', userId)
    .executeTakeFirstOrThrow();
  if (Number(count) >= MAX_TOKENS_PER_USER) {
    throw new QuotaReachedError(
      `a user may hold ${MAX_TOKENS_PER_USER} API tokens and this one holds ${count}; revoke one first`,
    );
  }
  const created = await issueToken(trx, userId, name);
  return { ...created, lastUsedAt: null };
}
