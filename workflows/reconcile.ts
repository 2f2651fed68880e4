/**
 * Reconciliation of one infrastructure: compares the machines the runner sees with the records and repairs both, so
 * a gitspace never shows a state that lies and no machine is left behind. Run by a Temporal Schedule per
 * infrastructure and at control-plane start.
 */
import { ActivityCancellationType, log, proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/control-plane';
import type { InfrastructureActivities } from '../activities/infrastructure';
import { CONTROL_PLANE_TASK_QUEUE, infrastructureTaskQueue } from '../common/lifecycle';

const controlPlane = proxyActivities<ControlPlaneActivities>({
  taskQueue: CONTROL_PLANE_TASK_QUEUE,
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 5 },
});

export interface ReconcileResult {
  observed: number;
  stopped: string[];
  deleted: string[];
  routesRemoved: string[];
}

export async function reconcileInfrastructure(input: { infrastructureId: string }): Promise<ReconcileResult> {
  const infrastructure = await controlPlane.describeInfrastructure(input);
  const runner = proxyActivities<InfrastructureActivities>({
    taskQueue: infrastructureTaskQueue(input.infrastructureId),
    // A runner that is down makes this run fail after a while; the next scheduled run tries again.
    scheduleToStartTimeout: '5m',
    startToCloseTimeout: '3m',
    cancellationType: ActivityCancellationType.TRY_CANCEL,
    retry: { maximumAttempts: 3 },
  });
  setCurrentDetails(`observing the machines of infrastructure '${input.infrastructureId}'`);
  const machines = await runner.observeMachines({ infrastructure });
  const plan = await controlPlane.reconcile({ infrastructureId: input.infrastructureId, machines });
  const done: ReconcileResult = { observed: machines.length, stopped: [], deleted: [], routesRemoved: [] };
  for (const gitspaceId of plan.removeRoutes) {
    await runner.removeRoute({ gitspaceId });
    done.routesRemoved.push(gitspaceId);
  }
  for (const gitspaceId of plan.stopMachines) {
    await runner.stopMachine({ spec: { ...infrastructure, gitspaceId } });
    done.stopped.push(gitspaceId);
  }
  for (const gitspaceId of plan.deleteMachines) {
    await runner.deleteMachine({ spec: { ...infrastructure, gitspaceId } });
    done.deleted.push(gitspaceId);
  }
  log.info('reconciled', { ...done });
  setCurrentDetails(
    `observed ${machines.length} machine(s); stopped ${done.stopped.length}, deleted ${done.deleted.length}, removed ${done.routesRemoved.length} route(s)`,
  );
  return done;
}
