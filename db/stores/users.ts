import type { ExpressionBuilder } from 'kysely';
import { newId } from '../../common/ids';
import type { Db } from '../connect';
import type { Database, UserRow } from '../schema';
import { conflictOnDuplicate } from './duplicate-key';
import { issueToken } from './token-secret';

/**
 * Whether a user may act: neither disabled nor removed. The one definition of an active user, used by every lookup
 * that lets someone in (API tokens in db/stores/tokens.ts, dashboard sessions) and by the last-admin guard. Use it as a
 * condition (`.where(activeUser)`), or select it (`activeUser(eb).as('active')`) to tell a refused user (401 with
 * `inactiveUserMessage`) from an unknown credential.
 */
export function activeUser(eb: ExpressionBuilder<Database, 'users'>) {
  return eb.and([eb('users.disabledAt', 'is', null), eb('users.deletedAt', 'is', null)]);
}

/** Why a user who is not active is refused (the 401's message). */
export function inactiveUserMessage(user: Pick<UserRow, 'deletedAt'>): string {
  return user.deletedAt ? 'user was removed' : 'user is disabled';
}

/** Users: creating them (with their first API token) and finding them. */
export function createUserStore(db: Db) {
  return {
    async createUser(name: string, role: UserRow['role']): Promise<{ user: UserRow; token: string }> {
      return db.transaction().execute(async (trx) => {
        // The unique name decides, also between two processes creating the same user at once.
        const user = await trx
          .insertInto('users')
          .values({ id: newId('usr'), name, role })
          .returningAll()
          .executeTakeFirstOrThrow()
          .catch(conflictOnDuplicate(`a user named '${name}' already exists`));
        return { user, token: (await issueToken(trx, user.id)).token };
      });
    },

    async findUserByName(name: string): Promise<UserRow | undefined> {
      return db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
    },

    async findUserById(id: string): Promise<UserRow | undefined> {
      return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    },

    async listUsers(): Promise<UserRow[]> {
      return db.selectFrom('users').selectAll().orderBy('createdAt').orderBy('id').execute();
    },
  };
}
