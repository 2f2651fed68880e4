/**
 * The `gcp` provider (DESIGN.md §5): one Compute Engine instance per gitspace, with a persistent data disk
 * (`<name>-data`, device `gitspace-data`) that survives stop and start and goes with the instance on delete. Every
 * instance and disk carries the `gitspace-id` and installation labels; `create` finds by label first, and every
 * mutating call carries a `requestId` derived from the idempotency key, so retries and resets adopt what exists.
 *
 * Calls return once Compute accepted them, with the zone operation they started (`operation`: name and zone). The
 * provider keeps nothing in memory: the runner's step hands the operation to the workflow, the workflow to the step
 * that waits (on this runner or another), and `describe` given it checks it, so an operation that fails later, such
 * as an exhausted zone, surfaces as its error instead of a machine that never appears.
 *
 * The pieces: ./clients (building the Compute clients), ./compute (calls and finding by label), ./instance-spec (what
 * an instance is made of), ./operations (zone operation handles), ./machines (instances as machines), ./errors.
 */
// Every file that calls the SDK imports from it: that is how providers/permissions.test.ts finds the calls.
import type { protos } from '@google-cloud/compute';
import { InstanceNotFoundError, ProviderUnavailableError } from '../../contracts/provider-errors';
import type {
  AgentBootstrap,
  CreateMachineRequest,
  MachineInfo,
  Provider,
  ProviderCallOptions,
  ProviderOperation,
} from '../../contracts/provider';
import { dataDiskNameFor, deriveRequestId, machineLabelsFor, machineNameFor } from '../naming';
import { callCompute, findInstance, listDisks, listInstances, type ComputeScope, type InZone } from './compute';
import { isGcpAlreadyExists, isGcpNotFound, sdkErrorOf } from './errors';
import { instanceResourceFor, metadataWithNewAgentSecret } from './instance-spec';
import { machineInfoOf, machineStatusOf, machinesOf } from './machines';
import { operationHandle, operationStillRunning } from './operations';

// Where the runner's main and the secret store have always found them.
export {
  createGcpClients,
  gcpClientOptions,
  type GcpClientConstructorOptions,
  type GcpClientOptions,
  type GcpClients,
} from './clients';

/** The infrastructure's config, this installation's id, the Compute clients and a logger. */
export type GcpProviderOptions = ComputeScope;

/** Creates the `gcp` provider: each call below, on the infrastructure's config and clients. */
export function createGcpProvider(options: GcpProviderOptions): Provider {
  return {
    name: 'gcp',
    create: (request, callOptions) => createInstance(options, request, callOptions),
    describe: (gitspaceId, callOptions) => describeMachine(options, gitspaceId, callOptions),
    start: (gitspaceId, bootstrap, callOptions) => startInstance(options, gitspaceId, bootstrap, callOptions),
    stop: (gitspaceId, callOptions) => stopInstance(options, gitspaceId, callOptions),
    delete: (gitspaceId, callOptions) => deleteMachine(options, gitspaceId, callOptions),
    list: (callOptions) => listMachines(options, callOptions),
  };
}

/** Inserts the gitspace's instance, or adopts the one it already has. */
async function createInstance(
  scope: ComputeScope,
  request: CreateMachineRequest,
  { idempotencyKey, signal }: ProviderCallOptions,
): Promise<MachineInfo> {
  const { config, installationId, clients, logger } = scope;
  const { gitspaceId, spec } = request;
  const existing = await findInstance(scope, gitspaceId, signal);
  if (existing) {
    logger.info('adopting the instance this gitspace already has', { gitspaceId, instance: existing[1].name });
    return machineInfoOf(existing[1]);
  }
  const zone = spec.zone ?? config.zones[0] ?? '';
  const name = machineNameFor(gitspaceId);
  const instanceResource = instanceResourceFor(config, installationId, request, zone);
  try {
    const [operation] = await callCompute(scope, `insert ${name}`, signal, () =>
      clients.instances.insert({
        project: config.project,
        zone,
        requestId: deriveRequestId(`insert:${zone}/${name}`, idempotencyKey),
        instanceResource,
      }),
    );
    const handle = operationHandle('insert', zone, operation.latestResponse);
    logger.info('instance inserted', { gitspaceId, instance: name, zone, type: spec.machineType });
    return {
      gitspaceId,
      providerId: name,
      status: 'provisioning',
      disks: [dataDiskNameFor(gitspaceId)],
      labels: machineLabelsFor(gitspaceId, installationId),
      ...(handle ? { operation: handle } : {}),
    };
  } catch (error) {
    // A racing or earlier insert made it: adopt it.
    if (!isGcpAlreadyExists(sdkErrorOf(error))) throw error;
    const made = await findInstance(scope, gitspaceId, signal);
    if (made) return machineInfoOf(made[1]);
    throw error;
  }
}

/**
 * The gitspace's instance; while an insert given as `operation` runs, a machine still provisioning; when only its
 * disks are left, those, on their way out.
 */
async function describeMachine(
  scope: ComputeScope,
  gitspaceId: string,
  { signal, operation }: ProviderCallOptions,
): Promise<MachineInfo | null> {
  const op = operation && (await operationStillRunning(scope, gitspaceId, operation, signal)) ? operation : undefined;
  const found = await findInstance(scope, gitspaceId, signal);
  if (found) return machineInfoOf(found[1], op?.kind === 'delete');
  const labels = machineLabelsFor(gitspaceId, scope.installationId);
  if (op?.kind === 'insert') {
    return { gitspaceId, providerId: machineNameFor(gitspaceId), status: 'provisioning', disks: [], labels };
  }
  const leftovers = await listDisks(scope, gitspaceId, signal);
  if (leftovers.length === 0) return null;
  return {
    gitspaceId,
    providerId: machineNameFor(gitspaceId),
    status: 'deleting',
    disks: leftovers.map(([, disk]) => disk.name ?? ''),
    labels,
  };
}

