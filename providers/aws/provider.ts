/**
 * The `aws` provider (DESIGN.md §5): one EC2 instance per gitspace with an EBS data volume (mapped as /dev/sdf) that
 * survives stop and start and goes with the instance on terminate. Every resource carries the `gitspace-id` and
 * installation tags; `create` finds by tag first, so a retried or reset start adopts the instance it already made
 * (the `ClientToken` alone is not enough: moto, for one, ignores it). A warm pool's instance, made under a warm key in
 * place of a gitspace id, is given to a gitspace by re-tagging it (`adopt`).
 *
 * The pieces: ./ec2 (the client, calls and finding by tag), ./instance-spec (what an instance is made of), ./machines
 * (instances and volumes as machines), ./errors.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateTagsCommand,
  DeleteVolumeCommand,
  DescribeInstanceAttributeCommand,
  ModifyInstanceAttributeCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
  type Tag,
} from '@aws-sdk/client-ec2';
import { InstanceNotFoundError, ProviderUnavailableError } from '../../contracts/provider-errors';
import type {
  AgentBootstrap,
  CreateMachineRequest,
  MachineInfo,
  Provider,
  ProviderCallOptions,
} from '../../contracts/provider';
import { agentSecretIn } from '../bootstrap';
import { MACHINE_LABELS, machineNameFor } from '../naming';
import { callEc2, findInstance, findInstances, findVolumes, type Ec2Scope } from './ec2';
import { isAwsNotFound } from './errors';
import { resolveImageId, runInstancesInputFor, userDataFor } from './instance-spec';
import { leftoverInfo, machineInfoOf, machineStatusOf, machinesOf } from './machines';

// Where the runner's main has always found them.
export { createEc2Client, type Ec2ClientOptions } from './ec2';

/** The infrastructure's config, this installation's id, the EC2 client and a logger. */
export type AwsProviderOptions = Ec2Scope;

/** Creates the `aws` provider: each call below, on the infrastructure's config and client. */
export function createAwsProvider(options: AwsProviderOptions): Provider {
  return {
    name: 'aws',
    create: (request, callOptions) => createInstance(options, request, callOptions),
    describe: (gitspaceId, callOptions) => describeMachine(options, gitspaceId, callOptions),
    start: (gitspaceId, bootstrap, callOptions) => startInstance(options, gitspaceId, bootstrap, callOptions),
    stop: (gitspaceId, callOptions) => stopInstance(options, gitspaceId, callOptions),
    delete: (gitspaceId, callOptions) => deleteMachine(options, gitspaceId, callOptions),
    list: (callOptions) => listMachines(options, callOptions),
    adopt: (warmKey, gitspaceId, callOptions) => adoptPooledInstance(options, warmKey, gitspaceId, callOptions),
  };
}

/** Launches the gitspace's instance, or adopts the one it already has. */
async function createInstance(
  scope: Ec2Scope,
  request: CreateMachineRequest,
  { idempotencyKey, signal }: ProviderCallOptions,
): Promise<MachineInfo> {
  const { ec2, logger } = scope;
  const { gitspaceId, spec } = request;
  const existing = await findInstance(scope, gitspaceId, signal);
  if (existing) {
    logger.info('adopting the instance this gitspace already has', { gitspaceId, instanceId: existing.InstanceId });
    return machineInfoOf(existing);
  }
  const imageId = await resolveImageId(scope, spec.image, signal);
  const input = runInstancesInputFor(scope, request, imageId, idempotencyKey);
  const result = await callEc2(signal, (abortSignal) => ec2.send(new RunInstancesCommand(input), { abortSignal }));
  const instance = result.Instances?.[0];
  if (!instance) throw new ProviderUnavailableError('RunInstances answered without an instance', 'aws');
  logger.info('instance created', { gitspaceId, instanceId: instance.InstanceId, type: spec.machineType });
  return machineInfoOf(instance);
}

/** The gitspace's instance; when only its volumes are left, those, on their way out. */
async function describeMachine(
  scope: Ec2Scope,
  gitspaceId: string,
  { signal }: ProviderCallOptions,
): Promise<MachineInfo | null> {
  const instance = await findInstance(scope, gitspaceId, signal);
  if (instance) return machineInfoOf(instance);
  const volumes = await findVolumes(scope, gitspaceId, signal);
  return volumes.length > 0 ? leftoverInfo(gitspaceId, volumes) : null;
}

