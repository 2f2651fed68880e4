import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Logger } from '../common/logger';
import {
  RECONCILER,
  STARTED_OUTSIDE_THE_API,
  STEPS,
  type Actor,
  type GitspaceError,
  type GitspaceSpec,
  type GitspaceState,
  type LifecycleAction,
  type StepName,
} from '../contracts/lifecycle';
import type { WorkOrderSigner } from '../common/work-order';
import type { Store } from '../db/store';
import type { MachineInfo, ProviderName } from '../contracts/provider';

export interface ControlPlaneActivityDeps {
  store: Store;
  logger: Logger;
  /** How long a step may wait for a runner to pick it up before the action fails with "no runner is serving…". */
  runnerPickupTimeoutSeconds: number;
  /** Whether a lifecycle workflow runs for the gitspace now (asks Temporal). */
  isLifecycleRunning(gitspaceId: string): Promise<boolean>;
  /** How long a machine of an unknown gitspace is kept (stopped) before reconciliation deletes it. */
  orphanGraceSeconds: number;
  /** Signs the work order of each operation and reconciliation run (common/work-order.ts). */
  workOrders: WorkOrderSigner;
  /**
   * Observes how long each operation took, from its request to its recorded end, once per operation (a retried
   * activity does not observe it again): the API's `gitspaces_lifecycle_duration_seconds` histogram (api/metrics.ts).
   */
  lifecycleDuration?: {
    observe(labels: { action: LifecycleAction; outcome: 'succeeded' | 'failed' | 'cancelled' }, seconds: number): void;
  };
}

/** What a reconciliation found to repair, by gitspace id. */
export interface ReconcilePlan {
  /** Machines to stop: their gitspace is stopped, or unknown to this control plane and still in its grace period. */
  stopMachines: string[];
  /** Machines to delete: their gitspace is deleted, or has been unknown for longer than the grace period. */
  deleteMachines: string[];
  /** Routes to remove: their gitspace was running but its machine is not. */
  removeRoutes: string[];
  /** Machines of unknown gitspaces kept (stopped) until their grace period ends. */
  awaitingGrace: string[];
  /**
   * The signed order for these repairs, bound to this reconciliation run and to the gitspaces named above: the runner
   * acts on nothing else. Absent in histories recorded before work orders.
   */
  order?: string;
}

/** What a reconciliation run did, by gitspace id: the reconcile workflow's result. */
export interface ReconcileResult {
  observed: number;
  stopped: string[];
  deleted: string[];
  routesRemoved: string[];
  awaitingGrace: string[];
  /** Repairs that failed even after their retries; the next run tries again. */
  failed: { gitspaceId: string; action: 'stop' | 'delete' | 'removeRoute'; message: string }[];
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
}

/**
 * Bookkeeping activities: they run on the control-plane task queue, next to the database, and are the only code in
 * a lifecycle that writes gitspace state.
 */
