/**
 * The gitspace lifecycle workflows: start, stop and delete (DESIGN.md §2). Deterministic code only: state lives in
 * activities, which run on the control-plane queue (bookkeeping) or on the infrastructure's queue (the runner).
 */
import {
  ActivityFailure,
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  isCancellation,
  log,
  type LocalActivityOptions,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  workflowInfo,
} from '@temporalio/workflow';
import type { BeginResult, ControlPlaneActivities } from '../activities/bookkeeping';
import type { InfrastructureActivities } from '../activities/infrastructure';
import {
  CONTROL_PLANE_TASK_QUEUE,
  STEPS,
  infrastructureTaskQueue,
  type Actor,
  type GitspaceSpec,
  type LifecycleAction,
  type LifecycleInput,
  type StepName,
} from '../contracts/lifecycle';
import { NON_RETRYABLE_PROVIDER_ERRORS } from '../contracts/provider-errors';
import { failureMessage } from './failure-message';

/** The bookkeeping activities' timeouts and retries, queued or local. */
const BOOKKEEPING = {
  startToCloseTimeout: '30s',
  scheduleToCloseTimeout: '10m',
  retry: {
    initialInterval: '500ms',
    maximumInterval: '20s',
    nonRetryableErrorTypes: ['NotFoundError', 'InvalidTransitionError'],
  },
} satisfies LocalActivityOptions;
const controlPlane = proxyActivities<ControlPlaneActivities>({ taskQueue: CONTROL_PLANE_TASK_QUEUE, ...BOOKKEEPING });

/**
 * The step's bookkeeping runs as a local activity: in the control-plane worker that runs this workflow, within the
 * same workflow task, so recording a step costs no task-queue round trip and no extra workflow task before the step.
 * The event log, the operation's step and the Web UI's details say the same as before; the history shows a marker.
 */
const localControlPlane = proxyLocalActivities<Pick<ControlPlaneActivities, 'recordStep'>>(BOOKKEEPING);

/** How long each infrastructure step may run (one attempt), and whether it must heartbeat. */
interface StepLimit {
  startToClose: string;
  heartbeat?: string;
}
// Every step heartbeats, so a runner that dies mid-step is noticed in seconds and the step runs again elsewhere.
const STEP_LIMITS: Partial<Record<StepName, StepLimit>> = {
  ensureMachine: { startToClose: '3m', heartbeat: '30s' },
  waitForMachine: { startToClose: '15m', heartbeat: '30s' },
  waitForAgent: { startToClose: '10m', heartbeat: '30s' },
  prepareWorkspace: { startToClose: '30m', heartbeat: '30s' },
  registerRoute: { startToClose: '30s' },
  removeRoute: { startToClose: '30s' },
  stopMachine: { startToClose: '3m', heartbeat: '30s' },
  deleteMachine: { startToClose: '3m', heartbeat: '30s' },
};

type InfraStep = keyof InfrastructureActivities & StepName;

/**
 * Patches (`patched()`): each changes the commands a workflow sends in one situation, so histories recorded before it
 * still replay the old way. Never rename one; remove one only once no history recorded without it can still be open.
 */
const PATCHES = {
  /** A start whose runner never picked up a step skips the compensation steps: they would wait for nobody too. */
  startWithoutRunner: 'start-without-runner-skips-compensation',
  /** A stop or delete that is cancelled records it (error, retryable) instead of staying in `stopping`/`deleting`. */
  cancelledStopOrDelete: 'cancelled-stop-or-delete-recorded',
  /** A delete whose runner never picked up a step deletes the record and leaves the machine to reconciliation. */
  deleteWithoutRunner: 'delete-without-runner-completes',
  /** A start that succeeded arms the gitspace's auto-stop watcher (workflows/auto-stop.ts). */
  armAutoStop: 'arm-auto-stop',
  /** Each step is recorded by a local activity, not an activity on the control-plane queue (localControlPlane). */
  recordStepLocally: 'record-step-locally',
} as const;

/** True when no runner picked the step up within the pickup timeout (its schedule-to-start timeout). */
function runnerUnavailable(error: unknown): boolean {
  const failure = error instanceof ActivityFailure ? error.cause : error;
  return failure instanceof TimeoutFailure && failure.timeoutType === 'SCHEDULE_TO_START';
}

