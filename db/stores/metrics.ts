import type { GitspaceState } from '../../contracts/lifecycle';
import type { Db } from '../connect';
import type { ReconcileOutcome } from '../schema';

/** The counts the control plane exports for monitoring. */
export function createMetricsStore(db: Db) {
  return {
    /** What GET /metrics reports: reconciliation totals, orphans awaiting their grace period, gitspaces by state. */
    async readMetrics(): Promise<{
      reconcileTotals: { infrastructureId: string; outcome: ReconcileOutcome; total: number; updatedAt: Date }[];
      orphanMachines: { infrastructureId: string; count: number }[];
      gitspaces: { infrastructureId: string; state: GitspaceState; count: number }[];
    }> {
      const [reconcileTotals, orphanMachines, gitspaces] = await Promise.all([
        db.selectFrom('reconcileTotals').selectAll().orderBy('infrastructureId').orderBy('outcome').execute(),
        db
          .selectFrom('orphanMachines')
          .select(['infrastructureId', (eb) => eb.fn.countAll<string>().as('count')])
          .groupBy('infrastructureId')
          .orderBy('infrastructureId')
          .execute(),
        db
          .selectFrom('gitspaces')
          .select(['infrastructureId', 'state', (eb) => eb.fn.countAll<string>().as('count')])
          .groupBy(['infrastructureId', 'state'])
          .orderBy('infrastructureId')
          .orderBy('state')
          .execute(),
      ]);
      return {
        reconcileTotals: reconcileTotals.map((row) => ({ ...row, total: Number(row.total) })),
        // count(*) is a bigint, which the drivers hand back as a string.
        orphanMachines: orphanMachines.map((row) => ({ ...row, count: Number(row.count) })),
        gitspaces: gitspaces.map((row) => ({ ...row, count: Number(row.count) })),
      };
    },
  };
}
