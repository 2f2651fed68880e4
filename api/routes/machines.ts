/** The machine shapes an infrastructure offers its gitspaces. */
import { validateMachineSpec } from '../../providers/validation';
import { defineRoute } from '../route-table';
import { CreateMachineBody, Machine, list } from '../schemas';
import { presentMachine } from './presenters';

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
];
