/**
 * The warm pools of one infrastructure (db/stores/warm-pool.ts): per machine shape, stopped machines made ahead, so a
 * gitspace's first start boots one instead of making one. Run by a Temporal Schedule per infrastructure with a pool
 * (api/warm-pools.ts), one run at a time: each run makes what its pools lack and deletes what they no longer need.
 * A machine that cannot be made is deleted and its shape backs off; a run that dies leaves rows that retire later.
 */
import { ActivityCancellationType, log, proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { InfrastructureActivities } from '../activities/infrastructure';
import type { WarmPoolActivities } from '../activities/warm-pool';
import { CONTROL_PLANE_TASK_QUEUE, infrastructureTaskQueue } from '../contracts/lifecycle';
import { NON_RETRYABLE_PROVIDER_ERRORS } from '../contracts/provider-errors';
import { failureMessage } from './failure-message';

const controlPlane = proxyActivities<WarmPoolActivities>({
  taskQueue: CONTROL_PLANE_TASK_QUEUE,
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 5 },
});

/** What one run did. */
export interface WarmPoolResult {
  ready: string[];
  failed: { key: string; message: string }[];
  deleted: string[];
}

export async function maintainWarmPool(input: { infrastructureId: string }): Promise<WarmPoolResult> {
  const runner = proxyActivities<InfrastructureActivities>({
    taskQueue: infrastructureTaskQueue(input.infrastructureId),
    // A runner that is down fails this run's machines after a while; they retire and the pool backs off.
    scheduleToStartTimeout: '5m',
    startToCloseTimeout: '30m',
    heartbeatTimeout: '1m',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      maximumAttempts: 3,
      nonRetryableErrorTypes: [...NON_RETRYABLE_PROVIDER_ERRORS, 'WrongInfrastructureError', 'WorkOrderRefusedError'],
    },
  });
  const work = await controlPlane.planWarmPool(input);
  const { infrastructure } = work;
  const done: WarmPoolResult = { ready: [], failed: [], deleted: [] };
  setCurrentDetails(`making ${work.prepare.length} pooled machine(s), deleting ${work.retire.length}`);
  const remove = async (key: string, order: string): Promise<boolean> => {
    try {
      await runner.deleteMachine({ spec: { ...infrastructure, gitspaceId: key }, order });
      await controlPlane.forgetWarmMachine({ key });
      done.deleted.push(key);
      return true;
    } catch (error) {
      // The row stays `retiring`: the next run deletes it again; until then reconciliation leaves it alone.
      log.warn('a pooled machine could not be deleted', { key, error: failureMessage(error) });
      return false;
    }
  };
  await Promise.all([
    ...work.prepare.map(async ({ key, machine, order }) => {
      try {
        await runner.prepareWarmMachine({ infrastructure, key, machine, order });
        await controlPlane.warmMachineReady({ key });
        done.ready.push(key);
      } catch (error) {
        const message = failureMessage(error);
        done.failed.push({ key, message });
        // Retired first, so a machine that cannot be deleted now is still known, and deleted by a later run.
        await controlPlane.warmMachineFailed({ key, message });
        await remove(key, order);
      }
    }),
    ...work.retire.map(({ key, order }) => remove(key, order)),
  ]);
  setCurrentDetails(
    `${done.ready.length} pooled machine(s) ready, ${done.failed.length} failed, ${done.deleted.length} deleted`,
  );
  return done;
}
