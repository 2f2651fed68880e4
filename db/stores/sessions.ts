import type { Db } from '../connect';
import type { SessionRow, UserRow } from '../schema';
import { activeUser } from './users';

/** A session as it is written: the cookie's hash, never the cookie; `apiTokenId` only when made from a token. */
export type NewSession = Omit<SessionRow, 'createdAt' | 'apiTokenId'> & Partial<Pick<SessionRow, 'apiTokenId'>>;

/** A session with its user, and whether that user may act (db/stores/users.ts activeUser). */
export interface FoundSession {
  session: SessionRow;
  user: UserRow & { active: boolean };
}

/**
 * Dashboard sessions (api/auth/sessions.ts decides what they mean): written at sign-in, found by the hash of their
 * cookie on every request, and removed at sign-out or once ended.
 */
export function createSessionStore(db: Db) {
  return {
    async createSession(session: NewSession): Promise<void> {
      await db.insertInto('sessions').values(session).execute();
    },

    async findSession(idHash: string): Promise<FoundSession | undefined> {
      const row = await db
        .selectFrom('sessions')
        .innerJoin('users', 'users.id', 'sessions.userId')
        .selectAll('users')
        .select((eb) => activeUser(eb).$castTo<boolean>().as('active'))
        .select([
          'sessions.idHash',
          'sessions.csrfToken',
          'sessions.createdAt as sessionCreatedAt',
          'sessions.expiresAt',
          'sessions.lastSeenAt',
          'sessions.issuer',
          'sessions.refreshTokenSealed',
          'sessions.checkedAt',
          'sessions.apiTokenId',
        ])
        .where('sessions.idHash', '=', idHash)
        .executeTakeFirst();
      if (!row) return undefined;
      const {
        idHash: _idHash,
        csrfToken,
        sessionCreatedAt,
        expiresAt,
        lastSeenAt,
        issuer,
        refreshTokenSealed,
        checkedAt,
        apiTokenId,
        ...user
      } = row;
      return {
        session: {
          idHash,
          userId: user.id,
          csrfToken,
          createdAt: sessionCreatedAt,
          expiresAt,
          lastSeenAt,
          issuer,
          refreshTokenSealed,
          checkedAt,
          apiTokenId,
        },
        user,
      };
    },

    /** Moves the idle end: the session was used at `at`. */
    async touchSession(idHash: string, at: Date): Promise<void> {
      await db.updateTable('sessions').set({ lastSeenAt: at }).where('idHash', '=', idHash).execute();
    },

    /**
     * Takes the provider check of a session due since `previous`: true for the one caller (of any API replica) whose
     * update found it still due, so a rotating refresh token is never used twice.
     */
    async claimSessionCheck(idHash: string, previous: Date | null, at: Date): Promise<boolean> {
      const result = await db
        .updateTable('sessions')
        .set({ checkedAt: at })
        .where('idHash', '=', idHash)
        .where((eb) => (previous ? eb('checkedAt', '=', previous) : eb('checkedAt', 'is', null)))
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    },

    /** What a provider check left: when it was made, and the refresh token to use next (rotated or not). */
    async recordSessionCheck(
      idHash: string,
      check: { checkedAt: Date | null; refreshTokenSealed?: string | null },
    ): Promise<void> {
      await db.updateTable('sessions').set(check).where('idHash', '=', idHash).execute();
    },

    async deleteSession(idHash: string): Promise<void> {
      await db.deleteFrom('sessions').where('idHash', '=', idHash).execute();
    },

    /** Signs a user out everywhere (disabled, removed, or at their own request). */
    async deleteSessionsOfUser(userId: string): Promise<void> {
      await db.deleteFrom('sessions').where('userId', '=', userId).execute();
    },

    /** Removes the sessions past their absolute end or idle since `idleSince`. */
    async deleteEndedSessions(now: Date, idleSince: Date): Promise<void> {
      await db
        .deleteFrom('sessions')
        .where((eb) => eb.or([eb('expiresAt', '<=', now), eb('lastSeenAt', '<=', idleSince)]))
        .execute();
    },
  };
}
