import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Logger } from '../common/logger';
import { CONTROL_PLANE_TASK_QUEUE } from '../contracts/lifecycle';

/** How long a machine of an unknown gitspace is kept, stopped, before reconciliation deletes it. */
export const DEFAULT_ORPHAN_GRACE_SECONDS = 3600;

export const reconcileScheduleId = (infrastructureId: string) => `reconcile-${infrastructureId}`;

/**
 * One Temporal Schedule per infrastructure runs `reconcileInfrastructure` (visible and pausable in the Web UI);
 * `trigger` also runs it at once, as the control plane does when it starts.
 */
export async function ensureReconcileSchedule(
  client: Client,
  infrastructureId: string,
  options: { everySeconds: number; trigger: boolean; logger: Logger },
): Promise<void> {
  const scheduleId = reconcileScheduleId(infrastructureId);
  try {
    await client.schedule.create({
      scheduleId,
      spec: { intervals: [{ every: `${options.everySeconds}s` }] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1m' },
      action: {
        type: 'startWorkflow',
        workflowType: 'reconcileInfrastructure',
        workflowId: `reconcile-${infrastructureId}`,
        taskQueue: CONTROL_PLANE_TASK_QUEUE,
        args: [{ infrastructureId }],
        staticSummary: `reconcile infrastructure '${infrastructureId}'`,
      },
    });
    options.logger.info('reconciliation schedule created', { scheduleId, everySeconds: options.everySeconds });
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
  }
  if (options.trigger) await client.schedule.getHandle(scheduleId).trigger(ScheduleOverlapPolicy.ALLOW_ALL);
}

/** Removes an infrastructure's reconciliation schedule (the infrastructure was removed); none there is fine. */
export async function removeReconcileSchedule(client: Client, infrastructureId: string, logger: Logger): Promise<void> {
  try {
    await client.schedule.getHandle(reconcileScheduleId(infrastructureId)).delete();
    logger.info('reconciliation schedule removed', { scheduleId: reconcileScheduleId(infrastructureId) });
  } catch (error) {
    if (!(error instanceof ScheduleNotFoundError)) throw error;
  }
}
