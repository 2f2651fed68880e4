import { sql, type Transaction } from 'kysely';
import { ConflictError } from '../../common/errors';
import { newId } from '../../common/ids';
import type { Db } from '../connect';
import type { Database, MachineRow, WarmMachineRow } from '../schema';
import { lockInfrastructure } from './infrastructures';

/** After a pooled machine failed: 30 s, doubling with every failure in a row, at most an hour. */
export function warmPoolBackoffMs(failures: number): number {
  return Math.min(30_000 * 2 ** Math.max(0, failures - 1), 3600_000);
}

/** What one run of the pool's maintenance does: make these machines, delete those. */
export interface WarmPoolPlan {
  prepare: { key: string; machine: MachineRow }[];
  retire: string[];
}

/** How many pooled machines of a shape are ready, and how many are being made. */
export interface WarmPoolCount {
  ready: number;
  preparing: number;
}

/**
 * Warm pools (workflows/warm-pool.ts): per machine shape, stopped machines made ahead that a gitspace's first start
 * claims. A row exists for every pooled machine from before it is made until it is deleted (or adopted and retired),
 * which is what keeps one from leaking: reconciliation leaves the machines named here alone, and treats any other
 * warm key's machine as the orphan it is.
 */
export function createWarmPoolStore(db: Db) {
  return {
    /**
     * The next maintenance of an infrastructure's pools, under its row's lock (two runs never both fill a pool):
     * preparing rows older than `staleAfterMs` (their run died) and claims whose start is over retire; ready machines
     * beyond a shape's size, or of a shape no longer offered, retire; a shape short of its size gets new rows unless
     * it is backing off. Returns the rows to make and every key to delete.
     */
    async planWarmPool(infrastructureId: string, now: Date, staleAfterMs: number): Promise<WarmPoolPlan> {
      return db.transaction().execute(async (trx) => {
        await lockInfrastructure(trx, infrastructureId);
        const retiring = () =>
          trx
            .updateTable('warmMachines')
            .set({ state: 'retiring', updatedAt: now })
            .where('infrastructureId', '=', infrastructureId);
        await retiring()
          .where('state', '=', 'preparing')
          .where('updatedAt', '<', new Date(+now - staleAfterMs))
          .execute();
        // A claim lasts while its start runs: after it, the machine is the gitspace's (deleting the warm key then finds
        // nothing) or was never adopted (and goes).
        await retiring()
          .where('state', '=', 'claimed')
          .where((eb) =>
            eb.or([
              eb('claimedBy', 'is', null),
              eb.not(
                eb.exists(
                  eb
                    .selectFrom('gitspaces')
                    .select('gitspaces.id')
                    .whereRef('gitspaces.id', '=', 'warmMachines.claimedBy')
                    .where('gitspaces.state', '=', 'starting'),
                ),
              ),
            ]),
          )
          .execute();
        const shapes = await trx
          .selectFrom('machines')
          .selectAll()
          .where('infrastructureId', '=', infrastructureId)
          .where('deletedAt', 'is', null)
          .execute();
        const pooled = await trx
          .selectFrom('warmMachines')
          .select(['key', 'machineId', 'state'])
          .where('infrastructureId', '=', infrastructureId)
          .where('state', 'in', ['preparing', 'ready'])
          .orderBy('updatedAt', 'desc')
          .orderBy('key')
          .execute();
        const surplus: string[] = [];
        const prepare: WarmPoolPlan['prepare'] = [];
        for (const shape of shapes) {
          const mine = pooled.filter((row) => row.machineId === shape.id);
          const ready = mine.filter((row) => row.state === 'ready');
          // A machine still being made is not cut short: it is surplus at the next run if still too many.
          surplus.push(...ready.slice(0, Math.max(0, mine.length - shape.warmPoolSize)).map((row) => row.key));
          const backingOff = shape.warmPoolRetryAt !== null && shape.warmPoolRetryAt > now;
          for (let n = mine.length; n < shape.warmPoolSize && !backingOff; n++) {
            prepare.push({ key: newId('warm'), machine: shape });
          }
        }
        const offered = new Set(shapes.map((shape) => shape.id));
        surplus.push(...pooled.filter((row) => row.state === 'ready' && !offered.has(row.machineId)).map((r) => r.key));
        if (surplus.length > 0) await retiring().where('key', 'in', surplus).execute();
        if (prepare.length > 0) {
          await trx
            .insertInto('warmMachines')
            .values(
              prepare.map(({ key, machine }) => ({
                key,
                infrastructureId,
                machineId: machine.id,
                state: 'preparing' as const,
                claimedBy: null,
                updatedAt: now,
              })),
            )
            .execute();
        }
        const retired = await trx
          .selectFrom('warmMachines')
          .select('key')
          .where('infrastructureId', '=', infrastructureId)
          .where('state', '=', 'retiring')
          .orderBy('key')
          .execute();
        return { prepare, retire: retired.map((row) => row.key) };
      });
    },

    /** A pooled machine made, checked and stopped: ready to claim, and its shape's backoff is over. */
    async warmMachineReady(key: string, now: Date): Promise<boolean> {
      const row = await db
        .updateTable('warmMachines')
        .set({ state: 'ready', updatedAt: now })
        .where('key', '=', key)
        .where('state', '=', 'preparing')
        .returning('machineId')
        .executeTakeFirst();
      if (!row) return false;
      await db
        .updateTable('machines')
        .set({ warmPoolFailures: 0, warmPoolRetryAt: null })
        .where('id', '=', row.machineId)
        .execute();
      return true;
    },

    /** A pooled machine that could not be made: it retires, and its shape backs off before the pool tries again. */
    async warmMachineFailed(key: string, now: Date): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('warmMachines')
          .set({ state: 'retiring', updatedAt: now })
          .where('key', '=', key)
          .returning('machineId')
          .executeTakeFirst();
        if (!row) return;
        const shape = await trx
          .updateTable('machines')
          .set((eb) => ({ warmPoolFailures: eb('warmPoolFailures', '+', 1) }))
          .where('id', '=', row.machineId)
          .returning('warmPoolFailures')
          .executeTakeFirstOrThrow();
        await trx
          .updateTable('machines')
          .set({ warmPoolRetryAt: new Date(+now + warmPoolBackoffMs(shape.warmPoolFailures)) })
          .where('id', '=', row.machineId)
          .execute();
      });
    },

    /** A retired machine is deleted: the pool forgets it. */
    async forgetWarmMachine(key: string): Promise<void> {
      await db.deleteFrom('warmMachines').where('key', '=', key).where('state', '=', 'retiring').execute();
    },

    /**
     * Claims a ready machine of the shape for the gitspace's start, or returns the claim it already holds (a retried
     * activity, a start retried after a failure), or null: none is ready, or the gitspace ran before, so it has a
     * machine of its own (a start that failed after making one, its record pruned, may still claim one: its runner
     * then keeps the gitspace's own, and the claim retires with its start).
     */
    async claimWarmMachine(gitspaceId: string, machineId: string, now: Date): Promise<string | null> {
      return db.transaction().execute(async (trx) => {
        const held = await trx
          .selectFrom('warmMachines')
          .select('key')
          .where('claimedBy', '=', gitspaceId)
          .where('state', '=', 'claimed')
          .executeTakeFirst();
        if (held) return held.key;
        const ranBefore = await trx
          .selectFrom('operations')
          .select('id')
          .where('gitspaceId', '=', gitspaceId)
          .where('action', '=', 'start')
          .where('status', '=', 'succeeded')
          .executeTakeFirst();
        if (ranBefore) return null;
        const claimed = await trx
          .updateTable('warmMachines')
          .set({ state: 'claimed', claimedBy: gitspaceId, updatedAt: now })
          .where(
            'key',
            '=',
            // Concurrent starts each take another machine instead of waiting for one another's row lock.
            trx
              .selectFrom('warmMachines')
              .select('key')
              .where('machineId', '=', machineId)
              .where('state', '=', 'ready')
              .orderBy('updatedAt')
              .limit(1)
              .forUpdate()
              .skipLocked(),
          )
          .returning('key')
          .executeTakeFirst();
        return claimed?.key ?? null;
      });
    },

    /** The infrastructures with a pool: a shape with a size, or pooled machines still there to delete. */
    async infrastructuresWithWarmPools(): Promise<Set<string>> {
      const rows = await db
        .selectFrom('machines')
        .select('infrastructureId')
        .where('warmPoolSize', '>', 0)
        .where('deletedAt', 'is', null)
        .union(db.selectFrom('warmMachines').select('infrastructureId'))
        .execute();
      return new Set(rows.map((row) => row.infrastructureId));
    },

    /** Every pooled machine of an infrastructure, whatever its state: reconciliation leaves these alone. */
    async listWarmMachines(infrastructureId: string): Promise<WarmMachineRow[]> {
      return db.selectFrom('warmMachines').selectAll().where('infrastructureId', '=', infrastructureId).execute();
    },

    /** The ready and preparing machines of each given shape. */
    async countWarmMachines(machineIds: string[]): Promise<Map<string, WarmPoolCount>> {
      const counts = new Map(machineIds.map((id) => [id, { ready: 0, preparing: 0 }]));
      if (machineIds.length === 0) return counts;
      const rows = await db
        .selectFrom('warmMachines')
        .select(['machineId', 'state', sql<number>`count(*)::int`.as('total')])
        .where('machineId', 'in', machineIds)
        .where('state', 'in', ['ready', 'preparing'])
        .groupBy(['machineId', 'state'])
        .execute();
      for (const row of rows) counts.get(row.machineId)![row.state as keyof WarmPoolCount] = row.total;
      return counts;
    },
  };
}

/**
 * Refuses to remove a machine shape or an infrastructure while its pool still holds machines: they would be lost track
 * of (reconciliation of a removed infrastructure stops), so the pool must delete them first.
 */
export async function refuseWhileWarmPoolHolds(
  trx: Transaction<Database>,
  column: 'machineId' | 'infrastructureId',
  id: string,
  what: string,
): Promise<void> {
  const held = await trx
    .selectFrom('warmMachines')
    .select(sql<number>`count(*)::int`.as('total'))
    .where(column, '=', id)
    .executeTakeFirstOrThrow();
  if (held.total > 0) {
    throw new ConflictError(
      `${what} still has ${held.total} machine(s) in a warm pool; set warmPoolSize to 0 and remove it once the pool has deleted them`,
    );
  }
}
