import { sql, type ExpressionBuilder, type Transaction } from 'kysely';
import { ConflictError, NotFoundError } from '../../common/errors';
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

/** What an administrator may change of a user. */
export interface UserChanges {
  disabled?: boolean;
  role?: UserRow['role'];
}

/** Users: creating them (with their first API token), finding them, and an administrator's changes. */
export function createUserStore(db: Db) {
  return {
    /** A user and their first API token; `email` invites them to their first OpenID Connect sign-in. */
    async createUser(
      name: string,
      role: UserRow['role'],
      email: string | null = null,
    ): Promise<{ user: UserRow; token: string }> {
      return db
        .transaction()
        .execute(async (trx) => {
          if (email !== null) {
            const invited = await trx
              .selectFrom('users')
              .select('name')
              .where(sql<boolean>`lower(users.email) = lower(${email})`)
              .where('deletedAt', 'is', null)
              .executeTakeFirst();
            if (invited) throw new ConflictError(`user '${invited.name}' already has the e-mail ${email}`);
          }
          // The unique name decides, also between two processes creating the same user at once.
          const user = await trx
            .insertInto('users')
            .values({ id: newId('usr'), name, role, email })
            .returningAll()
            .executeTakeFirstOrThrow();
          return { user, token: (await issueToken(trx, user.id)).token };
        })
        .catch(async (error: unknown) => {
          // Read after the failed transaction ended: PGlite has one connection, and the transaction is aborted.
          const removed = await db
            .selectFrom('users')
            .select('id')
            .where('name', '=', name)
            .where('deletedAt', 'is not', null)
            .executeTakeFirst()
            .catch(() => undefined);
          return conflictOnDuplicate(
            removed
              ? `a removed user was named '${name}', and their gitspaces' records still name them; choose another name`
              : `a user named '${name}' already exists`,
          )(error);
        });
    },

    async findUserByName(name: string): Promise<UserRow | undefined> {
      return db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
    },

    /** Any user, a removed one too (events name the users who acted). */
    async findUserById(id: string): Promise<UserRow | undefined> {
      return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    },

    /** A user who is not removed (a disabled one too), or NotFoundError. */
    async getUser(id: string): Promise<UserRow> {
      const row = await db
        .selectFrom('users')
        .selectAll()
        .where('id', '=', id)
        .where('deletedAt', 'is', null)
        .executeTakeFirst();
      if (!row) throw new NotFoundError('user', id);
      return row;
    },

    /** The users, oldest first; removed ones only when asked. */
    async listUsers(options: { includeRemoved?: boolean } = {}): Promise<UserRow[]> {
      return db
        .selectFrom('users')
        .selectAll()
        .$if(!options.includeRemoved, (q) => q.where('deletedAt', 'is', null))
        .orderBy('createdAt')
        .orderBy('id')
        .execute();
    },

    /**
     * Disables or enables a user, or changes their role, as the administrator `by`: no one may disable or demote
     * themselves, nor the last active administrator (ConflictError).
     */
    async updateUser(id: string, changes: UserChanges, by: string): Promise<UserRow> {
      return db.transaction().execute(async (trx) => {
        const user = await lockUser(trx, id);
        if (changes.disabled === true && user.disabledAt === null) await guardAdmins(trx, user, by, 'disable');
        if (changes.role === 'member' && user.role === 'admin') await guardAdmins(trx, user, by, 'demote');
        // Disabling again keeps when it was first disabled.
        const disabledAt =
          changes.disabled === undefined ? user.disabledAt : changes.disabled ? (user.disabledAt ?? new Date()) : null;
        return trx
          .updateTable('users')
          .set({ disabledAt, ...(changes.role !== undefined ? { role: changes.role } : {}) })
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
      });
    },

    /**
     * Removes a user, as the administrator `by` (the same guards as disabling): marked removed, their tokens revoked and
     * sessions ended at once. The row stays, for the gitspaces, events and operations that name them.
     */
    async removeUser(id: string, by: string): Promise<UserRow> {
      return db.transaction().execute(async (trx) => {
        const user = await lockUser(trx, id);
        await guardAdmins(trx, user, by, 'remove');
        await trx.deleteFrom('apiTokens').where('userId', '=', id).execute();
        await trx.deleteFrom('sessions').where('userId', '=', id).execute();
        return trx
          .updateTable('users')
          .set({ deletedAt: new Date() })
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
      });
    },
  };
}

/** Locks a user who is not removed (NotFoundError otherwise) until the transaction ends. */
async function lockUser(trx: Transaction<Database>, id: string): Promise<UserRow> {
  const row = await trx
    .selectFrom('users')
    .selectAll()
    .where('id', '=', id)
    .where('deletedAt', 'is', null)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw new NotFoundError('user', id);
  return row;
}

/**
 * Refuses (ConflictError) to let an administrator disable, demote or remove themselves, or anyone take away the last
 * active administrator. The active administrators are locked: two administrators demoting each other at once cannot
 * both pass.
 */
async function guardAdmins(
  trx: Transaction<Database>,
  user: UserRow,
  by: string,
  verb: 'disable' | 'demote' | 'remove',
): Promise<void> {
  if (user.id === by) throw new ConflictError(`you cannot ${verb} yourself; another administrator can`);
  if (user.role !== 'admin') return;
  const admins = await trx
    .selectFrom('users')
    .select('id')
    .where('role', '=', 'admin')
    .where(activeUser)
    .forUpdate()
    .execute();
  if (admins.length === 1 && admins[0]!.id === user.id) {
    throw new ConflictError(
      `'${user.name}' is the last active administrator; make another user an administrator before you ${verb} them`,
    );
  }
}
