import { ConflictError, NotFoundError } from '../../common/errors';
import type { Db } from '../connect';
import type { MachineRow } from '../schema';

/** Machines: the named machine specifications (type, disk, placement) an infrastructure offers its gitspaces. */
export function createMachineStore(db: Db) {
  return {
    async createMachine(values: Omit<MachineRow, 'createdAt'>): Promise<MachineRow> {
      const existing = await db.selectFrom('machines').select('id').where('id', '=', values.id).executeTakeFirst();
      if (existing)
        throw new ConflictError(
          `infrastructure '${values.infrastructureId}' already has a machine named '${values.name}'`,
        );
      return db.insertInto('machines').values(values).returningAll().executeTakeFirstOrThrow();
    },

    async listMachines(infrastructureId: string): Promise<MachineRow[]> {
      return db
        .selectFrom('machines')
        .selectAll()
        .where('infrastructureId', '=', infrastructureId)
        .orderBy('createdAt')
        .orderBy('id')
        .execute();
    },

    async getMachine(id: string): Promise<MachineRow> {
      const row = await db.selectFrom('machines').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw new NotFoundError('machine', id);
      return row;
    },
  };
}
