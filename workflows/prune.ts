/**
 * Pruning: deletes the records that would otherwise grow without end (old finished operations, idempotency keys,
 * counted reconcile runs, expired CLI codes and sessions), a batch per activity so no statement runs long. Run by a
 * Temporal Schedule on the control-plane queue (api/schedules.ts); what is old is the retention the control plane
 * was configured with (activities/pruning.ts).
 */
import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { PruningActivities } from '../activities/pruning';
import type { PrunableRecord } from '../db/stores/pruning';
import { CONTROL_PLANE_TASK_QUEUE } from '../contracts/lifecycle';

/** Batches per kind and run at most, so one run's history stays short; the next run deletes what is left. */
export const MAX_BATCHES_PER_RUN = 20;

/** Every kind pruned, with how a person names it. */
const RECORDS: Record<PrunableRecord, string> = {
  operations: 'finished operations',
  idempotencyKeys: 'idempotency keys',
  reconcileRuns: 'reconcile runs',
  cliAuthorizations: 'CLI login codes',
  sessions: 'sessions',
};

const controlPlane = proxyActivities<PruningActivities>({
  taskQueue: CONTROL_PLANE_TASK_QUEUE,
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 5 },
});

/** How many records of each kind the run deleted. */
export type PruneResult = Record<PrunableRecord, number>;

export async function pruneRecords(): Promise<PruneResult> {
  const result = {} as PruneResult;
  for (const kind of Object.keys(RECORDS) as PrunableRecord[]) {
    result[kind] = 0;
    for (let batch = 0; batch < MAX_BATCHES_PER_RUN; batch++) {
      const { deleted, more } = await controlPlane.pruneBatch({ kind });
      result[kind] += deleted;
      if (!more) break;
    }
  }
  setCurrentDetails(
    `deleted ${(Object.keys(RECORDS) as PrunableRecord[]).map((kind) => `${result[kind]} ${RECORDS[kind]}`).join(', ')}`,
  );
  return result;
}