/** Boots the stopped instance, with the user data of this bootstrap. */
async function startInstance(
  scope: Ec2Scope,
  gitspaceId: string,
  bootstrap: AgentBootstrap,
  { signal }: ProviderCallOptions,
): Promise<MachineInfo> {
  const { ec2, logger } = scope;
  const instance = await findInstance(scope, gitspaceId, signal);
  const state = instance?.State?.Name;
  const instanceId = instance?.InstanceId;
  if (!instance || !instanceId || state === 'shutting-down') throw new InstanceNotFoundError(gitspaceId, 'aws');
  if (state === 'pending' || state === 'running') return machineInfoOf(instance);
  if (state === 'stopping') {
    throw new ProviderUnavailableError(`instance ${instanceId} is still stopping; try again shortly`, 'aws');
  }
  await refreshUserData(scope, instanceId, gitspaceId, bootstrap, signal);
  const result = await callEc2(signal, (abortSignal) =>
    ec2.send(new StartInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal }),
  );
  const current = result.StartingInstances?.[0]?.CurrentState?.Name ?? 'pending';
  logger.info('instance starting', { gitspaceId, instanceId });
  return { ...machineInfoOf(instance), status: machineStatusOf(current) ?? 'provisioning' };
}

/** Rewrites the user data when a restart brings a new agent secret (the instance is stopped, as EC2 requires). */
async function refreshUserData(
  { config, ec2, logger }: Ec2Scope,
  instanceId: string,
  gitspaceId: string,
  bootstrap: AgentBootstrap,
  signal: AbortSignal,
): Promise<void> {
  const current = await callEc2(signal, (abortSignal) =>
    ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'userData' }), {
      abortSignal,
    }),
  );
  const existing = current.UserData?.Value ? Buffer.from(current.UserData.Value, 'base64').toString() : '';
  if (agentSecretIn(existing) === bootstrap.agentSecret) return;
  const encoded = Buffer.from(userDataFor(config, gitspaceId, bootstrap)).toString('base64');
  // EC2 wants the base64 text as the attribute's bytes; the SDK encodes those bytes once more on the wire.
  await callEc2(signal, (abortSignal) =>
    ec2.send(
      new ModifyInstanceAttributeCommand({ InstanceId: instanceId, UserData: { Value: Buffer.from(encoded) } }),
      { abortSignal },
    ),
  );
  logger.info('user data updated with the new agent secret', { gitspaceId, instanceId });
}

/** Stops a pending or running instance and keeps its volume; anything else is left as it is. */
async function stopInstance(scope: Ec2Scope, gitspaceId: string, { signal }: ProviderCallOptions): Promise<void> {
  const { ec2, logger } = scope;
  const instance = await findInstance(scope, gitspaceId, signal);
  const state = instance?.State?.Name;
  const instanceId = instance?.InstanceId;
  if (!instanceId || (state !== 'pending' && state !== 'running')) return;
  try {
    await callEc2(signal, (abortSignal) =>
      ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal }),
    );
  } catch (error) {
    if (!isAwsNotFound(error)) throw error;
  }
  logger.info('instance stopping', { gitspaceId, instanceId });
}

/** Terminates the gitspace's instances (their volumes go with them) and deletes any volume of it attached to nothing. */
async function deleteMachine(scope: Ec2Scope, gitspaceId: string, { signal }: ProviderCallOptions): Promise<void> {
  const { ec2, logger } = scope;
  for (const instance of await findInstances(scope, gitspaceId, signal)) {
    const instanceId = instance.InstanceId;
    if (!instanceId || instance.State?.Name === 'shutting-down') continue;
    try {
      await callEc2(signal, (abortSignal) =>
        ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal }),
      );
      logger.info('instance terminating', { gitspaceId, instanceId });
    } catch (error) {
      if (!isAwsNotFound(error)) throw error;
    }
  }
  // Volumes not attached to anything (left by a failed launch, or detached by hand) go too; attached ones go with
  // their instance (DeleteOnTermination).
  for (const volume of await findVolumes(scope, gitspaceId, signal)) {
    const volumeId = volume.VolumeId;
    if (volume.State !== 'available' || !volumeId) continue;
    try {
      await callEc2(signal, (abortSignal) =>
        ec2.send(new DeleteVolumeCommand({ VolumeId: volumeId }), { abortSignal }),
      );
      logger.info('volume deleted', { gitspaceId, volumeId });
    } catch (error) {
      if (!isAwsNotFound(error)) throw error;
    }
  }
}

/** Every machine of this installation: its instances, and the volumes of gitspaces whose instance is gone. */
async function listMachines(scope: Ec2Scope, { signal }: ProviderCallOptions): Promise<MachineInfo[]> {
  const instances = await findInstances(scope, undefined, signal);
  return machinesOf(instances, await findVolumes(scope, undefined, signal));
}

