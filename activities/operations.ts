import { ApplicationFailure } from '@temporalio/activity';
import type { Logger } from '../common/logger';
import type { WorkOrderSigner } from '../common/work-order';
import {
  STARTED_OUTSIDE_THE_API,
  STEPS,
  type Actor,
  type GitspaceError,
  type GitspaceSpec,
  type GitspaceState,
  type LifecycleAction,
  type StepName,
} from '../contracts/lifecycle';
import type { MachineInfo, ProviderName } from '../contracts/provider';
import type { StateChange, Store } from '../db/store';
import { machineSpecOf } from '../db/stores/machines';
import { currentWorkflowRun } from './workflow-run';

export interface OperationActivityDeps {
  store: Store;
  logger: Logger;
  /** How long a step may wait for a runner to pick it up before the action fails with "no runner is serving…". */
  runnerPickupTimeoutSeconds: number;
  /** Signs the work order of each operation (common/work-order.ts). */
  workOrders: WorkOrderSigner;
  /**
   * Observes how long each operation took, from its request to its recorded end, once per operation (a retried
   * activity does not observe it again): the API's `gitspaces_lifecycle_duration_seconds` histogram (api/metrics.ts).
   */
  lifecycleDuration?: {
    observe(labels: { action: LifecycleAction; outcome: 'succeeded' | 'failed' | 'cancelled' }, seconds: number): void;
  };
}

/** The state a gitspace is in while an action runs, and the one it reaches when the action succeeds. */
const ACTION_STATES: Record<LifecycleAction, { during: GitspaceState; after: GitspaceState }> = {
  start: { during: 'starting', after: 'running' },
  stop: { during: 'stopping', after: 'stopped' },
  delete: { during: 'deleting', after: 'deleted' },
};

export interface BeginResult {
  spec: GitspaceSpec;
  /**
   * Who asked for this operation, as recorded on its events: the workflow passes it to every later bookkeeping step.
   * Absent in histories recorded before events named their actor.
   */
  actor?: Actor;
  /** The repository token, sealed to the infrastructure's runner key: only its runners can open it. */
  repositoryTokenSealed?: string;
  runnerPickupTimeoutSeconds: number;
  /**
   * The signed work order for this operation (common/work-order.ts), passed to every infrastructure step: the runner
   * acts only on it. Absent in histories recorded before work orders.
   */
  order?: string;
  /**
   * A start's claimed pooled machine (its warm key), signed into its order: the runner adopts it instead of making a
   * machine (db/stores/warm-pool.ts). Absent when the shape has no pool, none was ready, or the gitspace ran before.
   */
  warmMachine?: string;
}

/**
 * The actor a workflow's input claims, made safe to record: a user is looked up (its name is the database's, and a
 * user that does not exist is not believed), a workflow input without one was started outside the API. Only the API
 * starts lifecycle workflows, for a user or (a stop) for the auto-stop with the id of the request it recorded: an input
 * claiming the reconciler, an unrecorded auto-stop or an unknown actor with a reason of its own is not believed. Temporal is a courier, not an authority: whoever can start
 * workflows can claim any user, and the event says only who the input named.
 */
async function actorOf(store: Store, claimed: unknown, gitspaceId: string, action: LifecycleAction): Promise<Actor> {
  if (claimed === undefined || claimed === null) return STARTED_OUTSIDE_THE_API;
  const { type, id, requestId } = claimed as { type?: unknown; id?: unknown; requestId?: unknown };
  if (type === 'auto-stop') {
    // Believed only with a stop the watcher recorded for this very gitspace (activities/auto-stop.ts).
    const request =
      action === 'stop' && typeof requestId === 'string'
        ? await store.findAutoStopRequest(gitspaceId, requestId)
        : undefined;
    return request
      ? { type: 'auto-stop', reason: request.reason }
      : { type: 'unknown', reason: 'the workflow input names an auto-stop that was never requested' };
  }
  if (type !== 'user') return { type: 'unknown', reason: 'the workflow input names an actor that is not a user' };
  const user = typeof id === 'string' ? await store.findUserById(id) : undefined;
  return user
    ? { type: 'user', id: user.id, name: user.name }
    : { type: 'unknown', reason: 'the workflow input names a user that does not exist' };
}