export function createControlPlaneActivities({
  store,
  logger,
  runnerPickupTimeoutSeconds,
  isLifecycleRunning,
  orphanGraceSeconds,
  workOrders,
  lifecycleDuration,
}: ControlPlaneActivityDeps) {
  const currentRun = () => {
    const execution = Context.current().info.workflowExecution;
    if (!execution)
      throw ApplicationFailure.nonRetryable(
        'bookkeeping activities run only inside a lifecycle workflow',
        'MisuseError',
      );
    return execution;
  };

  /**
   * The actor a workflow's input claims, made safe to record: a user is looked up (its name is the database's, and a
   * user that does not exist is not believed), a workflow input without one was started outside the API. Only the API
   * starts lifecycle workflows, and always for a user: an input claiming the reconciler, the auto-stop or an unknown
   * actor with a reason of its own is not believed either. Temporal is a courier, not an authority: whoever can start
   * workflows can claim any user, and the event says only who the input named.
   */
  const actorOf = async (claimed: unknown): Promise<Actor> => {
    if (claimed === undefined || claimed === null) return STARTED_OUTSIDE_THE_API;
    const { type, id } = claimed as { type?: unknown; id?: unknown };
    if (type !== 'user') return { type: 'unknown', reason: 'the workflow input names an actor that is not a user' };
    const user = typeof id === 'string' ? await store.findUserById(id) : undefined;
    return user
      ? { type: 'user', id: user.id, name: user.name }
      : { type: 'unknown', reason: 'the workflow input names a user that does not exist' };
  };
  /** Records the end of this run's operation, and observes its duration when this call is the one that ended it. */
  const endOperation = async (patch: { status: 'succeeded' | 'failed' | 'cancelled'; step?: null }) => {
    const { runId } = currentRun();
    const ended = await store.updateOperation(runId, patch);
    if (ended && lifecycleDuration) {
      const seconds = Math.max(0, (Date.now() - new Date(ended.createdAt).getTime()) / 1000);
      lifecycleDuration.observe({ action: ended.action, outcome: patch.status }, seconds);
    }
  };
  /** The actor a later step of the operation was given; a workflow that passes none is recorded as unknown. */
  const actorOfStep = (actor: Actor | undefined): Actor => actor ?? STARTED_OUTSIDE_THE_API;

  return {
    /** Records the operation, moves the gitspace to its in-progress state and returns what the steps need. */
    async beginOperation(input: { gitspaceId: string; action: LifecycleAction; actor?: Actor }): Promise<BeginResult> {
      const { workflowId, runId } = currentRun();
      const actor = await actorOf(input.actor);
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
      const spec: GitspaceSpec = {
        gitspaceId: gitspace.id,
        name: gitspace.name,
        ownerId: gitspace.ownerId,
        infrastructureId: infrastructure.id,
        infrastructureName: infrastructure.name,
        provider: infrastructure.provider as ProviderName,
        providerConfig: infrastructure.config,
        gatewayUrl: infrastructure.gatewayUrl,
        machine: {
          machineType: machine.machineType,
          diskSizeGb: machine.diskSizeGb,
          ...(machine.region ? { region: machine.region } : {}),
          ...(machine.zone ? { zone: machine.zone } : {}),
          ...(machine.image ? { image: machine.image } : {}),
        },
        ide: gitspace.ide,
        repository: {
          url: gitspace.repositoryUrl,
          ...(gitspace.repositoryBranch ? { branch: gitspace.repositoryBranch } : {}),
          ...(gitspace.repositoryTokenRef ? { tokenRef: gitspace.repositoryTokenRef } : {}),
        },
      };
      const order = await workOrders.sign({
        action: input.action,
        workflowId,
        runId,
        gitspaceId: spec.gitspaceId,
        infrastructure: spec,
        spec,
        ...(gitspace.repositoryTokenSealed ? { repositoryTokenSealed: gitspace.repositoryTokenSealed } : {}),
      });
      return {
        spec,
        order,
        ...(gitspace.repositoryTokenSealed ? { repositoryTokenSealed: gitspace.repositoryTokenSealed } : {}),
        runnerPickupTimeoutSeconds,
        actor,
      };
    },

    /** Records which step the operation is on, for the API and the event stream. */
    async recordStep(input: { gitspaceId: string; step: StepName; actor?: Actor }): Promise<void> {
      await store.updateOperation(currentRun().runId, { step: input.step });
      await store.recordEvent(input.gitspaceId, {
        type: 'step',
        message: STEPS[input.step],
        data: { step: input.step },
        actor: actorOfStep(input.actor),
      });
    },

    /**
     * Marks the action done: running (with its URL), stopped or deleted. `warning`: what it could not do and left to
     * reconciliation (a delete no runner picked up), on its event.
     */
    async completeOperation(input: {
      gitspaceId: string;
      action: LifecycleAction;
      url?: string;
      machine?: MachineInfo;
      actor?: Actor;
      warning?: string;
    }): Promise<void> {
      const after = ACTION_STATES[input.action].after;
      await store.changeState(input.gitspaceId, {
        to: after,
        actor: actorOfStep(input.actor),
        message: input.warning ? `gitspace ${after}; ${input.warning}` : `gitspace ${after}`,
        url: input.action === 'start' ? (input.url ?? null) : null,
        lastError: null,
        data: {
          ...(input.machine ? { machine: { providerId: input.machine.providerId, disks: input.machine.disks } } : {}),
          ...(input.warning ? { warning: input.warning } : {}),
        },
      });
      await endOperation({ status: 'succeeded', step: null });
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
      await store.changeState(input.gitspaceId, {
        to: 'error',
        actor: actorOfStep(input.actor),
        message: `${input.error.action} failed at '${STEPS[input.error.step]}': ${input.error.message}`,
        url: null,
        lastError: { ...input.error },
        data: { ...input.error },
      });
      await endOperation({ status: input.status ?? 'failed' });
      logger.warn('gitspace action failed', { gitspaceId: input.gitspaceId, ...input.error });
    },

    /**
     * Compares what the runner observed with the records and makes the records true: a gitspace recorded running
     * whose machine is not becomes stopped; one left in a transitional state by a workflow that no longer runs
     * (terminated from the Web UI) goes to error. Returns the machine repairs for the runner: a machine of a deleted
     * gitspace is deleted; one of an unknown gitspace is stopped at once and deleted only once it has been seen
     * orphaned for the grace period (it may belong to records restored from an older backup, and its disk is work).
     */
    async reconcile(input: { infrastructureId: string; machines: MachineInfo[] }): Promise<ReconcilePlan> {
      const plan: ReconcilePlan = { stopMachines: [], deleteMachines: [], removeRoutes: [], awaitingGrace: [] };
      const gitspaces = await store.listGitspaces({ infrastructureId: input.infrastructureId });
      const byId = new Map(gitspaces.map((g) => [g.id, g]));
      const observed = new Map(input.machines.map((m) => [m.gitspaceId, m]));
      for (const gitspace of gitspaces) {
        const machine = observed.get(gitspace.id);
        if (gitspace.state === 'running' && machine?.status !== 'running') {
          const changed = await store
            .changeState(gitspace.id, {
              to: 'stopped',
              actor: RECONCILER,
              allowedFrom: ['running'],
              url: null,
              message: `the machine was found ${machine ? machine.status : 'missing'} (host restart or crash); start the gitspace again`,
              data: { reconciled: true },
            })
            .then(
              () => true,
              () => false,
            );
          if (changed) plan.removeRoutes.push(gitspace.id);
        } else if (
          ['starting', 'stopping', 'deleting'].includes(gitspace.state) &&
          !(await isLifecycleRunning(gitspace.id))
        ) {
          await store
            .changeState(gitspace.id, {
              to: 'error',
              actor: RECONCILER,
              allowedFrom: [gitspace.state],
              url: null,
              lastError: {
                action: gitspace.state === 'starting' ? 'start' : gitspace.state === 'stopping' ? 'stop' : 'delete',
                step: 'finish',
                message: 'the operation ended without finishing (was its workflow terminated?); retry it',
                cause: 'OperationAbandonedError',
              },
              message: 'the operation ended without finishing; retry it',
            })
            .catch(() => undefined);
        }
      }
      // A machine without a gitspace id cannot be acted on by id; it is not one of ours to touch.
      const machines = [...observed.values()].filter((m) => m.gitspaceId !== '');
      const now = new Date();
      const unknown = machines.filter((m) => !byId.has(m.gitspaceId)).map((m) => m.gitspaceId);
      const firstSeen = await store.trackOrphanMachines(input.infrastructureId, unknown, now);
      for (const machine of machines) {
        const gitspace = byId.get(machine.gitspaceId);
        const live = machine.status === 'running' || machine.status === 'provisioning';
        if (gitspace?.state === 'deleted') {
          plan.deleteMachines.push(machine.gitspaceId);
          // Deleted while no runner served the infrastructure: its route may be left at the gateway too.
          if (!plan.removeRoutes.includes(machine.gitspaceId)) plan.removeRoutes.push(machine.gitspaceId);
        } else if (!gitspace) {
          const seenFor = now.getTime() - (firstSeen.get(machine.gitspaceId) ?? now).getTime();
          if (seenFor >= orphanGraceSeconds * 1000) plan.deleteMachines.push(machine.gitspaceId);
          else {
            if (live) plan.stopMachines.push(machine.gitspaceId);
            plan.awaitingGrace.push(machine.gitspaceId);
          }
        } else if (machine.status === 'running' && gitspace.state === 'stopped') {
          plan.stopMachines.push(machine.gitspaceId);
        } else if (
          live &&
          gitspace.state === 'error' &&
          gitspace.lastError?.action === 'start' &&
          gitspace.lastError?.cause === 'RunnerUnavailableError'
        ) {
          // A start no runner picked a step of up skips its compensation: the machine it may have booted is stopped here.
          plan.stopMachines.push(machine.gitspaceId);
        }
      }
      if (plan.stopMachines.length + plan.deleteMachines.length + plan.removeRoutes.length > 0) {
        logger.info('reconciliation repairs', { infrastructureId: input.infrastructureId, ...plan });
      }
      const { workflowId, runId } = currentRun();
      const infrastructure = await store.getInfrastructure(input.infrastructureId);
      plan.order = await workOrders.sign({
        action: 'reconcile',
        workflowId,
        runId,
        infrastructure: {
          infrastructureId: infrastructure.id,
          provider: infrastructure.provider as ProviderName,
          providerConfig: infrastructure.config,
        },
        targets: { removeRoute: plan.removeRoutes, stopMachine: plan.stopMachines, deleteMachine: plan.deleteMachines },
      });
      return plan;
    },

    /**
     * Records what a reconciliation run did: an event on every gitspace that exists and was acted on, and the
     * running totals that GET /metrics reports. Once per workflow run, however often this activity is retried.
     */
    async recordReconciliation(input: {
      infrastructureId: string;
      runId: string;
      result: ReconcileResult;
    }): Promise<void> {
      const { infrastructureId, runId, result } = input;
      const existing = new Map(
        (await store.listGitspaces({ infrastructureId })).map((gitspace) => [gitspace.id, gitspace]),
      );
      const acted: [string, string][] = [
        ...result.stopped.map((id): [string, string] => [id, 'stopped a machine that should not run']),
        ...result.deleted.map((id): [string, string] => [id, 'deleted a leftover machine and its disks']),
        ...result.failed.map((f): [string, string] => [f.gitspaceId, `could not ${f.action}: ${f.message}`]),
      ];
      const events = acted.flatMap(([gitspaceId, what]) => {
        const gitspace = existing.get(gitspaceId);
        return gitspace ? [{ gitspaceId, message: `reconciliation ${what} (the gitspace is ${gitspace.state})` }] : [];
      });
      const recorded = await store.recordReconcileRun({
        runId,
        infrastructureId,
        counts: {
          runs: 1,
          machinesStopped: result.stopped.length,
          machinesDeleted: result.deleted.length,
          routesRemoved: result.routesRemoved.length,
          actionsFailed: result.failed.length,
        },
        events,
        actor: RECONCILER,
        at: new Date(),
      });
      if (recorded && result.failed.length > 0) logger.warn('reconciliation could not repair everything', { ...input });
    },

    /** The provider and config of an infrastructure, for a reconciliation run. */
    async describeInfrastructure(input: {
      infrastructureId: string;
    }): Promise<Pick<GitspaceSpec, 'infrastructureId' | 'provider' | 'providerConfig'>> {
      const infrastructure = await store.getInfrastructure(input.infrastructureId);
      return {
        infrastructureId: infrastructure.id,
        provider: infrastructure.provider as ProviderName,
        providerConfig: infrastructure.config,
      };
    },

    /** A start cancelled by a stop or delete: compensation has run, so the gitspace is stopped. */
    async cancelOperation(input: { gitspaceId: string; action: LifecycleAction; actor?: Actor }): Promise<void> {
      await store.changeState(input.gitspaceId, {
        to: 'stopped',
        actor: actorOfStep(input.actor),
        message: `${input.action} cancelled; the machine is stopped`,
        url: null,
      });
      await endOperation({ status: 'cancelled' });
    },
  };
}

export type ControlPlaneActivities = ReturnType<typeof createControlPlaneActivities>;
