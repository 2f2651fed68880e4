/**
 * What a gitspace's EC2 instance is made of: its image (given, or the newest of the configured lookup), type, tags,
 * encrypted EBS data volume, network, instance profile, IMDSv2, and the bootstrap as its user data.
 */
import { DescribeImagesCommand, type Filter, type RunInstancesCommandInput, type Tag } from '@aws-sdk/client-ec2';
import type { AgentBootstrap, CreateMachineRequest } from '../../contracts/provider';
import { InvalidMachineSpecError } from '../../contracts/provider-errors';
import { AWS_DATA_DISK_DEVICE, AWS_DATA_DISK_DEVICES, renderAwsUserData, renderBootstrapScript } from '../bootstrap';
import { MACHINE_LABELS, deriveClientToken, machineNameFor } from '../naming';
import type { AwsInfrastructureConfig } from './config';
import { callEc2, type Ec2Scope } from './ec2';

/** The bootstrap of a gitspace's machine, as the user data it runs on every boot (not base64-encoded). */
export function userDataFor(config: AwsInfrastructureConfig, gitspaceId: string, bootstrap: AgentBootstrap): string {
  const script = renderBootstrapScript({
    gitspaceId,
    bootstrap,
    agent: config.agent,
    dataDiskDevices: AWS_DATA_DISK_DEVICES,
  });
  return renderAwsUserData(script);
}

/** The image to boot: the one asked for, the configured AMI, or the newest image the configured lookup finds. */
export async function resolveImageId(
  { config, ec2 }: Ec2Scope,
  requested: string | undefined,
  signal: AbortSignal,
): Promise<string> {
  if (requested) return requested;
  if (config.ami) return config.ami;
  const lookup = config.amiLookup;
  if (!lookup) throw new InvalidMachineSpecError('the infrastructure names neither ami nor amiLookup', 'aws');
  const filters: Filter[] = [
    { Name: 'name', Values: [lookup.namePattern] },
    { Name: 'state', Values: ['available'] },
  ];
  if (lookup.architecture) filters.push({ Name: 'architecture', Values: [lookup.architecture] });
  const result = await callEc2(signal, (abortSignal) =>
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

/** What RunInstances asks for; its ClientToken comes from the idempotency key. */
export function runInstancesInputFor(
  { config, installationId }: Pick<Ec2Scope, 'config' | 'installationId'>,
  { gitspaceId, spec, bootstrap }: CreateMachineRequest,
  imageId: string,
  idempotencyKey: string,
): RunInstancesCommandInput {
  const tags: Tag[] = [
    { Key: 'Name', Value: machineNameFor(gitspaceId) },
    { Key: MACHINE_LABELS.gitspaceId, Value: gitspaceId },
    { Key: MACHINE_LABELS.installation, Value: installationId },
  ];
  const profile = config.instanceProfile;
  return {
    ClientToken: deriveClientToken(`run-instances:${gitspaceId}`, idempotencyKey),
    ImageId: imageId,
    InstanceType: spec.machineType as RunInstancesCommandInput['InstanceType'],
    MinCount: 1,
    MaxCount: 1,
    SubnetId: config.subnetId,
    SecurityGroupIds: config.securityGroupIds,
    KeyName: config.keyName,
    IamInstanceProfile: profile ? (profile.startsWith('arn:') ? { Arn: profile } : { Name: profile }) : undefined,
    UserData: Buffer.from(userDataFor(config, gitspaceId, bootstrap)).toString('base64'),
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
  };
}
