import type { Logger } from '../common/logger';
import type { InfrastructurePart, WorkOrderSigner } from '../common/work-order';
import type { MachineSpec, ProviderName } from '../contracts/provider';
import type { Store } from '../db/store';
import { machineSpecOf } from '../db/stores/machines';
import { currentWorkflowRun } from './workflow-run';

/** A run that made no progress on a pooled machine for this long died: the machine retires. */
export const WARM_MACHINE_STALE_MS = 45 * 60_000;

export interface WarmPoolActivityDeps {
  store: Store;
  logger: Logger;
  /** Signs one order per pooled machine (common/work-order.ts): the runner makes or deletes nothing without it. */
  workOrders: WorkOrderSigner;
}

/** One run's work on an infrastructure's pools: each pooled machine with the order for it. */
export interface WarmPoolWork {
  infrastructure: InfrastructurePart;
  prepare: { key: string; machine: MachineSpec; order: string }[];
  retire: { key: string; order: string }[];
}

/** The warm pools' bookkeeping (workflows/warm-pool.ts), on the control-plane queue beside the database. */
export function createWarmPoolActivities({ store, logger, workOrders }: WarmPoolActivityDeps) {
  return {
    /** What this run makes and deletes (db/stores/warm-pool.ts planWarmPool), each with its signed order. */
    async planWarmPool(input: { infrastructureId: string }): Promise<WarmPoolWork> {
      const { workflowId, runId } = currentWorkflowRun();
      const row = await store.getInfrastructure(input.infrastructureId);
      const infrastructure: InfrastructurePart = {
        infrastructureId: row.id,
        provider: row.provider as ProviderName,
        providerConfig: row.config,
      };
      const plan = await store.planWarmPool(row.id, new Date(), WARM_MACHINE_STALE_MS);
      const order = (key: string, machine?: MachineSpec) =>
        workOrders.sign({
          action: 'warm-pool',
          workflowId,
          runId,
          infrastructure,
          gitspaceId: key,
          ...(machine ? { machine } : {}),
        });
      const prepare = await Promise.all(
        plan.prepare.map(async ({ key, machine: shape }) => {
          const machine = machineSpecOf(shape);
          return { key, machine, order: await order(key, machine) };
        }),
      );
      const retire = await Promise.all(plan.retire.map(async (key) => ({ key, order: await order(key) })));
      if (prepare.length + retire.length > 0) {
        logger.info('warm pool', {
          infrastructureId: row.id,
          prepare: prepare.map((p) => p.key),
          retire: plan.retire,
        });
      }
      return { infrastructure, prepare, retire };
    },

    async warmMachineReady(input: { key: string }): Promise<void> {
      await store.warmMachineReady(input.key, new Date());
    },

    async warmMachineFailed(input: { key: string; message: string }): Promise<void> {
      logger.warn('a pooled machine could not be made; its pool backs off', input);
      await store.warmMachineFailed(input.key, new Date());
    },

    async forgetWarmMachine(input: { key: string }): Promise<void> {
      await store.forgetWarmMachine(input.key);
    },
  };
}

export type WarmPoolActivities = ReturnType<typeof createWarmPoolActivities>;
