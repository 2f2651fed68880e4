/**
 * The auto-stop watcher of one gitspace (workflow id `gitspace-<id>-auto-stop`): a durable timer per running gitspace
 * that stops it when nobody has used it for its idle timeout, or when it reaches its maximum lifetime, with a warning
 * event shortly before. Use is what the gateway sees (the runner reads it); the machine reports nothing. Armed by
 * each successful start (`armed`, through signal-with-start, so a restart of any part neither loses nor duplicates
 * it); `recheck` makes it look again at once (a policy change, a stop or a delete).
 */
import {
  ActivityCancellationType,
  condition,
  continueAsNew,
  defineSignal,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  setWorkflowOptions,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/bookkeeping';
import type { InfrastructureActivities } from '../activities/infrastructure';
import {
  AUTO_STOP_SIGNALS,
  CONTROL_PLANE_TASK_QUEUE,
  infrastructureTaskQueue,
  type AutoStopInput,
  type AutoStopReason,
  type GatewayActivity,
} from '../contracts/lifecycle';

export const armedSignal = defineSignal<[{ startRunId: string }]>(AUTO_STOP_SIGNALS.armed);
export const recheckSignal = defineSignal(AUTO_STOP_SIGNALS.recheck);

/** How long to wait before asking again when another operation holds the gitspace. */
const CONFLICT_RETRY_MS = 60_000;
/** How often to try again to observe the gateway while the runner cannot be reached. */
const UNOBSERVED_RETRY_MS = 60_000;
/** Decisions per run before continuing as new, so the history stays short. */
const DECISIONS_PER_RUN = 100;

const controlPlane = proxyActivities<ControlPlaneActivities>({
  taskQueue: CONTROL_PLANE_TASK_QUEUE,
  startToCloseTimeout: '30s',
  // A database outage only delays the decision.
  retry: { initialInterval: '1s', maximumInterval: '1m', nonRetryableErrorTypes: ['NotFoundError'] },
});

/** What the watcher did in the end. */
export type AutoStopOutcome =
  { outcome: 'stopped'; reason: AutoStopReason } | { outcome: 'not-running' } | { outcome: 'stale' };

/** A sleep-heavy loop: it must follow new code instead of pinning a version for hours (DESIGN.md §2). */
export async function autoStopGitspace(input: AutoStopInput): Promise<AutoStopOutcome> {
  const { gitspaceId } = input;
  let startRunId = input.startRunId;
  let warnedFor = input.warnedFor;
  let signalled = false;
  setHandler(armedSignal, (armed) => {
    startRunId = armed.startRunId;
    signalled = true;
  });
  setHandler(recheckSignal, () => {
    signalled = true;
  });
  const sleep = (ms: number) => condition(() => signalled, Math.max(1, ms));
  let unobservedRecorded = input.unobserved ?? false;

  for (let decision = 0; ; decision++) {
    if (decision >= DECISIONS_PER_RUN || workflowInfo().continueAsNewSuggested) {
      return continueAsNew<typeof autoStopGitspace>({
        gitspaceId,
        ...(startRunId ? { startRunId } : {}),
        ...(warnedFor ? { warnedFor } : {}),
        ...(unobservedRecorded ? { unobserved: true } : {}),
      });
    }
    signalled = false;
    const status = await controlPlane.autoStopStatus({ gitspaceId });
    if (!status.running || !status.startRunId || (startRunId && status.startRunId !== startRunId)) {
      // Armed by a new start meanwhile: look again; otherwise the run it watched is over.
      if (signalled) continue;
      setCurrentDetails(`gitspace ${gitspaceId} is not running under the start it watched: nothing to stop`);
      return { outcome: 'not-running' };
    }
    const run = status.startRunId;
    startRunId = run;
    const { policy } = status;
    const runningSince = status.runningSinceMs ?? Date.now();

    let idleAt = Infinity;
    let unobserved = false;
    if (policy.idleSeconds) {
      const seen = await observe(gitspaceId, status.infrastructureId);
      if (seen) idleAt = Math.max(runningSince, Date.now() - seen.idleSeconds * 1000) + policy.idleSeconds * 1000;
      else unobserved = true;
    }
    if (unobserved && !unobservedRecorded) await controlPlane.recordAutoStopUnobserved({ gitspaceId });
    unobservedRecorded = unobserved;
    // Lifetime wins: it ignores use, so a busy gitspace still stops.
    const lifetimeAt = policy.maxLifetimeSeconds ? runningSince + policy.maxLifetimeSeconds * 1000 : Infinity;
    const reason: AutoStopReason = lifetimeAt <= idleAt ? 'max-lifetime' : 'idle';
    const deadline = Math.min(lifetimeAt, idleAt);
    const retryObservation = unobserved ? UNOBSERVED_RETRY_MS : Infinity;
    const now = Date.now();

    if (deadline === Infinity) {
      setCurrentDetails(unobserved ? 'the gateway cannot be observed: no idle stop' : 'no auto-stop policy applies');
      await (retryObservation === Infinity ? condition(() => signalled) : sleep(retryObservation));
      continue;
    }
    if (now >= deadline) {
      setCurrentDetails(`stopping gitspace ${gitspaceId}: ${reason}`);
      const answer = await controlPlane.requestAutoStop({ gitspaceId, startRunId: run, reason });
      if (answer === 'conflict') {
        await sleep(CONFLICT_RETRY_MS);
        continue;
      }
      return answer === 'requested' ? { outcome: 'stopped', reason } : { outcome: 'stale' };
    }
    const timeoutMs = (reason === 'idle' ? policy.idleSeconds! : policy.maxLifetimeSeconds!) * 1000;
    const warningMs = Math.min(status.warningSeconds * 1000, timeoutMs / 2);
    const warnAt = deadline - warningMs;
    if (now < warnAt) {
      setCurrentDetails(`watching: ${reason === 'idle' ? 'idle stop' : 'maximum lifetime'} at ${iso(deadline)}`);
      await sleep(Math.min(warnAt - now, retryObservation));
      continue;
    }
    // Use after a warning moves an idle deadline by at least (timeout - warning): anything closer is the same one,
    // observed again a moment later.
    if (!sameDeadline(warnedFor, reason, deadline, (timeoutMs - warningMs) / 2)) {
      await controlPlane.recordAutoStopWarning({
        gitspaceId,
        startRunId: run,
        reason,
        deadlineMs: deadline,
        timeoutMs,
      });
      warnedFor = `${reason}@${deadline}`;
    }
    setCurrentDetails(`warned: ${reason === 'idle' ? 'idle stop' : 'maximum lifetime'} at ${iso(deadline)}`);
    await sleep(Math.min(deadline - now, retryObservation));
  }
}

setWorkflowOptions({ versioningBehavior: 'AUTO_UPGRADE' }, autoStopGitspace);

/** What the gateway saw, through the infrastructure's runner; undefined when no runner could tell (no evidence). */
async function observe(gitspaceId: string, infrastructureId: string): Promise<GatewayActivity | undefined> {
  const runner = proxyActivities<InfrastructureActivities>({
    taskQueue: infrastructureTaskQueue(infrastructureId),
    scheduleToStartTimeout: '30s',
    startToCloseTimeout: '30s',
    cancellationType: ActivityCancellationType.TRY_CANCEL,
    retry: { maximumAttempts: 3, nonRetryableErrorTypes: ['WrongInfrastructureError'] },
  });
  try {
    return await runner.observeGatewayActivity({ infrastructureId, gitspaceId });
  } catch {
    return undefined;
  }
}

function sameDeadline(warnedFor: string | undefined, reason: AutoStopReason, deadline: number, toleranceMs: number) {
  if (!warnedFor) return false;
  const [warnedReason, warnedDeadline] = warnedFor.split('@');
  return warnedReason === reason && Math.abs(Number(warnedDeadline) - deadline) <= toleranceMs;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