/** One typed activity stub per step, on the infrastructure's task queue, with that step's timeouts and summary. */
function infrastructureStep<K extends InfraStep>(
  name: K,
  spec: GitspaceSpec,
  pickupSeconds: number,
): InfrastructureActivities[K] {
  const limits: StepLimit = STEP_LIMITS[name] ?? { startToClose: '1m' };
  const stubs = proxyActivities<InfrastructureActivities>({
    taskQueue: infrastructureTaskQueue(spec.infrastructureId),
    scheduleToStartTimeout: `${pickupSeconds}s`,
    startToCloseTimeout: limits.startToClose,
    ...(limits.heartbeat ? { heartbeatTimeout: limits.heartbeat } : {}),
    // Compensation must not race an attempt that is still creating the machine.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    summary: STEPS[name],
    retry: {
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '30s',
      maximumAttempts: 8,
      nonRetryableErrorTypes: [...NON_RETRYABLE_PROVIDER_ERRORS, 'WrongInfrastructureError', 'WorkOrderRefusedError'],
    },
  });
  return stubs[name];
}

/** Runs the steps of one action, keeping the current step visible (Web UI details, events, the API). */
class ActionRun {
  step: StepName = 'begin';
  constructor(
    readonly action: LifecycleAction,
    readonly begun: BeginResult,
  ) {}

  get spec(): GitspaceSpec {
    return this.begun.spec;
  }

  /** Who asked for this operation: every bookkeeping step records it on its event. */
  get actor(): Actor | undefined {
    return this.begun.actor;
  }

  /** Runs one infrastructure step with this operation's signed work order added to its input. */
  async run<K extends InfraStep>(
    name: K,
    input: Omit<Parameters<InfrastructureActivities[K]>[0], 'order'>,
  ): Promise<Awaited<ReturnType<InfrastructureActivities[K]>>> {
    this.step = name;
    setCurrentDetails(`**${this.action}** gitspace '${this.spec.name}': ${STEPS[name]}`);
    const step = { gitspaceId: this.spec.gitspaceId, step: name, actor: this.actor };
    await (patched(PATCHES.recordStepLocally) ? localControlPlane : controlPlane).recordStep(step);
    const activity = infrastructureStep(name, this.spec, this.begun.runnerPickupTimeoutSeconds) as (
      input: Parameters<InfrastructureActivities[K]>[0],
    ) => Promise<Awaited<ReturnType<InfrastructureActivities[K]>>>;
    return activity({ ...input, ...(this.begun.order ? { order: this.begun.order } : {}) } as Parameters<
      InfrastructureActivities[K]
    >[0]);
  }

  /** Words a user can act on: which step, what went wrong, and the failure type. */
  describe(error: unknown): { message: string; cause?: string } {
    const failure = error instanceof ActivityFailure ? error.cause : error;
    if (failure instanceof TimeoutFailure) {
      if (failure.timeoutType === 'SCHEDULE_TO_START') {
        return {
          message: `no runner is serving infrastructure '${this.spec.infrastructureId}': nothing picked up '${STEPS[this.step]}' within ${this.begun.runnerPickupTimeoutSeconds}s`,
          cause: 'RunnerUnavailableError',
        };
      }
      const limit = STEP_LIMITS[this.step as InfraStep];
      const bound =
        failure.timeoutType === 'HEARTBEAT'
          ? `the runner stopped reporting progress for ${limit?.heartbeat}`
          : `it took longer than ${limit?.startToClose}`;
      return { message: `'${STEPS[this.step]}' timed out: ${bound}`, cause: 'StepTimeoutError' };
    }
    if (failure instanceof ApplicationFailure) return { message: failure.message, cause: failure.type ?? undefined };
    if (failure instanceof Error) return { message: failure.message, cause: failure.name };
    return { message: String(failure) };
  }
}

async function begin(gitspaceId: string, action: LifecycleAction, actor: Actor | undefined): Promise<ActionRun> {
  setCurrentDetails(`**${action}**: ${STEPS.begin}`);
  return new ActionRun(action, await controlPlane.beginOperation({ gitspaceId, action, actor }));
}

