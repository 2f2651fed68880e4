import type { Transaction } from 'kysely';
import { ConflictError, NotFoundError } from '../../common/errors';
import type { MachineSpec } from '../../contracts/provider';
import type { Db } from '../connect';
import type { Database, MachineRow } from '../schema';
import { refuseWhileWarmPoolHolds } from './warm-pool';

/** What of a machine an administrator may change after creating it (not its name, which is part of its id). */
export type MachineChanges = Partial<
  Pick<MachineRow, 'machineType' | 'diskSizeGb' | 'region' | 'zone' | 'image' | 'warmPoolSize'>
>;

/** A machine row's specification, as providers take it and validate it. */
export function machineSpecOf(
  machine: Pick<MachineRow, 'machineType' | 'diskSizeGb' | 'region' | 'zone' | 'image'>,
): MachineSpec {
  return {
    machineType: machine.machineType,
    diskSizeGb: machine.diskSizeGb,
    ...(machine.region ? { region: machine.region } : {}),
    ...(machine.zone ? { zone: machine.zone } : {}),
    ...(machine.image ? { image: machine.image } : {}),
  };
}

/** A new machine shape: no warm pool unless given one. */
export type NewMachine = Omit<
  MachineRow,
  'createdAt' | 'deletedAt' | 'warmPoolSize' | 'warmPoolFailures' | 'warmPoolRetryAt'
> & { warmPoolSize?: number };

/**
 * Machines: the named machine specifications (type, disk, placement) an infrastructure offers its gitspaces. A removed
 * one whose deleted gitspaces still name it stays as their history (`deletedAt` set) and is invisible to every read
 * here.
 */
export function createMachineStore(db: Db) {
  return {
    async createMachine(values: NewMachine): Promise<MachineRow> {
      const existing = await db
        .selectFrom('machines')
        .select(['id', 'deletedAt'])
        .where('id', '=', values.id)
        .executeTakeFirst();
      if (existing)
        throw new ConflictError(
          existing.deletedAt
            ? `a machine named '${values.name}' was removed from infrastructure '${values.infrastructureId}', and the records of its deleted gitspaces still name it; choose another name`
            : `infrastructure '${values.infrastructureId}' already has a machine named '${values.name}'`,
        );
      return db.insertInto('machines').values(values).returningAll().executeTakeFirstOrThrow();
    },

    async listMachines(infrastructureId: string): Promise<MachineRow[]> {
      return db
        .selectFrom('machines')
        .selectAll()
        .where('infrastructureId', '=', infrastructureId)
        .where('deletedAt', 'is', null)
        .orderBy('createdAt')
        .orderBy('id')
        .execute();
    },

    async getMachine(id: string): Promise<MachineRow> {
      const row = await db
        .selectFrom('machines')
        .selectAll()
        .where('id', '=', id)
        .where('deletedAt', 'is', null)
        .executeTakeFirst();
      if (!row) throw new NotFoundError('machine', id);
      return row;
    },

    /** Changes a machine's specification: a gitspace's machine is made from it when created, so existing ones keep theirs. */
    async updateMachine(id: string, changes: MachineChanges): Promise<MachineRow> {
      const row = await db
        .updateTable('machines')
        .set(changes)
        .where('id', '=', id)
        .where('deletedAt', 'is', null)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw new NotFoundError('machine', id);
      return row;
    },

    /**
     * Removes a machine no gitspace uses (ConflictError naming those that do). Deleted gitspaces do not use it, but
     * their records name it: then the row stays as their history, marked removed.
     */
    async deleteMachine(id: string): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await lockMachine(trx, id);
        const users = await trx
          .selectFrom('gitspaces')
          .select(['id', 'name', 'state'])
          .where('machineId', '=', id)
          .where('state', '<>', 'deleted')
          .orderBy('createdAt')
          .execute();
        if (users.length > 0) {
          const named = users
            .slice(0, 5)
            .map((g) => `'${g.name}' (${g.id}, ${g.state})`)
            .join(', ');
          const more = users.length > 5 ? ` and ${users.length - 5} more` : '';
          throw new ConflictError(
            `machine '${id}' is used by ${users.length} gitspace(s) that are not deleted: ${named}${more}; delete them first`,
          );
        }
        await refuseWhileWarmPoolHolds(trx, 'machineId', id, `machine '${id}'`);
        const history = await trx.selectFrom('gitspaces').select('id').where('machineId', '=', id).executeTakeFirst();
        if (history) {
          await trx.updateTable('machines').set({ deletedAt: new Date() }).where('id', '=', id).execute();
          return;
        }
        await trx.deleteFrom('machines').where('id', '=', id).execute();
      });
    },
  };
}

/** Locks a machine that is not removed (NotFoundError otherwise) until the transaction ends. */
async function lockMachine(trx: Transaction<Database>, id: string): Promise<void> {
  const row = await trx
    .selectFrom('machines')
    .select('id')
    .where('id', '=', id)
    .where('deletedAt', 'is', null)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw new NotFoundError('machine', id);
}
