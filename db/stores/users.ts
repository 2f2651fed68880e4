import { newId } from '../../common/ids';
import type { Db } from '../connect';
import type { UserRow } from '../schema';
import { conflictOnDuplicate } from './duplicate-key';
import { issueToken } from './tokens';

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
        return { user, token: await issueToken(trx, user.id) };
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