/** The actor a later step of the operation was given; a workflow that passes none is recorded as unknown. */
function actorOfStep(actor: Actor | undefined): Actor {
  return actor ?? STARTED_OUTSIDE_THE_API;
}

/** What the infrastructure steps need to know of a gitspace, its infrastructure and its machine (no token). */
function specOf(
  gitspace: Awaited<ReturnType<Store['getGitspace']>>,
  infrastructure: Awaited<ReturnType<Store['getInfrastructure']>>,
  machine: Awaited<ReturnType<Store['getMachine']>>,
): GitspaceSpec {
  return {
    gitspaceId: gitspace.id,
    name: gitspace.name,
    ownerId: gitspace.ownerId,
    infrastructureId: infrastructure.id,
    infrastructureName: infrastructure.name,
    provider: infrastructure.provider as ProviderName,
    providerConfig: infrastructure.config,
    gatewayUrl: infrastructure.gatewayUrl,
    machine: machineSpecOf(machine),
    ide: gitspace.ide,
    repository: {
      url: gitspace.repositoryUrl,
      ...(gitspace.repositoryBranch ? { branch: gitspace.repositoryBranch } : {}),
      ...(gitspace.repositoryTokenRef ? { tokenRef: gitspace.repositoryTokenRef } : {}),
    },
  };
}

/**
 * The bookkeeping of one lifecycle operation: its record, the step it is on and its end (succeeded, failed or
 * cancelled), each moving the gitspace to the state that goes with it.
 */