/** Records the failure on the gitspace and fails the workflow with the same words and type. */
async function fail(run: ActionRun, error: unknown, compensationProblems: string[] = []): Promise<never> {
  const described = run.describe(error);
  // A compensation step that failed for the same reason (an old runner refuses every step alike) says nothing new.
  const problems = compensationProblems.filter((problem) => !problem.endsWith(`: ${described.message}`));
  const message = [described.message, ...problems].join('; ');
  await controlPlane.failOperation({
    gitspaceId: run.spec.gitspaceId,
    actor: run.actor,
    error: { action: run.action, step: run.step, message, ...(described.cause ? { cause: described.cause } : {}) },
  });
  setCurrentDetails(`**${run.action}** failed at '${STEPS[run.step]}': ${message}`);
  throw ApplicationFailure.nonRetryable(message, described.cause ?? 'GitspaceActionError');
}

/**
 * A stop or delete cancelled (from the Web UI or the CLI) records that it did not finish, so the gitspace is in error
 * and the action can be retried, instead of showing `stopping` or `deleting` forever; the workflow ends cancelled.
 */
async function cancelled(run: ActionRun, cancellation: unknown): Promise<never> {
  await CancellationScope.nonCancellable(() =>
    controlPlane.failOperation({
      gitspaceId: run.spec.gitspaceId,
      actor: run.actor,
      error: {
        action: run.action,
        step: run.step,
        message: `the ${run.action} was cancelled at '${STEPS[run.step]}' before it finished; retry it`,
        cause: 'OperationCancelledError',
      },
      status: 'cancelled',
    }),
  );
  setCurrentDetails(`**${run.action}** cancelled at '${STEPS[run.step]}'`);
  throw cancellation;
}

/** Start: ensure the machine → wait for it → wait for the agent → prepare the workspace → route → running. */
export async function startGitspace({ gitspaceId, actor }: LifecycleInput): Promise<{ url: string }> {
  const run = await begin(gitspaceId, 'start', actor);
  const { spec } = run;
  let machineTouched = false;
  let routeTouched = false;
  try {
    machineTouched = true;
    // A claimed pooled machine rides in the input (and its order): replaying older histories sends the same command.
    const ensured = await run.run('ensureMachine', {
      spec,
      ...(run.begun.warmMachine ? { warmMachine: run.begun.warmMachine } : {}),
    });
    // The cloud operation ensureMachine started travels in history to whichever runner waits for it.
    const machine = await run.run('waitForMachine', {
      spec,
      target: 'running',
      ...(ensured?.operation ? { operation: ensured.operation } : {}),
    });
    if (!machine)
      throw ApplicationFailure.nonRetryable('the machine disappeared while starting', 'InstanceNotFoundError');
    // The runner finds the agent through its own provider; no address travels through Temporal to it.
    await run.run('waitForAgent', { spec });
    await run.run('prepareWorkspace', {
      spec,
      ...(run.begun.repositoryTokenSealed ? { repositoryTokenSealed: run.begun.repositoryTokenSealed } : {}),
    });
    routeTouched = true;
    // The machine's SSH host key comes back with the route (none from an agent older than SSH, or in old histories).
    const route = await run.run('registerRoute', { spec });
    const url = `${spec.gatewayUrl}/gitspaces/${gitspaceId}/`;
    const sshHostKey = route?.sshHostKey;
    await controlPlane.completeOperation({
      gitspaceId,
      action: 'start',
      url,
      machine,
      actor: run.actor,
      ...(sshHostKey ? { sshHostKey } : {}),
    });
    setCurrentDetails(`gitspace '${spec.name}' is running at ${url}`);
    if (patched(PATCHES.armAutoStop)) await armAutoStop(gitspaceId);
    return { url };
  } catch (error) {
    // Compensation runs even when the start was cancelled (a stop or delete arrived): in reverse order of the steps.
    const failedStep = run.step;
    // No runner picked the step up: the compensation would wait for nobody as long again. What the machine may hold is
    // reconciliation's (it stops a machine left running by a start that failed so).
    const compensate = !(runnerUnavailable(error) && patched(PATCHES.startWithoutRunner));
    const problems = await CancellationScope.nonCancellable(async () => {
      const found: string[] = [];
      if (routeTouched && compensate)
        await attempt(found, 'the gateway route could not be removed', () => run.run('removeRoute', { gitspaceId }));
      if (machineTouched && compensate) {
        await attempt(found, 'the machine could not be stopped', async () => {
          const stopped = await run.run('stopMachine', { spec });
          await run.run('waitForMachine', {
            spec,
            target: 'stopped',
            ...(stopped?.operation ? { operation: stopped.operation } : {}),
          });
        });
      }
      run.step = failedStep;
      if (isCancellation(error)) await controlPlane.cancelOperation({ gitspaceId, action: 'start', actor: run.actor });
      return found;
    });
    if (isCancellation(error)) throw error;
    return fail(run, error, problems);
  }
}

