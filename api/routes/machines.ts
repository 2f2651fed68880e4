/** The machine shapes an infrastructure offers its gitspaces. */
import type { Request } from 'express';
import { NotFoundError, InputError } from '../../common/errors';
import { WARM_POOL_PROVIDERS, type ProviderName } from '../../contracts/provider';
import type { InfrastructureRow, MachineRow } from '../../db/schema';
import type { Store } from '../../db/store';
import { machineSpecOf } from '../../db/stores/machines';
import { validateMachineSpec } from '../../providers/validation';
import { defineRoute, type RouteServices } from '../route-table';
import { CreateMachineBody, Machine, UpdateMachineBody, list } from '../schemas';
import { presentMachine } from './presenters';

/** The infrastructure `:id` and its machine `:machineId` (a machine of another infrastructure is not found). */
async function namedMachine(
  req: Request,
  store: Store,
): Promise<{ infrastructure: InfrastructureRow; machine: MachineRow }> {
  const infrastructure = await store.getInfrastructure(String(req.params.id));
  const machineId = String(req.params.machineId);
  const machine = await store.getMachine(machineId);
  if (machine.infrastructureId !== infrastructure.id) throw new NotFoundError('machine', machineId);
  return { infrastructure, machine };
}

/** A warm pool needs a provider whose machines can change owner, and a control plane that keeps pools. */
function checkWarmPool(infrastructure: InfrastructureRow, size: number | undefined, services: RouteServices): void {
  if (!size) return;
  if (!WARM_POOL_PROVIDERS.includes(infrastructure.provider as ProviderName)) {
    throw new InputError(
      `warm pools are offered on ${WARM_POOL_PROVIDERS.join(' and ')} infrastructures, not on '${infrastructure.provider}': its machines cannot be given to another gitspace`,
      [{ path: 'warmPoolSize', message: `not offered by the '${infrastructure.provider}' provider` }],
    );
  }
  if (!services.onWarmPoolChanged) throw new InputError('this control plane keeps no warm pools', []);
}

export const machineRoutes = [
  defineRoute({
    method: 'post',
    path: '/infrastructures/:id/machines',
    summary: 'Add a machine to an infrastructure',
    access: 'admin',
    body: CreateMachineBody,
    status: 201,
    response: Machine,
    handle: async ({ req, body, services }) => {
      const infrastructure = await services.store.getInfrastructure(String(req.params.id));
      validateMachineSpec(infrastructure.provider, infrastructure.config, body);
      checkWarmPool(infrastructure, body.warmPoolSize, services);
      const row = await services.store.createMachine({
        id: `${infrastructure.id}-${body.name}`,
        infrastructureId: infrastructure.id,
        name: body.name,
        machineType: body.machineType,
        diskSizeGb: body.diskSizeGb,
        region: body.region ?? null,
        zone: body.zone ?? null,
        image: body.image ?? null,
        ...(body.warmPoolSize ? { warmPoolSize: body.warmPoolSize } : {}),
      });
      if (row.warmPoolSize > 0) await services.onWarmPoolChanged!(infrastructure.id);
      return presentMachine(row);
    },
  }),
  defineRoute({
    method: 'get',
    path: '/infrastructures/:id/machines',
    summary: "List an infrastructure's machines",
    access: 'user',
    status: 200,
    response: list(Machine),
    handle: async ({ req, services }) => {
      const infrastructure = await services.store.getInfrastructure(String(req.params.id));
      const machines = await services.store.listMachines(infrastructure.id);
      const pools = await services.store.countWarmMachines(machines.map((m) => m.id));
      return { items: machines.map((machine) => presentMachine(machine, pools.get(machine.id))) };
    },
  }),
  defineRoute({
    method: 'patch',
    path: '/infrastructures/:id/machines/:machineId',
    summary:
      "Change a machine's type, disk or placement (validated like a new one): machines made from then on get it (a gitspace's first start); existing ones keep theirs",
    access: 'admin',
    body: UpdateMachineBody,
    status: 200,
    response: Machine,
    handle: async ({ req, body, services }) => {
      const { infrastructure, machine } = await namedMachine(req, services.store);
      const changed = { ...machine, ...body };
      validateMachineSpec(infrastructure.provider, infrastructure.config, machineSpecOf(changed));
      checkWarmPool(infrastructure, body.warmPoolSize, services);
      const row = await services.store.updateMachine(machine.id, body);
      if (body.warmPoolSize !== undefined) await services.onWarmPoolChanged!(infrastructure.id);
      return presentMachine(row, (await services.store.countWarmMachines([row.id])).get(row.id));
    },
  }),
  defineRoute({
    method: 'delete',
    path: '/infrastructures/:id/machines/:machineId',
    summary: 'Remove a machine no gitspace uses (409 naming those that do; deleted gitspaces do not count)',
    access: 'admin',
    status: 204,
    handle: async ({ req, services }) => {
      const { machine } = await namedMachine(req, services.store);
      await services.store.deleteMachine(machine.id);
    },
  }),
];
