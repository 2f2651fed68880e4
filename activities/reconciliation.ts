import type { Logger } from '../common/logger';
import type { WorkOrderSigner } from '../common/work-order';
import { RECONCILER, type GitspaceSpec } from '../contracts/lifecycle';
import type { MachineInfo, ProviderName } from '../contracts/provider';
import type { Store } from '../db/store';
import { currentWorkflowRun } from './workflow-run';

export interface ReconciliationActivityDeps {
  store: Store;
  logger: Logger;
  /** Whether a lifecycle workflow runs for the gitspace now (asks Temporal). */
  isLifecycleRunning(gitspaceId: string): Promise<boolean>;
  /** How long a machine of an unknown gitspace is kept (stopped) before reconciliation deletes it. */
  orphanGraceSeconds: number;
  /** Signs the work order of each reconciliation run (common/work-order.ts). */
  workOrders: WorkOrderSigner;
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

/**
 * The bookkeeping of a reconciliation run: what the records say an infrastructure's machines should be, and what the
 * run did about it.
 */
export function createReconciliationActivities({
  store,
  logger,
  isLifecycleRunning,
  orphanGraceSeconds,
  workOrders,
}: ReconciliationActivityDeps) {
  return {
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
      // A machine without a gitspace id cannot be acted on by id; it is not one of ours to touch. A pooled machine the
      // warm pool keeps track of is the pool's (workflows/warm-pool.ts); one it does not is an orphan like any other.
      const pooled = new Set((await store.listWarmMachines(input.infrastructureId)).map((row) => row.key));
      const machines = [...observed.values()].filter((m) => m.gitspaceId !== '' && !pooled.has(m.gitspaceId));
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
      const { workflowId, runId } = currentWorkflowRun();
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
  };
}
