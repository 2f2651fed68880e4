import { MAX_BATCHES_PER_RUN } from '../../workflows/prune';
import { inputsOf, runWorkflow, useWorkflowHarness } from '../support/workflow-harness';

/** The pruning workflow's unit tests: the real workflow on the time-skipping test server, a counting activity. */
const harness = useWorkflowHarness();

/** Runs pruneRecords with a pruneBatch that has `left[kind]` records to delete, `batch` at a time. */
function prune(left: Record<string, number>, batch = 3) {
  return runWorkflow(harness(), 'pruneRecords', () => undefined, {
    runner: false,
    controlPlane: {
      pruneBatch: async ({ kind }: { kind: string }) => {
        const deleted = Math.min(batch, left[kind] ?? 0);
        left[kind] = (left[kind] ?? 0) - deleted;
        return { deleted, more: deleted === batch };
      },
    },
  });
}

it('prunes every kind of record, a batch at a time, until a batch comes back short', async () => {
  const run = await prune({ operations: 7, idempotencyKeys: 3, reconcileRuns: 0, cliAuthorizations: 1, sessions: 2 });
  expect(run.error).toBeUndefined();
  expect(run.value).toEqual({ operations: 7, idempotencyKeys: 3, reconcileRuns: 0, cliAuthorizations: 1, sessions: 2 });
  expect(inputsOf(run.calls, 'pruneBatch').map((input) => input.kind)).toEqual([
    'operations',
    'operations',
    'operations',
    'idempotencyKeys',
    'idempotencyKeys', // a full batch: there might be more
    'reconcileRuns',
    'cliAuthorizations',
    'sessions',
  ]);
});

it('stops a kind after its batches for this run and goes on with the others; the next run deletes the rest', async () => {
  const left = { operations: 1000, sessions: 1 };
  const run = await prune(left, 10);
  expect(run.error).toBeUndefined();
  expect(run.value).toEqual(expect.objectContaining({ operations: 10 * MAX_BATCHES_PER_RUN, sessions: 1 }));
  expect(left.operations).toBe(1000 - 10 * MAX_BATCHES_PER_RUN);
});