/** Boots the stopped instance, with the startup script of this bootstrap. */
async function startInstance(
  scope: ComputeScope,
  gitspaceId: string,
  bootstrap: AgentBootstrap,
  { idempotencyKey, signal }: ProviderCallOptions,
): Promise<MachineInfo> {
  const { config, clients, logger } = scope;
  const found = await findInstance(scope, gitspaceId, signal);
  if (!found) throw new InstanceNotFoundError(gitspaceId, 'gcp');
  const [zone, instance] = found;
  const name = instance.name ?? '';
  const status = machineStatusOf(instance);
  if (status === 'running' || status === 'provisioning') return machineInfoOf(instance);
  if (status === 'stopping') {
    throw new ProviderUnavailableError(`instance ${name} is still stopping; try again shortly`, 'gcp');
  }
  await refreshStartupScript(scope, found, gitspaceId, bootstrap, idempotencyKey, signal);
  const [operation] = await callCompute(scope, `start ${name}`, signal, () =>
    clients.instances.start({
      project: config.project,
      zone,
      instance: name,
      requestId: deriveRequestId(`start:${zone}/${name}`, idempotencyKey),
    }),
  );
  const handle = operationHandle('start', zone, operation.latestResponse);
  logger.info('instance starting', { gitspaceId, instance: name });
  return { ...machineInfoOf(instance), status: 'provisioning', ...(handle ? { operation: handle } : {}) };
}

/** Rewrites the startup script when a restart brings a new agent secret (the script runs on every boot). */
async function refreshStartupScript(
  scope: ComputeScope,
  [zone, instance]: InZone<protos.google.cloud.compute.v1.IInstance>,
  gitspaceId: string,
  bootstrap: AgentBootstrap,
  idempotencyKey: string,
  signal: AbortSignal,
): Promise<void> {
  const { config, clients, logger } = scope;
  const items = metadataWithNewAgentSecret(config, instance, gitspaceId, bootstrap);
  if (!items) return;
  const name = instance.name ?? '';
  await callCompute(scope, `set metadata of ${name}`, signal, () =>
    clients.instances.setMetadata({
      project: config.project,
      zone,
      instance: name,
      requestId: deriveRequestId(`set-metadata:${zone}/${name}`, idempotencyKey),
      metadataResource: { fingerprint: instance.metadata?.fingerprint, items },
    }),
  );
  logger.info('startup script updated with the new agent secret', { gitspaceId, instance: name });
}

/** Stops a running or provisioning instance and keeps its disks; anything else is left as it is. */
async function stopInstance(
  scope: ComputeScope,
  gitspaceId: string,
  { idempotencyKey, signal }: ProviderCallOptions,
): Promise<ProviderOperation | void> {
  const { config, clients, logger } = scope;
  const found = await findInstance(scope, gitspaceId, signal);
  if (!found) return;
  const [zone, instance] = found;
  const name = instance.name ?? '';
  const status = machineStatusOf(instance);
  if (status !== 'running' && status !== 'provisioning') return;
  try {
    const [operation] = await callCompute(scope, `stop ${name}`, signal, () =>
      clients.instances.stop({
        project: config.project,
        zone,
        instance: name,
        requestId: deriveRequestId(`stop:${zone}/${name}`, idempotencyKey),
      }),
    );
    logger.info('instance stopping', { gitspaceId, instance: name });
    return operationHandle('stop', zone, operation.latestResponse);
  } catch (error) {
    if (!isGcpNotFound(sdkErrorOf(error))) throw error;
  }
}

/** Deletes the gitspace's instances (their disks go with them) and any disk of it attached to nothing. */
async function deleteMachine(
  scope: ComputeScope,
  gitspaceId: string,
  { idempotencyKey, signal }: ProviderCallOptions,
): Promise<ProviderOperation | void> {
  const { config, clients, logger } = scope;
  let started: ProviderOperation | undefined;
  for (const [zone, instance] of await listInstances(scope, gitspaceId, signal)) {
    const name = instance.name ?? '';
    try {
      const [operation] = await callCompute(scope, `delete ${name}`, signal, () =>
        clients.instances.delete({
          project: config.project,
          zone,
          instance: name,
          requestId: deriveRequestId(`delete:${zone}/${name}`, idempotencyKey),
        }),
      );
      started = operationHandle('delete', zone, operation.latestResponse) ?? started;
      logger.info('instance deleting', { gitspaceId, instance: name });
    } catch (error) {
      if (!isGcpNotFound(sdkErrorOf(error))) throw error;
    }
  }
  // Disks attached to nothing (left by a failed insert, or detached by hand) go too; attached ones go with their
  // instance (autoDelete).
  for (const [zone, disk] of await listDisks(scope, gitspaceId, signal)) {
    const name = disk.name ?? '';
    if ((disk.users ?? []).length > 0) continue;
    try {
      await callCompute(scope, `delete disk ${name}`, signal, () =>
        clients.disks.delete({
          project: config.project,
          zone,
          disk: name,
          requestId: deriveRequestId(`delete-disk:${zone}/${name}`, idempotencyKey),
        }),
      );
      logger.info('disk deleting', { gitspaceId, disk: name });
    } catch (error) {
      if (!isGcpNotFound(sdkErrorOf(error))) throw error;
    }
  }
  return started;
}

/** Every machine of this installation: its instances, and the disks of gitspaces whose instance is gone. */
async function listMachines(scope: ComputeScope, { signal }: ProviderCallOptions): Promise<MachineInfo[]> {
  const instances = await listInstances(scope, undefined, signal);
  return machinesOf(instances, await listDisks(scope, undefined, signal));
}
