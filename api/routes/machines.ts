/** The machine shapes an infrastructure offers its gitspaces. */
import type { Request } from 'express';
import { NotFoundError } from '../../common/errors';
import type { MachineSpec } from '../../contracts/provider';
import type { InfrastructureRow, MachineRow } from '../../db/schema';
import type { Store } from '../../db/store';
import { validateMachineSpec } from '../../providers/validation';
import { defineRoute } from '../route-table';
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

/** A machine row's specification, as providers validate it. */
function specOf(machine: Pick<MachineRow, 'machineType' | 'diskSizeGb' | 'region' | 'zone' | 'image'>): MachineSpec {
  return {
    machineType: machine.machineType,
    diskSizeGb: machine.diskSizeGb,
    ...(machine.region ? { region: machine.region } : {}),
    ...(machine.zone ? { zone: machine.zone } : {}),
    ...(machine.image ? { image: machine.image } : {}),
  };
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
      const row = await services.store.createMachine({
        id: `${infrastructure.id}-${body.name}`,
        infrastructureId: infrastructure.id,
        name: body.name,
        machineType: body.machineType,
        diskSizeGb: body.diskSizeGb,
        region: body.region ?? null,
        zone: body.zone ?? null,
        image: body.image ?? null,
      });
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
      return { items: (await services.store.listMachines(infrastructure.id)).map(presentMachine) };
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
      validateMachineSpec(infrastructure.provider, infrastructure.config, specOf(changed));
      const row = await services.store.updateMachine(machine.id, body);
      return presentMachine(row);
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
