import { NotFoundError, QuotaReachedError } from '../../common/errors';
import { newId } from '../../common/ids';
import type { Db } from '../connect';
import type { SshKeyRow } from '../schema';
import { conflictOnDuplicate } from './duplicate-key';

/** Users' SSH public keys: what an ssh access token names (by fingerprint) and the gitspace's agent admits. */
export function createSshKeyStore(db: Db) {
  return {
    /**
     * Registers a key for a user: ConflictError when they have one with this fingerprint already, QuotaReachedError
     * when they hold `maxPerUser`. The count is taken under the user's row lock, as the gitspace quota is, so
     * concurrent adds cannot pass the limit together.
     */
    async addSshKey(
      key: { userId: string; name: string; publicKey: string; fingerprint: string },
      limits: { maxPerUser: number },
    ): Promise<SshKeyRow> {
      return db.transaction().execute(async (trx) => {
        const owner = await trx
          .selectFrom('users')
          .select(['id', 'name'])
          .where('id', '=', key.userId)
          .forUpdate()
          .executeTakeFirst();
        if (!owner) throw new NotFoundError('user', key.userId);
        const { count } = await trx
          .selectFrom('sshKeys')
          .select((eb) => eb.fn.countAll<string>().as('count'))
          .where('userId', '=', key.userId)
          .executeTakeFirstOrThrow();
        if (Number(count) >= limits.maxPerUser) {
          throw new QuotaReachedError(
            `quota reached: user '${owner.name}' has ${Number(count)} of ${limits.maxPerUser} SSH keys; remove one before adding another`,
          );
        }
        return trx
          .insertInto('sshKeys')
          .values({ id: newId('key'), ...key })
          .returningAll()
          .executeTakeFirstOrThrow()
          .catch(conflictOnDuplicate(`user '${owner.name}' has this SSH key (${key.fingerprint}) already`));
      });
    },

    /** A user's keys, oldest first. */
    async listSshKeys(userId: string): Promise<SshKeyRow[]> {
      return db
        .selectFrom('sshKeys')
        .selectAll()
        .where('userId', '=', userId)
        .orderBy('createdAt')
        .orderBy('id')
        .execute();
    },

    /** Removes one of a user's keys (NotFoundError when the user has no such key): the next connection is refused. */
    async removeSshKey(userId: string, keyId: string): Promise<void> {
      const result = await db
        .deleteFrom('sshKeys')
        .where('id', '=', keyId)
        .where('userId', '=', userId)
        .executeTakeFirst();
      if (Number(result.numDeletedRows) === 0) throw new NotFoundError('ssh-key', keyId);
    },

    /** The fingerprints of a user's keys, oldest first: what an ssh access token names. */
    async sshFingerprints(userId: string): Promise<string[]> {
      const rows = await db
        .selectFrom('sshKeys')
        .select('fingerprint')
        .where('userId', '=', userId)
        .orderBy('createdAt')
        .orderBy('id')
        .execute();
      return rows.map((row) => row.fingerprint);
    },
  };
}
