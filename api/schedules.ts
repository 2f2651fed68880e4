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

/**
 * The schedules an infrastructure has, each running one workflow given `{ infrastructureId }`, id `<kind>-<id>`:
 * - `reconcile` (workflows/reconcile.ts): every infrastructure, made with it and run at control-plane start;
 * - `warm-pool` (workflows/warm-pool.ts): one with a warm pool, made when a pool is first given a size (and run at
 *   once after each size change) and at control-plane start for those with one. It stays until its infrastructure
 *   is removed, which waits for the pool to be empty: a pool set back to 0 is emptied by the schedule itself.
 */
const INFRASTRUCTURE_SCHEDULES = {
  reconcile: { workflowType: 'reconcileInfrastructure', summary: (id: string) => `reconcile infrastructure '${id}'` },
  'warm-pool': {
    workflowType: 'maintainWarmPool',
    summary: (id: string) => `keep the warm pools of infrastructure '${id}' at their size`,
  },
} as const;
export type InfrastructureScheduleKind = keyof typeof INFRASTRUCTURE_SCHEDULES;

export const infrastructureScheduleId = (kind: InfrastructureScheduleKind, infrastructureId: string) =>
  `${kind}-${infrastructureId}`;

/** Makes (or keeps) one schedule of an infrastructure; `trigger` also runs it at once. */
export function ensureInfrastructureSchedule(
  client: Client,
  kind: InfrastructureScheduleKind,
  infrastructureId: string,
  options: { everySeconds: number; trigger: boolean; logger: Logger },
): Promise<void> {
  const { workflowType, summary } = INFRASTRUCTURE_SCHEDULES[kind];
  return ensureSchedule(
    client,
    {
      scheduleId: infrastructureScheduleId(kind, infrastructureId),
      workflowType,
      args: [{ infrastructureId }],
      summary: summary(infrastructureId),
      everySeconds: options.everySeconds,
    },
    options,
  );
}

/** Removes every schedule of a removed infrastructure; one it never had is fine. */
export async function removeInfrastructureSchedules(
  client: Client,
  infrastructureId: string,
  logger: Logger,
): Promise<void> {
  for (const kind of Object.keys(INFRASTRUCTURE_SCHEDULES) as InfrastructureScheduleKind[]) {
    const scheduleId = infrastructureScheduleId(kind, infrastructureId);
    try {
      await client.schedule.getHandle(scheduleId).delete();
      logger.info('schedule removed', { scheduleId });
    } catch (error) {
      if (!(error instanceof ScheduleNotFoundError)) throw error;
    }
  }
}

/** How often a warm pool is brought back to its size (GITSPACES_WARM_POOL_EVERY_SECONDS). */
export const DEFAULT_WARM_POOL_EVERY_SECONDS = 60;

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
