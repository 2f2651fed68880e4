import type { Db } from '../connect';
import type { UserRow } from '../schema';
import { createTokenWithinQuota } from './tokens';
import { activeUser } from './users';

/** A one-time code the consent page gave a command line (`gitspaces login --web`), as it is written. */
export interface NewCliAuthorization {
  /** SHA-256 of the code: the code itself is never stored. */
  codeHash: string;
  userId: string;
  /** The PKCE S256 challenge the command line sent; the verifier it sends with the code must match it. */
  challenge: string;
  redirectUri: string;
  clientName: string;
  expiresAt: Date;
}

/** What exchanging a code for an API token came to. */
export type CliCodeRedemption =
  | { outcome: 'issued'; token: string; tokenId: string; user: UserRow }
  /**
   * `replayed`: the code was exchanged before (the token issued then is revoked now); `unknown`, `expired`,
   * `mismatch` (another verifier or redirect), `inactive` (the user was disabled or removed since).
   */
  | { outcome: 'refused'; reason: 'unknown' | 'replayed' | 'expired' | 'mismatch' | 'inactive' };

/** Used codes are kept this long after they expire, so a replay still finds (and revokes) the token they gave. */
export const KEEP_EXPIRED_MS = 24 * 3600_000;

/** The one-time codes of `gitspaces login --web` (api/auth/cli-login.ts): each exchanged at most once. */
export function createCliAuthorizationStore(db: Db) {
  return {
    /** Old codes are deleted by the pruning schedule (db/stores/pruning.ts), KEEP_EXPIRED_MS after they expire. */
    async createCliAuthorization(authorization: NewCliAuthorization): Promise<void> {
      await db.insertInto('cliAuthorizations').values(authorization).execute();
    },

    /**
     * Exchanges a code for a new API token named `tokenName`, once. Every check runs under the code's row lock, and the
     * token is created in the same transaction, so two exchanges of one code cannot both succeed, and a replay always
     * finds the token to revoke.
     */
    async redeemCliAuthorization(exchange: {
      codeHash: string;
      challenge: string;
      redirectUri: string;
      now: Date;
      tokenName(clientName: string): string;
    }): Promise<CliCodeRedemption> {
      return db.transaction().execute(async (trx): Promise<CliCodeRedemption> => {
        const row = await trx
          .selectFrom('cliAuthorizations')
          .selectAll()
          .where('codeHash', '=', exchange.codeHash)
          .forUpdate()
          .executeTakeFirst();
        const refused = (reason: Extract<CliCodeRedemption, { outcome: 'refused' }>['reason']) =>
          ({ outcome: 'refused', reason }) as const;
        if (!row) return refused('unknown');
        if (row.usedAt) {
          if (row.tokenId) await trx.deleteFrom('apiTokens').where('id', '=', row.tokenId).execute();
          return refused('replayed');
        }
        if (row.expiresAt.getTime() <= exchange.now.getTime()) return refused('expired');
        if (row.challenge !== exchange.challenge || row.redirectUri !== exchange.redirectUri)
          return refused('mismatch');
        const user = await trx
          .selectFrom('users')
          .selectAll()
          .where('id', '=', row.userId)
          .where((eb) => activeUser(eb))
          .executeTakeFirst();
        if (!user) return refused('inactive');
        const created = await createTokenWithinQuota(trx, row.userId, exchange.tokenName(row.clientName));
        await trx
          .updateTable('cliAuthorizations')
          .set({ usedAt: exchange.now, tokenId: created.id })
          .where('codeHash', '=', row.codeHash)
          .execute();
        return { outcome: 'issued', token: created.token, tokenId: created.id, user };
      });
    },
  };
}
