import type { Client } from '@temporalio/client';
import type { Logger } from '../common/logger';
import { ensureSchedule } from './schedules';

/** How often a warm pool is brought back to its size (GITSPACES_WARM_POOL_EVERY_SECONDS). */
export const DEFAULT_WARM_POOL_EVERY_SECONDS = 60;

export const warmPoolScheduleId = (infrastructureId: string) => `warm-pool-${infrastructureId}`;

/**
 * One Temporal Schedule per infrastructure with a warm pool runs `maintainWarmPool` (workflows/warm-pool.ts), visible
 * and pausable in the Web UI. Made when a pool is first given a size, and at control-plane start for those that have
 * one; `trigger` also runs it at once (a size was just changed). It stays until its infrastructure is removed, which
 * waits for the pool to be empty: a pool set back to 0 is emptied by the schedule itself.
 */
export function ensureWarmPoolSchedule(
  client: Client,
  infrastructureId: string,
  options: { everySeconds: number; trigger: boolean; logger: Logger },
): Promise<void> {
  return ensureSchedule(
    client,
    {
      scheduleId: warmPoolScheduleId(infrastructureId),
      workflowType: 'maintainWarmPool',
      args: [{ infrastructureId }],
      summary: `keep the warm pools of infrastructure '${infrastructureId}' at their size`,
      everySeconds: options.everySeconds,
    },
    options,
  );
}
