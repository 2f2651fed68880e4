import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Logger } from '../common/logger';
import { CONTROL_PLANE_TASK_QUEUE } from '../contracts/lifecycle';

/** A workflow the control plane runs every `everySeconds` on its own queue. */
export interface ControlPlaneSchedule {
  scheduleId: string;
  workflowType: string;
  args: unknown[];
  /** What the Web UI shows for each run. */
  summary: string;
  everySeconds: number;
}

/**
 * Creates a Temporal Schedule (visible and pausable in the Web UI) that starts the workflow every `everySeconds` on
 * the control-plane queue, one run at a time; an existing schedule is kept as it is. `trigger` also runs it at once.
 */
export async function ensureSchedule(
  client: Client,
  schedule: ControlPlaneSchedule,
  options: { trigger: boolean; logger: Logger },
): Promise<void> {
  const { scheduleId, workflowType, args, summary, everySeconds } = schedule;
  try {
    await client.schedule.create({
      scheduleId,
      spec: { intervals: [{ every: `${everySeconds}s` }] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1m' },
      action: {
        type: 'startWorkflow',
        workflowType,
        workflowId: scheduleId,
        taskQueue: CONTROL_PLANE_TASK_QUEUE,
        args,
        staticSummary: summary,
      },
    });
    options.logger.info('schedule created', { scheduleId, everySeconds });
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
  }
  if (options.trigger) await client.schedule.getHandle(scheduleId).trigger(ScheduleOverlapPolicy.ALLOW_ALL);
}

/** Removes a schedule (what it served was removed); none there is fine. */
export async function removeSchedule(client: Client, scheduleId: string, logger: Logger): Promise<void> {
  try {
    await client.schedule.getHandle(scheduleId).delete();
    logger.info('schedule removed', { scheduleId });
  } catch (error) {
    if (!(error instanceof ScheduleNotFoundError)) throw error;
  }
}

export const PRUNE_SCHEDULE_ID = 'prune-records';

/** Hourly: each run deletes a few bounded batches (workflows/prune.ts), so old records never pile up for long. */
export const DEFAULT_PRUNE_EVERY_SECONDS = 3600;

/** Deletes old records (workflows/prune.ts) every `everySeconds` (GITSPACES_PRUNE_EVERY_SECONDS). */
export function ensurePruneSchedule(client: Client, options: { everySeconds: number; logger: Logger }): Promise<void> {
  return ensureSchedule(
    client,
    {
      scheduleId: PRUNE_SCHEDULE_ID,
      workflowType: 'pruneRecords',
      args: [],
      summary: 'delete old operations, idempotency keys, reconcile runs, CLI login codes and sessions',
      everySeconds: options.everySeconds,
    },
    { trigger: false, logger: options.logger },
  );
}