/** Stop: remove the route → stop the machine (its disk is kept) → stopped. */
export async function stopGitspace({ gitspaceId, actor }: LifecycleInput): Promise<void> {
  const run = await begin(gitspaceId, 'stop', actor);
  const { spec } = run;
  try {
    await run.run('removeRoute', { gitspaceId });
    const stopped = await run.run('stopMachine', { spec });
    const machine = await run.run('waitForMachine', {
      spec,
      target: 'stopped',
      ...(stopped?.operation ? { operation: stopped.operation } : {}),
    });
    await controlPlane.completeOperation({
      gitspaceId,
      action: 'stop',
      ...(machine ? { machine } : {}),
      actor: run.actor,
    });
  } catch (error) {
    if (isCancellation(error) && patched(PATCHES.cancelledStopOrDelete)) return cancelled(run, error);
    return fail(run, error);
  }
}

/** Delete: remove the route → delete the machine and its disks → deleted (the record and events stay). */
export async function deleteGitspace({ gitspaceId, actor }: LifecycleInput): Promise<void> {
  const run = await begin(gitspaceId, 'delete', actor);
  const { spec } = run;
  try {
    await run.run('removeRoute', { gitspaceId });
    const deleting = await run.run('deleteMachine', { spec });
    await run.run('waitForMachine', {
      spec,
      target: 'gone',
      ...(deleting?.operation ? { operation: deleting.operation } : {}),
    });
    await controlPlane.completeOperation({ gitspaceId, action: 'delete', actor: run.actor });
  } catch (error) {
    if (isCancellation(error) && patched(PATCHES.cancelledStopOrDelete)) return cancelled(run, error);
    if (runnerUnavailable(error) && patched(PATCHES.deleteWithoutRunner)) {
      // The record goes (its events stay); the machine, its disks and its route wait for a runner: reconciliation
      // deletes the machine of a deleted gitspace once one serves the infrastructure again.
      const warning = `${run.describe(error).message}; its machine, disks and gateway route (if any) are left for reconciliation to delete once a runner serves the infrastructure again`;
      await controlPlane.completeOperation({ gitspaceId, action: 'delete', actor: run.actor, warning });
      setCurrentDetails(`gitspace '${spec.name}' deleted; ${warning}`);
      return;
    }
    return fail(run, error);
  }
}

/** The arming's own stub: tried for a minute at most, so the start closes soon even when Temporal refuses it. */
const arming = proxyActivities<ControlPlaneActivities>({
  taskQueue: CONTROL_PLANE_TASK_QUEUE,
  startToCloseTimeout: '30s',
  scheduleToCloseTimeout: '1m',
});

/** Arms the auto-stop for this start; a failure leaves the gitspace running (the control plane re-arms at start). */
async function armAutoStop(gitspaceId: string): Promise<void> {
  try {
    await arming.armAutoStop({ gitspaceId, startRunId: workflowInfo().runId });
  } catch (error) {
    log.warn('could not arm the auto-stop', { gitspaceId, error: String(error) });
  }
}

async function attempt(problems: string[], what: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (error) {
    const reason = failureMessage(error);
    log.warn(`compensation: ${what}`, { reason });
    problems.push(`${what}: ${reason}`);
  }
}
