import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Logger } from '../common/logger';
import {
  AUTO_STOP_SIGNALS,
  CONTROL_PLANE_TASK_QUEUE,
  autoStopWorkflowId,
  type AutoStopInput,
} from '../contracts/lifecycle';
import type { AutoStopServices } from '../activities/auto-stop';
import type { Store } from '../db/store';
import type { LifecycleService } from './lifecycle-requests';

/** How long before an auto-stop its warning event comes (capped at half the timeout by the watcher). */
export const DEFAULT_AUTO_STOP_WARNING_SECONDS = 300;
/** The shortest idle timeout or lifetime the API accepts (0 aside, which means never). */
export const DEFAULT_AUTO_STOP_MIN_SECONDS = 60;

/** Arms and nudges the auto-stop watchers (workflows/auto-stop.ts). */
export interface AutoStopArming {
  /** Starts the gitspace's watcher, or wakes the one that sleeps, for this start run: idempotent (signal-with-start). */
  arm(gitspaceId: string, startRunId: string): Promise<void>;
  /** Makes a running watcher look again now (a policy change, a stop or a delete); nothing when none runs. */
  recheck(gitspaceId: string): Promise<void>;
}

export function createAutoStopArming(client: Client, logger: Logger): AutoStopArming {
  return {
    async arm(gitspaceId, startRunId) {
      await client.workflow.signalWithStart('autoStopGitspace', {
        workflowId: autoStopWorkflowId(gitspaceId),
        taskQueue: CONTROL_PLANE_TASK_QUEUE,
        args: [{ gitspaceId } satisfies AutoStopInput],
        signal: AUTO_STOP_SIGNALS.armed,
        signalArgs: [{ startRunId }],
        staticSummary: `auto-stop of gitspace ${gitspaceId}`,
      });
    },
    async recheck(gitspaceId) {
      try {
        await client.workflow.getHandle(autoStopWorkflowId(gitspaceId)).signal(AUTO_STOP_SIGNALS.recheck);
      } catch (error) {
        // None running: nothing to wake. Anything else only delays the watcher's next look; it is not the caller's.
        if (!(error instanceof WorkflowNotFoundError))
          logger.warn('could not ask the auto-stop to look again', { gitspaceId, error });
      }
    },
  };
}

/** What the auto-stop activities need of the control plane (activities/auto-stop.ts), from its arming and lifecycle. */
export function createAutoStopServices(options: {
  arming: AutoStopArming;
  lifecycle: Pick<LifecycleService, 'request'>;
  warningSeconds?: number;
}): AutoStopServices {
  return {
    warningSeconds: options.warningSeconds ?? DEFAULT_AUTO_STOP_WARNING_SECONDS,
    arm: options.arming.arm,
    requestStop: async (gitspaceId, actor) => void (await options.lifecycle.request(gitspaceId, 'stop', actor)),
  };
}

/**
 * At control-plane start, arms the watcher of every running gitspace: gitspaces started by code before the auto-stop,
 * or whose start could not arm it. Nothing is duplicated: the watcher's workflow id is fixed.
 */
export async function ensureAutoStopWatchers(
  store: Pick<Store, 'runningStarts'>,
  arming: AutoStopArming,
  logger: Logger,
): Promise<void> {
  // One read for all of them, then the armings side by side: this runs before the API listens.
  await Promise.all(
    (await store.runningStarts()).map(({ gitspaceId, startRunId }) =>
      arming
        .arm(gitspaceId, startRunId)
        .catch((error: unknown) => logger.warn('could not arm the auto-stop', { gitspaceId, error })),
    ),
  );
}
