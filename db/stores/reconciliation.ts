import { sql } from 'kysely';
import type { Actor } from '../../contracts/lifecycle';
import type { Db } from '../connect';
import type { ReconcileOutcome } from '../schema';
import { appendEvent, lockGitspace } from './events';

/** What the reconciler keeps between runs: orphan machines it has seen, and what each run did. */
export function createReconciliationStore(db: Db) {
  return {
    /**
     * Remembers when each machine of an unknown gitspace was first seen on the infrastructure and forgets the ones
     * no longer there; returns the first-seen time of each given gitspace id.
     */
    async trackOrphanMachines(
      infrastructureId: string,
      gitspaceIds: string[],
      seenAt: Date,
    ): Promise<Map<string, Date>> {
      return db.transaction().execute(async (trx) => {
        let stale = trx.deleteFrom('orphanMachines').where('infrastructureId', '=', infrastructureId);
        if (gitspaceIds.length > 0) stale = stale.where('gitspaceId', 'not in', gitspaceIds);
        await stale.execute();
        if (gitspaceIds.length === 0) return new Map();
        await trx
          .insertInto('orphanMachines')
          .values(gitspaceIds.map((gitspaceId) => ({ infrastructureId, gitspaceId, firstSeenAt: seenAt })))
          .onConflict((oc) => oc.columns(['infrastructureId', 'gitspaceId']).doNothing())
          .execute();
        const rows = await trx
          .selectFrom('orphanMachines')
          .select(['gitspaceId', 'firstSeenAt'])
          .where('infrastructureId', '=', infrastructureId)
          .execute();
        return new Map(rows.map((row) => [row.gitspaceId, new Date(row.firstSeenAt)]));
      });
    },

    /**
     * Records what one reconcile run did, once per run id: its events and its totals, in one transaction. Returns false
     * (and changes nothing) when that run was recorded already, as a retried activity would.
     */
    async recordReconcileRun(input: {
      runId: string;
      infrastructureId: string;
      counts: Partial<Record<ReconcileOutcome, number>>;
      events: { gitspaceId: string; message: string }[];
      /** Who ran it (the reconciler), named on its events. */
      actor: Actor;
      at: Date;
    }): Promise<boolean> {
      const { runId, infrastructureId, counts, events, actor, at } = input;
      return db.transaction().execute(async (trx) => {
        const fresh = await trx
          .insertInto('reconcileRuns')
          .values({ runId, infrastructureId, recordedAt: at })
          .onConflict((oc) => oc.column('runId').doNothing())
          .returning('runId')
          .executeTakeFirst();
        if (!fresh) return false;
        for (const { gitspaceId, message } of events) {
          await lockGitspace(trx, gitspaceId);
          await appendEvent(trx, gitspaceId, {
            type: 'reconcile',
            state: null,
            message,
            data: { infrastructureId },
            actor,
          });
        }
        const values = Object.entries(counts).map(([outcome, total]) => ({
          infrastructureId,
          outcome: outcome as ReconcileOutcome,
          total: total ?? 0,
          updatedAt: at,
        }));
        if (values.length > 0) {
          await trx
            .insertInto('reconcileTotals')
            .values(values)
            .onConflict((oc) =>
              oc.columns(['infrastructureId', 'outcome']).doUpdateSet((eb) => ({
                total: sql<number>`${eb.ref('reconcileTotals.total')} + ${eb.ref('excluded.total')}`,
                updatedAt: eb.ref('excluded.updatedAt'),
              })),
            )
            .execute();
        }
        return true;
      });
    },
  };
}
