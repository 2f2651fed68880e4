import { sql, type Transaction } from 'kysely';
import { ConflictError, NotFoundError } from '../../common/errors';
import { refuseWhileWarmPoolHolds } from './warm-pool';
import type { Db } from '../connect';
import type { Database, InfrastructureRow } from '../schema';
import { conflictOnDuplicate } from './duplicate-key';

/** The auto-stop policy columns (migration 0013): left out on create, the database's defaults apply. */
type AutoStopColumn = 'autoStopIdleSeconds' | 'autoStopMaxLifetimeSeconds';

/**
 * Infrastructures: a removed one whose deleted gitspaces still name it stays as their history (`deletedAt` set) and
 * is invisible to every read here.
 */
export function createInfrastructureStore(db: Db) {
  return {
    async createInfrastructure(
      values: Omit<InfrastructureRow, 'createdAt' | 'updatedAt' | 'runnerPublicKeys' | 'deletedAt' | AutoStopColumn> &
        Partial<Pick<InfrastructureRow, AutoStopColumn>> & { runnerPublicKeys?: string[] },
    ): Promise<InfrastructureRow> {
      return db
        .insertInto('infrastructures')
        .values({ ...values, runnerPublicKeys: JSON.stringify(values.runnerPublicKeys ?? []) })
        .returningAll()
        .executeTakeFirstOrThrow()
        .catch(async (error: unknown) => {
          const retired = await db
            .selectFrom('infrastructures')
            .select('id')
            .where('id', '=', values.id)
            .where('deletedAt', 'is not', null)
            .executeTakeFirst()
            .catch(() => undefined);
          return conflictOnDuplicate(
            retired
              ? `an infrastructure named '${values.name}' was removed, and the records of its deleted gitspaces still name it; choose another name`
              : `an infrastructure named '${values.name}' already exists`,
          )(error);
        });
    },

    async listInfrastructures(): Promise<InfrastructureRow[]> {
      return db
        .selectFrom('infrastructures')
        .selectAll()
        .where('deletedAt', 'is', null)
        .orderBy('createdAt')
        .orderBy('id')
        .execute();
    },

    async getInfrastructure(id: string): Promise<InfrastructureRow> {
      const row = await db
        .selectFrom('infrastructures')
        .selectAll()
        .where('id', '=', id)
        .where('deletedAt', 'is', null)
        .executeTakeFirst();
      if (!row) throw new NotFoundError('infrastructure', id);
      return row;
    },

    async updateInfrastructure(
      id: string,
      patch: Partial<Pick<InfrastructureRow, 'config' | 'gatewayUrl' | 'runnerPublicKeys' | AutoStopColumn>>,
    ): Promise<InfrastructureRow> {
      const { runnerPublicKeys, ...rest } = patch;
      const row = await db
        .updateTable('infrastructures')
        .set({
          ...rest,
          ...(runnerPublicKeys ? { runnerPublicKeys: JSON.stringify(runnerPublicKeys) } : {}),
          updatedAt: new Date(),
        })
        .where('id', '=', id)
        .where('deletedAt', 'is', null)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw new NotFoundError('infrastructure', id);
      return row;
    },

    /**
     * How many live gitspaces hold a sealed token, by infrastructure and by the runner key it is sealed to (`legacy`
     * for tokens sealed by earlier versions): an operator retires a runner key when its count is 0. All infrastructures,
     * or only the one named.
     */
    async countSealedTokens(infrastructureId?: string): Promise<Map<string, Record<string, number>>> {
      const keyId = sql<string>`case when repository_token_sealed like 'sealed:v2:%' then split_part(repository_token_sealed, ':', 3) else 'legacy' end`;
      const rows = await db
        .selectFrom('gitspaces')
        .select(['infrastructureId', keyId.as('keyId'), db.fn.countAll<string>().as('count')])
        .where('repositoryTokenSealed', 'is not', null)
        .where('state', '<>', 'deleted')
        .$if(infrastructureId !== undefined, (q) => q.where('infrastructureId', '=', infrastructureId!))
        .groupBy(['infrastructureId', keyId])
        .execute();
      const counts = new Map<string, Record<string, number>>();
      for (const row of rows) {
        counts.set(row.infrastructureId, { ...counts.get(row.infrastructureId), [row.keyId]: Number(row.count) });
      }
      return counts;
    },

    async deleteInfrastructure(id: string): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await lockInfrastructure(trx, id);
        const inUse = await trx
          .selectFrom('gitspaces')
          .select(['id', 'name'])
          .where('infrastructureId', '=', id)
          .where('state', '<>', 'deleted')
          .execute();
        if (inUse.length > 0) {
          const names = inUse
            .slice(0, 5)
            .map((g) => `'${g.name}'`)
            .join(', ');
          throw new ConflictError(
            `infrastructure '${id}' is used by ${inUse.length} gitspace(s) (${names}); delete them first`,
          );
        }
        await refuseWhileWarmPoolHolds(trx, 'infrastructureId', id, `infrastructure '${id}'`);
        // Deleted gitspaces keep their records and events, so their infrastructure row stays as history too.
        const history = await trx
          .selectFrom('gitspaces')
          .select('id')
          .where('infrastructureId', '=', id)
          .executeTakeFirst();
        if (history) {
          // Their records and events stay readable and name it: the row stays as their history, marked removed.
          await trx
            .updateTable('infrastructures')
            .set({ deletedAt: new Date(), updatedAt: new Date() })
            .where('id', '=', id)
            .execute();
          return;
        }
        await trx.deleteFrom('infrastructures').where('id', '=', id).execute();
      });
    },
  };
}

export async function lockInfrastructure(trx: Transaction<Database>, id: string): Promise<void> {
  const row = await trx
    .selectFrom('infrastructures')
    .select('id')
    .where('id', '=', id)
    .where('deletedAt', 'is', null)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw new NotFoundError('infrastructure', id);
}
