/**
 * The `aws` provider (DESIGN.md §5): one EC2 instance per gitspace with an EBS data volume (mapped as /dev/sdf) that
 * survives stop and start and goes with the instance on terminate. Every resource carries the `gitspace-id` and
 * installation tags; `create` finds by tag first, so a retried or reset start adopts the instance it already made
 * (the `ClientToken` alone is not enough: moto, for one, ignores it).
 */
import {
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DeleteVolumeCommand,
  EC2Client,
  ModifyInstanceAttributeCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  paginateDescribeInstances,
  paginateDescribeVolumes,
  type Filter,
  type Instance,
  type Tag,
  type Volume,
} from '@aws-sdk/client-ec2';
import type { Logger } from '../../common/logger';
import {
  AWS_DATA_DISK_DEVICE,
  AWS_DATA_DISK_DEVICES,
  agentSecretIn,
  renderAwsUserData,
  renderBootstrapScript,
} from '../bootstrap';
import {
  InstanceNotFoundError,
  InvalidMachineSpecError,
  ProviderUnavailableError,
} from '../../contracts/provider-errors';
import { MACHINE_LABELS, agentUrlFor, deriveClientToken, machineNameFor } from '../naming';
import type {
  AgentBootstrap,
  CreateMachineRequest,
  MachineInfo,
  MachineStatus,
  Provider,
  ProviderCallOptions,
} from '../../contracts/provider';
import type { AwsInfrastructureConfig } from './config';
import { isAwsNotFound, mapAwsError } from './errors';

export interface AwsProviderOptions {
  config: AwsInfrastructureConfig;
  /** Tags every resource so `list()` finds this installation's machines and nobody else's. */
  installationId: string;
  ec2: EC2Client;
  logger: Logger;
}

export interface Ec2ClientOptions {
  region: string;
  /** Attempts per call, including the first; throttling and 5xx are retried with the SDK's backoff. */
  maxAttempts?: number;
}

/**
 * Builds the EC2 client of the runner. Credentials come from the SDK's default chain and an emulator endpoint from
 * the SDK's standard `AWS_ENDPOINT_URL_EC2`; nothing here adds a way of its own.
 */
export function createEc2Client(options: Ec2ClientOptions): EC2Client {
  return new EC2Client({ region: options.region, maxAttempts: options.maxAttempts ?? 4 });
}

// Everything but `terminated`: a terminated instance is gone even though EC2 lists it for a while.
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];
const STATUS_BY_STATE: Record<string, MachineStatus> = {
  pending: 'provisioning',
  running: 'running',
  stopping: 'stopping',
  stopped: 'stopped',
  'shutting-down': 'deleting',
};