/**
 * Gives the pooled instance made under `warmKey` to the gitspace: CreateTags sets the `gitspace-id` and `Name` tags of
 * the instance, then of its volumes (the installation tag stays), so every call that finds by tag finds it under the
 * gitspace and none under the warm key.
 *
 * Why it is safe: the instance goes first because `describe` answers from it (its disks are its block device
 * mappings, not found by tag), so from the first CreateTags on, the gitspace has its whole machine; the warm key keeps
 * at most volumes attached to that instance, which a `delete(warmKey)` leaves alone (it deletes only unattached ones).
 * A retry after a partial re-tag finds the gitspace's instance and moves the volumes attached to it that still carry
 * the warm key; for a gitspace that had its own machine there are none, so nothing else is touched. CreateTags only
 * sets values, so repeating it changes nothing; and should a retry meet EC2's lagging tag filters and still see the
 * instance under the warm key, it re-tags the same resources with the same values.
 */
async function adoptPooledInstance(
  scope: Ec2Scope,
  warmKey: string,
  gitspaceId: string,
  { signal }: ProviderCallOptions,
): Promise<MachineInfo | null> {
  const own = await findInstance(scope, gitspaceId, signal);
  if (own) {
    await moveAttachedVolumes(scope, warmKey, gitspaceId, own, signal);
    return machineInfoOf(own);
  }
  const leftovers = await findVolumes(scope, gitspaceId, signal);
  if (leftovers.length > 0) return leftoverInfo(gitspaceId, leftovers);

  const pooled = await findInstance(scope, warmKey, signal);
  const instanceId = pooled?.InstanceId;
  if (!pooled || !instanceId || pooled.State?.Name === 'shutting-down') return null;
  const tags = gitspaceTagsFor(gitspaceId);
  try {
    await createTags(scope, [instanceId], tags, signal);
  } catch (error) {
    if (isAwsNotFound(error)) return null;
    throw error;
  }
  await moveAttachedVolumes(scope, warmKey, gitspaceId, pooled, signal);
  scope.logger.info('pooled instance adopted', { gitspaceId, warmKey, instanceId });
  return untilFoundByTag(scope, gitspaceId, instanceId, signal);
}

/** How long adopt waits for EC2's tag filters to show a re-tagged instance under its new gitspace id. */
const TAG_VISIBLE_WITHIN_MS = 30_000;

/**
 * Returns the re-tagged instance once a tag filter finds it under the gitspace: EC2's filters are eventually
 * consistent, and every later call (start, describe) finds machines by tag, so an adopt that returned before would
 * have the start that follows fail with InstanceNotFoundError. Not visible in time: ProviderUnavailableError (the
 * step is retried, and a retry's adopt finds the instance under one tag or the other).
 */
async function untilFoundByTag(
  scope: Ec2Scope,
  gitspaceId: string,
  instanceId: string,
  signal: AbortSignal,
): Promise<MachineInfo> {
  const deadline = Date.now() + TAG_VISIBLE_WITHIN_MS;
  for (;;) {
    const found = await findInstance(scope, gitspaceId, signal);
    if (found?.InstanceId === instanceId) return machineInfoOf(found);
    if (Date.now() > deadline) {
      throw new ProviderUnavailableError(
        `instance ${instanceId} was re-tagged for gitspace '${gitspaceId}' but EC2 does not list it under that tag yet`,
        'aws',
      );
    }
    await sleep(1000, undefined, { signal });
  }
}

/** Re-tags the volumes attached to `instance` that still carry the warm key with the gitspace's tags. */
async function moveAttachedVolumes(
  scope: Ec2Scope,
  warmKey: string,
  gitspaceId: string,
  instance: Instance,
  signal: AbortSignal,
): Promise<void> {
  const volumeIds = (await findVolumes(scope, warmKey, signal))
    .filter((volume) => volume.Attachments?.some((attachment) => attachment.InstanceId === instance.InstanceId))
    .flatMap((volume) => (volume.VolumeId ? [volume.VolumeId] : []));
  if (volumeIds.length > 0) await createTags(scope, volumeIds, gitspaceTagsFor(gitspaceId), signal);
}

/** The tags that name a resource's gitspace (the installation tag is set once, at launch). */
function gitspaceTagsFor(gitspaceId: string): Tag[] {
  return [
    { Key: MACHINE_LABELS.gitspaceId, Value: gitspaceId },
    { Key: 'Name', Value: machineNameFor(gitspaceId) },
  ];
}

async function createTags({ ec2 }: Ec2Scope, resourceIds: string[], tags: Tag[], signal: AbortSignal): Promise<void> {
  await callEc2(signal, (abortSignal) =>
    ec2.send(new CreateTagsCommand({ Resources: resourceIds, Tags: tags }), { abortSignal }),
  );
}
