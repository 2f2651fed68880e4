import { newId } from '../../common/ids';
import type { Db } from '../connect';
import type { UserRow } from '../schema';
import { hashToken } from './token-secret';
import { activeUser } from './users';

export { hashToken };

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

    /**
     * The user a token belongs to, with `active` false when that user may not act (disabled or removed: the caller
     * refuses them), or undefined for a token nobody has.
     */
    async findUserByToken(token: string): Promise<(UserRow & { active: boolean }) | undefined> {
      return db
        .selectFrom('apiTokens')
        .innerJoin('users', 'users.id', 'apiTokens.userId')
        .selectAll('users')
        .select((eb) => activeUser(eb).$castTo<boolean>().as('active'))
        .where('apiTokens.tokenHash', '=', hashToken(token))
        .executeTakeFirst();
    },
  };
}
