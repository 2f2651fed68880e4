/** Infrastructures: where gitspaces run, each served by its runners. */
import { validateInfrastructureConfig } from '../../providers/validation';
import { defineRoute } from '../route-table';
import { RUNNER_CONTRACT_VERSION_NEEDED } from '../runners';
import {
  CreateInfrastructureBody,
  Infrastructure,
  InfrastructureWithRunners,
  UpdateInfrastructureBody,
  list,
} from '../schemas';
import { autoStopColumns } from './auto-stop';
import { presentInfrastructure } from './presenters';

export const infrastructureRoutes = [
  defineRoute({
    method: 'post',
    path: '/infrastructures',
    summary: 'Register an infrastructure',
    access: 'admin',
    body: CreateInfrastructureBody,
    status: 201,
    response: Infrastructure,
    handle: async ({ body, services }) => {
      const config = validateInfrastructureConfig(body.provider, body.config, services);
      const row = await services.store.createInfrastructure({
        id: body.name,
        name: body.name,
        provider: body.provider,
        config,
        gatewayUrl: body.gatewayUrl,
        ...(body.runnerPublicKeys ? { runnerPublicKeys: body.runnerPublicKeys } : {}),
        ...autoStopColumns(body.autoStop, services, 'autoStop'),
      });
      await services.onInfrastructureCreated(row.id);
      return presentInfrastructure(row);
    },
  }),
  defineRoute({
    method: 'get',
    path: '/infrastructures',
    summary: 'List infrastructures',
    access: 'user',
    status: 200,
    response: list(Infrastructure),
    handle: async ({ services }) => {
      const [rows, sealed] = await Promise.all([
        services.store.listInfrastructures(),
        services.store.countSealedTokens(),
      ]);
      return { items: rows.map((row) => presentInfrastructure(row, sealed.get(row.id))) };
    },
  }),
  defineRoute({
    method: 'get',
    path: '/infrastructures/:id',
    summary: 'Get an infrastructure, with the runners polling it and their versions',
    access: 'user',
    status: 200,
    response: InfrastructureWithRunners,
    handle: async ({ req, services }) => {
      const id = String(req.params.id);
      const [row, sealed] = await Promise.all([
        services.store.getInfrastructure(id),
        services.store.countSealedTokens(id),
      ]);
      // Temporal down must not make the infrastructure unreadable: its runners are then left out.
      const runners = await services.runners?.(row.id).catch((error: unknown) => {
        services.logger.warn('could not list the runners of an infrastructure', {
          infrastructureId: row.id,
          error: error instanceof Error ? error.message : String(error),
        });
        return undefined;
      });
      return {
        ...presentInfrastructure(row, sealed.get(row.id)),
        runnerContractVersion: RUNNER_CONTRACT_VERSION_NEEDED,
        ...(runners || !services.runners ? { runners: runners ?? [] } : {}),
      };
    },
  }),
  defineRoute({
    method: 'patch',
    path: '/infrastructures/:id',
    summary: 'Change an infrastructure',
    access: 'admin',
    body: UpdateInfrastructureBody,
    status: 200,
    response: Infrastructure,
    handle: async ({ req, body, services }) => {
      const { store } = services;
      const current = await store.getInfrastructure(String(req.params.id));
      const config =
        body.config === undefined ? undefined : validateInfrastructureConfig(current.provider, body.config, services);
      const row = await store.updateInfrastructure(current.id, {
        ...(config !== undefined ? { config } : {}),
        ...(body.gatewayUrl !== undefined ? { gatewayUrl: body.gatewayUrl } : {}),
        ...(body.runnerPublicKeys !== undefined ? { runnerPublicKeys: body.runnerPublicKeys } : {}),
        ...autoStopColumns(body.autoStop, services, 'autoStop'),
      });
      // Its running gitspaces' watchers take a new default at once, as after a gitspace's own change.
      if (body.autoStop && services.autoStop) {
        const running = await store.listGitspaces({ infrastructureId: row.id, states: ['running'] });
        await Promise.all(running.map((gitspace) => services.autoStop!.recheck(gitspace.id)));
      }
      return presentInfrastructure(row, (await store.countSealedTokens(row.id)).get(row.id));
    },
  }),
  defineRoute({
    method: 'delete',
    path: '/infrastructures/:id',
    summary: 'Remove an infrastructure no gitspace uses',
    access: 'admin',
    status: 204,
    handle: async ({ req, services }) => {
      const id = String(req.params.id);
      await services.store.deleteInfrastructure(id);
      await services.onInfrastructureDeleted?.(id);
    },
  }),
];