export function createOperationActivities({
  store,
  logger,
  runnerPickupTimeoutSeconds,
  workOrders,
  lifecycleDuration,
}: OperationActivityDeps) {
  /** Records the end of this run's operation, and observes its duration when this call is the one that ended it. */
  /** Ends this run's operation and moves its gitspace to where the operation leaves it, in one transaction. */
  const endOperation = async (
    patch: { status: 'succeeded' | 'failed' | 'cancelled'; step?: null },
    gitspaceId: string,
    change: StateChange,
  ) => {
    const { runId } = currentWorkflowRun();
    const ended = await store.updateOperation(runId, patch, { gitspaceId, change });
    if (ended && lifecycleDuration) {
      const seconds = Math.max(0, (Date.now() - new Date(ended.createdAt).getTime()) / 1000);
      lifecycleDuration.observe({ action: ended.action, outcome: patch.status }, seconds);
    }
  };

  return {
    /** Records the operation, moves the gitspace to its in-progress state and returns what the steps need. */
    async beginOperation(input: { gitspaceId: string; action: LifecycleAction; actor?: Actor }): Promise<BeginResult> {
      const { workflowId, runId } = currentWorkflowRun();
      const actor = await actorOf(store, input.actor, input.gitspaceId, input.action);
      const gitspace = await store.getGitspace(input.gitspaceId);
      if (gitspace.state === 'deleted') {
        throw ApplicationFailure.nonRetryable(
          `gitspace '${gitspace.name}' is deleted; it cannot ${input.action}`,
          'InvalidTransitionError',
        );
      }
      const [infrastructure, machine] = await Promise.all([
        store.getInfrastructure(gitspace.infrastructureId),
        store.getMachine(gitspace.machineId),
      ]);
      await store.recordOperation({ gitspaceId: gitspace.id, action: input.action, workflowId, runId });
      const during = ACTION_STATES[input.action].during;
      if (gitspace.state !== during) {
        await store.changeState(gitspace.id, {
          to: during,
          actor,
          message: `${input.action} requested`,
          data: { action: input.action, workflowId, runId },
          ...(input.action === 'start' ? { lastError: null } : { url: null }),
        });
      }
      const spec = specOf(gitspace, infrastructure, machine);
      // Claimed after the gitspace is `starting`: the pool keeps a claim while its start runs.
      const warmMachine =
        input.action === 'start' && machine.warmPoolSize > 0
          ? await store.claimWarmMachine(gitspace.id, machine.id, new Date())
          : null;
      const order = await workOrders.sign({
        action: input.action,
        workflowId,
        runId,
        gitspaceId: spec.gitspaceId,
        infrastructure: spec,
        spec,
        ...(gitspace.repositoryTokenSealed ? { repositoryTokenSealed: gitspace.repositoryTokenSealed } : {}),
        ...(warmMachine ? { warmMachine } : {}),
      });
      return {
        spec,
        order,
        ...(warmMachine ? { warmMachine } : {}),
        ...(gitspace.repositoryTokenSealed ? { repositoryTokenSealed: gitspace.repositoryTokenSealed } : {}),
        runnerPickupTimeoutSeconds,
        actor,
      };
    },

    /** Records which step the operation is on, for the API and the event stream. */
    async recordStep(input: { gitspaceId: string; step: StepName; actor?: Actor }): Promise<void> {
      await store.updateOperation(currentWorkflowRun().runId, { step: input.step });
      await store.recordEvent(input.gitspaceId, {
        type: 'step',
        message: STEPS[input.step],
        data: { step: input.step },
        actor: actorOfStep(input.actor),
      });
    },

    /**
     * Marks the action done: running (with its URL), stopped or deleted. `warning`: what it could not do and left to
     * reconciliation (a delete no runner picked up), on its event. `sshHostKey`: the machine's, from a start's route.
     */
    async completeOperation(input: {
      gitspaceId: string;
      action: LifecycleAction;
      url?: string;
      machine?: MachineInfo;
      actor?: Actor;
      warning?: string;
      sshHostKey?: string;
    }): Promise<void> {
      const after = ACTION_STATES[input.action].after;
      await endOperation({ status: 'succeeded', step: null }, input.gitspaceId, {
        to: after,
        actor: actorOfStep(input.actor),
        message: input.warning ? `gitspace ${after}; ${input.warning}` : `gitspace ${after}`,
        url: input.action === 'start' ? (input.url ?? null) : null,
        lastError: null,
        ...(input.sshHostKey ? { sshHostKey: input.sshHostKey } : {}),
        data: {
          ...(input.machine ? { machine: { providerId: input.machine.providerId, disks: input.machine.disks } } : {}),
          ...(input.warning ? { warning: input.warning } : {}),
        },
      });
      if (input.warning)
        logger.warn(`gitspace ${after}, with a warning`, { gitspaceId: input.gitspaceId, warning: input.warning });
      else logger.info(`gitspace ${after}`, { gitspaceId: input.gitspaceId, action: input.action });
    },

    /**
     * Marks the action failed (or, with `status: 'cancelled'`, cancelled before it finished): the gitspace goes to
     * `error` with what a user needs to act on, and the action can be retried.
     */
    async failOperation(input: {
      gitspaceId: string;
      error: GitspaceError;
      actor?: Actor;
      status?: 'failed' | 'cancelled';
    }): Promise<void> {
      await endOperation({ status: input.status ?? 'failed' }, input.gitspaceId, {
        to: 'error',
        actor: actorOfStep(input.actor),
        message: `${input.error.action} failed at '${STEPS[input.error.step]}': ${input.error.message}`,
        url: null,
        lastError: { ...input.error },
        data: { ...input.error },
      });
      logger.warn('gitspace action failed', { gitspaceId: input.gitspaceId, ...input.error });
    },

    /** A start cancelled by a stop or delete: compensation has run, so the gitspace is stopped. */
    async cancelOperation(input: { gitspaceId: string; action: LifecycleAction; actor?: Actor }): Promise<void> {
      await endOperation({ status: 'cancelled' }, input.gitspaceId, {
        to: 'stopped',
        actor: actorOfStep(input.actor),
        message: `${input.action} cancelled; the machine is stopped`,
        url: null,
      });
    },
  };
}
