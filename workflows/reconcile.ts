/**
 * Reconciliation of one infrastructure: compares the machines the runner sees with the records and repairs both, so
 * a gitspace never shows a state that lies and no machine is left behind. Run by a Temporal Schedule per
 * infrastructure and at control-plane start. What it did becomes events on the gitspaces concerned and the totals of
 * GET /metrics.
 */
import { ActivityCancellationType, log, proxyActivities, setCurrentDetails, workflowInfo } from '@temporalio/workflow';
import type { ControlPlaneActivities, ReconcileResult } from '../activities/bookkeeping';
import type { InfrastructureActivities } from '../activities/infrastructure';
import { CONTROL_PLANE_TASK_QUEUE, infrastructureTaskQueue } from '../contracts/lifecycle';
import { failureMessage } from './failure-message';

const controlPlane = proxyActivities<ControlPlaneActivities>({
  taskQueue: CONTROL_PLANE_TASK_QUEUE,
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 5 },
});

export async function reconcileInfrastructure(input: { infrastructureId: string }): Promise<ReconcileResult> {
  const infrastructure = await controlPlane.describeInfrastructure(input);
  const runner = proxyActivities<InfrastructureActivities>({
    taskQueue: infrastructureTaskQueue(input.infrastructureId),
    // A runner that is down makes this run fail after a while; the next scheduled run tries again.
    scheduleToStartTimeout: '5m',
    startToCloseTimeout: '3m',
    cancellationType: ActivityCancellationType.TRY_CANCEL,
    retry: { maximumAttempts: 3, nonRetryableErrorTypes: ['WrongInfrastructureError', 'WorkOrderRefusedError'] },
  });
  setCurrentDetails(`observing the machines of infrastructure '${input.infrastructureId}'`);
  // Read-only, so unsigned; every repair below carries the order the plan was signed with (this run, these ids).
  const machines = await runner.observeMachines({ infrastructure });
  const plan = await controlPlane.reconcile({ infrastructureId: input.infrastructureId, machines });
  const order = plan.order ? { order: plan.order } : {};
  const done: ReconcileResult = {
    observed: machines.length,
    stopped: [],
    deleted: [],
    routesRemoved: [],
    awaitingGrace: plan.awaitingGrace,
    failed: [],
  };
  // One repair that fails must not keep the others from running; it is reported, and the next run tries again.
  const repair = async (
    action: ReconcileResult['failed'][number]['action'],
    gitspaceId: string,
    succeeded: string[],
    run: () => Promise<unknown>,
  ) => {
    try {
      await run();
      succeeded.push(gitspaceId);
    } catch (error) {
      const message = failureMessage(error);
      log.warn('reconciliation repair failed', { gitspaceId, action, message });
      done.failed.push({ gitspaceId, action, message });
    }
  };
  for (const gitspaceId of plan.removeRoutes) {
    await repair('removeRoute', gitspaceId, done.routesRemoved, () => runner.removeRoute({ gitspaceId, ...order }));
  }
  for (const gitspaceId of plan.stopMachines) {
    await repair('stop', gitspaceId, done.stopped, () =>
      runner.stopMachine({ spec: { ...infrastructure, gitspaceId }, ...order }),
    );
  }
  for (const gitspaceId of plan.deleteMachines) {
    await repair('delete', gitspaceId, done.deleted, () =>
      runner.deleteMachine({ spec: { ...infrastructure, gitspaceId }, ...order }),
    );
  }
  await controlPlane.recordReconciliation({
    infrastructureId: input.infrastructureId,
    runId: workflowInfo().runId,
    result: done,
  });
  log.info('reconciled', { ...done });
  setCurrentDetails(
    `observed ${machines.length} machine(s); stopped ${done.stopped.length}, deleted ${done.deleted.length}, ` +
      `removed ${done.routesRemoved.length} route(s); ${done.awaitingGrace.length} orphan(s) in their grace period, ` +
      `${done.failed.length} repair(s) failed`,
  );
  return done;
}
