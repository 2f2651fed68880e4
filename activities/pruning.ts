import type { Logger } from '../common/logger';
import type { Store } from '../db/store';
import { KEEP_EXPIRED_MS } from '../db/stores/cli-authorizations';
import type { PrunableRecord } from '../db/stores/pruning';

/** How long records are kept once they are done with, in days. */
export interface Retention {
  /** Finished operations (GITSPACES_OPERATION_RETENTION_DAYS); each gitspace's latest ones are always kept. */
  operationDays: number;
  /** Idempotency keys of POST /gitspaces (GITSPACES_IDEMPOTENCY_KEY_RETENTION_DAYS): how long a retry is recognised. */
  idempotencyKeyDays: number;
  /** The reconcile runs already counted (GITSPACES_RECONCILE_RUN_RETENTION_DAYS). */
  reconcileRunDays: number;
}

export const DEFAULT_RETENTION: Retention = { operationDays: 30, idempotencyKeyDays: 1, reconcileRunDays: 7 };

/** How many records one pruning statement deletes at most. */
export const PRUNE_BATCH_SIZE = 500;

export interface PruningActivityDeps {
  store: Store;
  logger: Logger;
  /** DEFAULT_RETENTION where absent. */
  retention?: Partial<Retention>;
}

const DAY_MS = 24 * 3600_000;

/** The pruning of old records (workflows/prune.ts), on the control-plane queue beside the database. */
export function createPruningActivities({ store, logger, retention: given }: PruningActivityDeps) {
  const retention = { ...DEFAULT_RETENTION, ...given };
  /** Records of each kind older than this are pruned. */
  const cutoff = (kind: PrunableRecord, now: number): Date => {
    switch (kind) {
      case 'operations':
        return new Date(now - retention.operationDays * DAY_MS);
      case 'idempotencyKeys':
        return new Date(now - retention.idempotencyKeyDays * DAY_MS);
      case 'reconcileRuns':
        return new Date(now - retention.reconcileRunDays * DAY_MS);
      case 'cliAuthorizations':
        return new Date(now - KEEP_EXPIRED_MS);
      case 'sessions':
        return new Date(now);
    }
  };
  return {
    /** Deletes one batch of old records of a kind; `more` when the batch was full (there may be more to delete). */
    async pruneBatch(input: { kind: PrunableRecord }): Promise<{ deleted: number; more: boolean }> {
      const deleted = await store.pruneRecords(input.kind, cutoff(input.kind, Date.now()), PRUNE_BATCH_SIZE);
      if (deleted > 0) logger.info('pruned old records', { kind: input.kind, deleted });
      return { deleted, more: deleted === PRUNE_BATCH_SIZE };
    },
  };
}

export type PruningActivities = ReturnType<typeof createPruningActivities>;