/** Creates the `aws` provider. */
export function createAwsProvider(options: AwsProviderOptions): Provider {
  const { config, installationId, ec2, logger } = options;

  /** Every EC2 call goes through here, so its errors speak the provider taxonomy. */
  async function call<T>(signal: AbortSignal, run: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    signal.throwIfAborted();
    try {
      return await run(signal);
    } catch (error) {
      throw mapAwsError(error);
    }
  }

  function tagFilters(gitspaceId?: string): Filter[] {
    const filters: Filter[] = [{ Name: `tag:${MACHINE_LABELS.installation}`, Values: [installationId] }];
    if (gitspaceId !== undefined) filters.push({ Name: `tag:${MACHINE_LABELS.gitspaceId}`, Values: [gitspaceId] });
    return filters;
  }

  async function findInstances(gitspaceId: string | undefined, signal: AbortSignal): Promise<Instance[]> {
    const filters = [...tagFilters(gitspaceId), { Name: 'instance-state-name', Values: LIVE_STATES }];
    const found: Instance[] = [];
    try {
      for await (const page of paginateDescribeInstances(
        { client: ec2 },
        { Filters: filters },
        { abortSignal: signal },
      )) {
        for (const reservation of page.Reservations ?? []) found.push(...(reservation.Instances ?? []));
      }
    } catch (error) {
      throw mapAwsError(error);
    }
    // Oldest first: should two ever exist, every call settles on the same one and list() shows the other.
    return found.sort((a, b) => (a.LaunchTime?.getTime() ?? 0) - (b.LaunchTime?.getTime() ?? 0));
  }

  async function findInstance(gitspaceId: string, signal: AbortSignal): Promise<Instance | undefined> {
    return (await findInstances(gitspaceId, signal))[0];
  }

  async function findVolumes(gitspaceId: string | undefined, signal: AbortSignal): Promise<Volume[]> {
    const found: Volume[] = [];
    try {
      for await (const page of paginateDescribeVolumes(
        { client: ec2 },
        { Filters: tagFilters(gitspaceId) },
        { abortSignal: signal },
      )) {
        found.push(...(page.Volumes ?? []).filter((v) => v.State !== 'deleted'));
      }
    } catch (error) {
      throw mapAwsError(error);
    }
    return found;
  }

  function toInfo(instance: Instance): MachineInfo {
    const labels = tagsToRecord(instance.Tags);
    return {
      gitspaceId: labels[MACHINE_LABELS.gitspaceId] ?? '',
      providerId: instance.InstanceId ?? '',
      status: STATUS_BY_STATE[instance.State?.Name ?? ''] ?? 'provisioning',
      agentUrl: agentUrlFor(instance.PrivateIpAddress),
      disks: (instance.BlockDeviceMappings ?? [])
        .filter((mapping) =>
          AWS_DATA_DISK_DEVICES.includes(mapping.DeviceName as (typeof AWS_DATA_DISK_DEVICES)[number]),
        )
        .flatMap((mapping) => (mapping.Ebs?.VolumeId ? [mapping.Ebs.VolumeId] : [])),
      labels,
    };
  }

  /** What is left of a gitspace whose instance is gone: its volumes, on their way out. */
  function leftoverInfo(gitspaceId: string, volumes: Volume[]): MachineInfo {
    return {
      gitspaceId,
      providerId: volumes[0]?.VolumeId ?? '',
      status: 'deleting',
      disks: volumes.flatMap((v) => (v.VolumeId ? [v.VolumeId] : [])),
      labels: tagsToRecord(volumes[0]?.Tags),
    };
  }

  async function resolveImage(requested: string | undefined, signal: AbortSignal): Promise<string> {
    if (requested) return requested;
    if (config.ami) return config.ami;
    const lookup = config.amiLookup;
    if (!lookup) throw new InvalidMachineSpecError('the infrastructure names neither ami nor amiLookup', 'aws');
    const filters: Filter[] = [
      { Name: 'name', Values: [lookup.namePattern] },
      { Name: 'state', Values: ['available'] },
    ];
    if (lookup.architecture) filters.push({ Name: 'architecture', Values: [lookup.architecture] });
    const result = await call(signal, (abortSignal) =>
      ec2.send(new DescribeImagesCommand({ Owners: lookup.owners, Filters: filters }), { abortSignal }),
    );
    const newest = (result.Images ?? [])
      .filter((image) => image.ImageId)
      .sort((a, b) => (b.CreationDate ?? '').localeCompare(a.CreationDate ?? ''))[0];
    if (!newest?.ImageId) {
      throw new InvalidMachineSpecError(
        `no AMI matches '${lookup.namePattern}' owned by ${lookup.owners.join(', ')}; fix config.amiLookup`,
        'aws',
      );
    }
    return newest.ImageId;
  }

  function userDataFor(gitspaceId: string, bootstrap: AgentBootstrap): string {
    const script = renderBootstrapScript({
      gitspaceId,
      bootstrap,
      agent: config.agent,
      dataDiskDevices: AWS_DATA_DISK_DEVICES,
    });
    return renderAwsUserData(script);
  }

  return {
    name: 'aws',

    async create(request: CreateMachineRequest, { idempotencyKey, signal }: ProviderCallOptions): Promise<MachineInfo> {
      const { gitspaceId, spec, bootstrap } = request;
      const existing = await findInstance(gitspaceId, signal);
      if (existing) {
        logger.info('adopting the instance this gitspace already has', { gitspaceId, instanceId: existing.InstanceId });
        return toInfo(existing);
      }
      const imageId = await resolveImage(spec.image, signal);
      const tags: Tag[] = [
        { Key: 'Name', Value: machineNameFor(gitspaceId) },
        { Key: MACHINE_LABELS.gitspaceId, Value: gitspaceId },
        { Key: MACHINE_LABELS.installation, Value: installationId },
      ];
      const profile = config.instanceProfile;
      const result = await call(signal, (abortSignal) =>
        ec2.send(
          new RunInstancesCommand({
            ClientToken: deriveClientToken(`run-instances:${gitspaceId}`, idempotencyKey),
            ImageId: imageId,
            InstanceType: spec.machineType as RunInstancesCommand['input']['InstanceType'],
            MinCount: 1,
            MaxCount: 1,
            SubnetId: config.subnetId,
            SecurityGroupIds: config.securityGroupIds,
            KeyName: config.keyName,
            IamInstanceProfile: profile
              ? profile.startsWith('arn:')
                ? { Arn: profile }
                : { Name: profile }
              : undefined,
            UserData: Buffer.from(userDataFor(gitspaceId, bootstrap)).toString('base64'),
            MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
            BlockDeviceMappings: [
              {
                DeviceName: AWS_DATA_DISK_DEVICE,
                // Kept across stop/start (EBS always is); removed with the instance on terminate.
                Ebs: {
                  VolumeSize: spec.diskSizeGb,
                  VolumeType: config.volumeType,
                  DeleteOnTermination: true,
                  Encrypted: true,
                },
              },
            ],
            TagSpecifications: [
              { ResourceType: 'instance', Tags: tags },
              { ResourceType: 'volume', Tags: tags },
            ],
          }),
          { abortSignal },
        ),
      );
      const instance = result.Instances?.[0];
      if (!instance) throw new ProviderUnavailableError('RunInstances answered without an instance', 'aws');
      logger.info('instance created', { gitspaceId, instanceId: instance.InstanceId, type: spec.machineType });
      return toInfo(instance);
    },

    async describe(gitspaceId: string, { signal }: ProviderCallOptions): Promise<MachineInfo | null> {
      const instance = await findInstance(gitspaceId, signal);
      if (instance) return toInfo(instance);
      const volumes = await findVolumes(gitspaceId, signal);
      return volumes.length > 0 ? leftoverInfo(gitspaceId, volumes) : null;
    },

    async start(gitspaceId: string, bootstrap: AgentBootstrap, { signal }: ProviderCallOptions): Promise<MachineInfo> {
      const instance = await findInstance(gitspaceId, signal);
      const state = instance?.State?.Name;
      const instanceId = instance?.InstanceId;
      if (!instance || !instanceId || state === 'shutting-down') throw new InstanceNotFoundError(gitspaceId, 'aws');
      if (state === 'pending' || state === 'running') return toInfo(instance);
      if (state === 'stopping') {
        throw new ProviderUnavailableError(`instance ${instanceId} is still stopping; try again shortly`, 'aws');
      }
      await refreshUserData(instanceId, gitspaceId, bootstrap, signal);
      const result = await call(signal, (abortSignal) =>
        ec2.send(new StartInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal }),
      );
      const current = result.StartingInstances?.[0]?.CurrentState?.Name ?? 'pending';
      logger.info('instance starting', { gitspaceId, instanceId });
      return { ...toInfo(instance), status: STATUS_BY_STATE[current] ?? 'provisioning' };
    },

    async stop(gitspaceId: string, { signal }: ProviderCallOptions): Promise<void> {
      const instance = await findInstance(gitspaceId, signal);
      const state = instance?.State?.Name;
      const instanceId = instance?.InstanceId;
      if (!instanceId || (state !== 'pending' && state !== 'running')) return;
      try {
        await call(signal, (abortSignal) =>
          ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal }),
        );
      } catch (error) {
        if (!isAwsNotFound(error)) throw error;
      }
      logger.info('instance stopping', { gitspaceId, instanceId });
    },

    async delete(gitspaceId: string, { signal }: ProviderCallOptions): Promise<void> {
      for (const instance of await findInstances(gitspaceId, signal)) {
        const instanceId = instance.InstanceId;
        if (!instanceId || instance.State?.Name === 'shutting-down') continue;
        try {
          await call(signal, (abortSignal) =>
            ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal }),
          );
          logger.info('instance terminating', { gitspaceId, instanceId });
        } catch (error) {
          if (!isAwsNotFound(error)) throw error;
        }
      }
      // Volumes not attached to anything (left by a failed launch, or detached by hand) go too; attached ones go
      // with their instance (DeleteOnTermination).
      for (const volume of await findVolumes(gitspaceId, signal)) {
        const volumeId = volume.VolumeId;
        if (volume.State !== 'available' || !volumeId) continue;
        try {
          await call(signal, (abortSignal) =>
            ec2.send(new DeleteVolumeCommand({ VolumeId: volumeId }), { abortSignal }),
          );
          logger.info('volume deleted', { gitspaceId, volumeId });
        } catch (error) {
          if (!isAwsNotFound(error)) throw error;
        }
      }
    },

    async list({ signal }: ProviderCallOptions): Promise<MachineInfo[]> {
      const machines = (await findInstances(undefined, signal)).map(toInfo);
      const withInstance = new Set(machines.map((m) => m.gitspaceId));
      const orphans = new Map<string, Volume[]>();
      for (const volume of await findVolumes(undefined, signal)) {
        const id = tagsToRecord(volume.Tags)[MACHINE_LABELS.gitspaceId];
        if (id === undefined || withInstance.has(id)) continue;
        orphans.set(id, [...(orphans.get(id) ?? []), volume]);
      }
      for (const [id, volumes] of orphans) machines.push(leftoverInfo(id, volumes));
      return machines;
    },
  };

  /** Rewrites the user data when a restart brings a new agent secret (the instance is stopped, as EC2 requires). */
  async function refreshUserData(
    instanceId: string,
    gitspaceId: string,
    bootstrap: AgentBootstrap,
    signal: AbortSignal,
  ): Promise<void> {
    const current = await call(signal, (abortSignal) =>
      ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'userData' }), {
        abortSignal,
      }),
    );
    const existing = current.UserData?.Value ? Buffer.from(current.UserData.Value, 'base64').toString() : '';
    if (agentSecretIn(existing) === bootstrap.agentSecret) return;
    const encoded = Buffer.from(userDataFor(gitspaceId, bootstrap)).toString('base64');
    // EC2 wants the base64 text as the attribute's bytes; the SDK encodes those bytes once more on the wire.
    await call(signal, (abortSignal) =>
      ec2.send(
        new ModifyInstanceAttributeCommand({ InstanceId: instanceId, UserData: { Value: Buffer.from(encoded) } }),
        { abortSignal },
      ),
    );
    logger.info('user data updated with the new agent secret', { gitspaceId, instanceId });
  }
}

function tagsToRecord(tags: Tag[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const tag of tags ?? []) if (tag.Key !== undefined) out[tag.Key] = tag.Value ?? '';
  return out;
}
