import { newId } from '../../common/ids';
import type { LifecycleAction, OperationStatus } from '../../contracts/lifecycle';
import type { Db } from '../connect';
import type { OperationRow } from '../schema';
import { notifyChange } from './events';
import { applyStateChange, type StateChange } from './gitspaces';

/** Lifecycle operations: one row per workflow run, with its status and current step. */
export function createOperationStore(db: Db) {
  return {
    /** Records an operation; recording the same workflow run twice keeps the first record. */
    async recordOperation(values: {
      gitspaceId: string;
      action: LifecycleAction;
      workflowId: string;
      runId: string;
    }): Promise<OperationRow> {
      return db.transaction().execute(async (trx) => {
        await trx
          .insertInto('operations')
          .values({ id: newId('op'), ...values, status: 'running', step: null, finishedAt: null })
          .onConflict((oc) => oc.column('runId').doNothing())
          .execute();
        await notifyChange(trx, values.gitspaceId);
        return trx.selectFrom('operations').selectAll().where('runId', '=', values.runId).executeTakeFirstOrThrow();
      });
    },

    async findOperation(runId: string): Promise<OperationRow | undefined> {
      return db.selectFrom('operations').selectAll().where('runId', '=', runId).executeTakeFirst();
    },

    /** Updates an operation; when this call ends a running one, returns what it was (for its duration). */
    /**
     * Updates the operation of a workflow run. `stateChange`, with a status: the gitspace's state change that goes with
     * it, in the same transaction, so no reader sees a gitspace `running` whose start is still running.
     */
    async updateOperation(
      runId: string,
      patch: { status?: OperationStatus; step?: string | null },
      stateChange?: { gitspaceId: string; change: StateChange },
    ): Promise<Pick<OperationRow, 'action' | 'createdAt'> | undefined> {
      // A step alone is one statement: the change feed hears of it through the step's own event.
      if (!patch.status) {
        await db.updateTable('operations').set(patch).where('runId', '=', runId).execute();
        return undefined;
      }
      const finished = patch.status !== 'running' ? { finishedAt: new Date() } : undefined;
      return db.transaction().execute(async (trx) => {
        if (stateChange) await applyStateChange(trx, stateChange.gitspaceId, stateChange.change);
        const update = () =>
          trx
            .updateTable('operations')
            .set({ ...patch, ...finished })
            .where('runId', '=', runId)
            .returning(['action', 'createdAt', 'gitspaceId']);
        // In one statement, so of two calls (a retried activity) only the one that ended the operation hears it.
        const ended = finished ? await update().where('status', '=', 'running').executeTakeFirst() : undefined;
        const updated = ended ?? (await update().executeTakeFirst());
        // A status is what the change feed sees of an operation.
        if (updated) await notifyChange(trx, updated.gitspaceId);
        return ended && { action: ended.action, createdAt: ended.createdAt };
      });
    },

    /** The latest operation of each gitspace: one row each from the database, however long its history. */
    async latestOperations(gitspaceIds: string[]): Promise<Map<string, OperationRow>> {
      if (gitspaceIds.length === 0) return new Map();
      const rows = await db
        .selectFrom('operations')
        .selectAll()
        .distinctOn('gitspaceId')
        .where('gitspaceId', 'in', gitspaceIds)
        .orderBy('gitspaceId')
        .orderBy('createdAt', 'desc')
        .orderBy('id', 'desc')
        .execute();
      return new Map(rows.map((row) => [row.gitspaceId, row]));
    },
  };
}
