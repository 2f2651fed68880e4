import { sql } from 'kysely';
import { ConflictError } from '../../common/errors';
import { newId } from '../../common/ids';
import type { Db } from '../connect';
import type { UserRow } from '../schema';
import { conflictOnDuplicate } from './duplicate-key';
import { activeUser } from './users';

/** A user with whether they may act (db/stores/users.ts activeUser). */
export type UserWithStatus = UserRow & { active: boolean };

/**
 * Who a user is at an OpenID Connect provider: its issuer and subject, bound to one user at their first sign-in. The
 * e-mail only ever finds an invitation (an unbound user an administrator created with it), never a bound user: an
 * address can change hands at the provider, a subject cannot.
 */
export function createIdentityStore(db: Db) {
  return {
    async findUserByIdentity(issuer: string, subject: string): Promise<UserWithStatus | undefined> {
      return db
        .selectFrom('userIdentities')
        .innerJoin('users', 'users.id', 'userIdentities.userId')
        .selectAll('users')
        .select((eb) => activeUser(eb).$castTo<boolean>().as('active'))
        .where('userIdentities.issuer', '=', issuer)
        .where('userIdentities.subject', '=', subject)
        .executeTakeFirst();
    },

    /** The user invited with this e-mail (case aside) who has no identity at this issuer yet; the oldest if several. */
    async findInvitedUser(issuer: string, email: string): Promise<UserWithStatus | undefined> {
      return db
        .selectFrom('users')
        .selectAll('users')
        .select((eb) => activeUser(eb).$castTo<boolean>().as('active'))
        .where(sql<boolean>`lower(users.email) = lower(${email})`)
        .where('users.deletedAt', 'is', null)
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('userIdentities')
                .select('userIdentities.userId')
                .whereRef('userIdentities.userId', '=', 'users.id')
                .where('userIdentities.issuer', '=', issuer),
            ),
          ),
        )
        .orderBy('users.createdAt')
        .orderBy('users.id')
        .executeTakeFirst();
    },

    /**
     * Binds an identity to an invited user, unless another identity of this issuer got there first (ConflictError):
     * the user's row is locked, so two people with one invited address cannot both take it.
     */
    async bindIdentity(issuer: string, subject: string, userId: string): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await trx.selectFrom('users').select('id').where('id', '=', userId).forUpdate().executeTakeFirstOrThrow();
        const bound = await trx
          .selectFrom('userIdentities')
          .select('subject')
          .where('userId', '=', userId)
          .where('issuer', '=', issuer)
          .executeTakeFirst();
        if (bound) throw new ConflictError('this invitation was taken by another account of the identity provider');
        await trx
          .insertInto('userIdentities')
          .values({ issuer, subject, userId })
          .execute()
          .catch(conflictOnDuplicate('this identity is bound to another user'));
      });
    },

    /** A user created at their first sign-in (open sign-up), with their identity; ConflictError when the name is taken. */
    async createUserWithIdentity(user: {
      name: string;
      email: string | null;
      role: UserRow['role'];
      issuer: string;
      subject: string;
    }): Promise<UserWithStatus> {
      return db.transaction().execute(async (trx) => {
        const created = await trx
          .insertInto('users')
          .values({ id: newId('usr'), name: user.name, role: user.role, email: user.email })
          .returningAll()
          .executeTakeFirstOrThrow()
          .catch(conflictOnDuplicate(`a user named '${user.name}' already exists`));
        await trx
          .insertInto('userIdentities')
          .values({ issuer: user.issuer, subject: user.subject, userId: created.id })
          .execute()
          .catch(conflictOnDuplicate('this identity is bound to another user'));
        return { ...created, active: true };
      });
    },

    /** The role the provider's groups give the user at sign-in. */
    async setRoleFromProvider(userId: string, role: UserRow['role']): Promise<void> {
      await db.updateTable('users').set({ role }).where('id', '=', userId).execute();
    },
  };
}
