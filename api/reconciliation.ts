import type { Client } from '@temporalio/client';
import type { Logger } from '../common/logger';
import { ensureSchedule } from './schedules';

/** How long a machine of an unknown gitspace is kept, stopped, before reconciliation deletes it. */
export const DEFAULT_ORPHAN_GRACE_SECONDS = 3600;

export const reconcileScheduleId = (infrastructureId: string) => `reconcile-${infrastructureId}`;

/**
 * One Temporal Schedule per infrastructure runs `reconcileInfrastructure` (visible and pausable in the Web UI);
 * `trigger` also runs it at once, as the control plane does when it starts.
 */
export function ensureReconcileSchedule(
  client: Client,
  infrastructureId: string,
  options: { everySeconds: number; trigger: boolean; logger: Logger },
): Promise<void> {
  return ensureSchedule(
    client,
    {
      scheduleId: reconcileScheduleId(infrastructureId),
      workflowType: 'reconcileInfrastructure',
      args: [{ infrastructureId }],
      summary: `reconcile infrastructure '${infrastructureId}'`,
      everySeconds: options.everySeconds,
    },
    options,
  );
}
