/**
 * The contract's `aws` target: a runner with the real `@aws-sdk/client-ec2` against moto (behind a fault proxy) on
 * loopback, and the gitspace agent served on loopback, since moto's instances have fake addresses that are never
 * dialed.
 */
import {
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  RunInstancesCommand,
  type EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { createEc2Client } from '../../providers/aws/provider';
import { startAgentSlot } from './emulated-machine';
import { startFaultProxy, type FaultProxy } from './fault-proxy';
import { createEmulatedNetwork, ec2Action, ec2ErrorAnswer, startMoto, useEc2Emulator } from './moto';
import {
  assemble,
  startCloudStack,
  type ContractEnvironment,
  type ContractTarget,
  type SeenDisk,
} from './provider-contract';
import { TEST_INSTALLATION_ID } from './stack';

const REGION = 'eu-west-1';
const INFRA = 'aws-lab';
const AMI_LOOKUP = { owners: ['amazon'], namePattern: 'al2023-ami-2023*', architecture: 'x86_64' };
const ORPHAN_GRACE_SECONDS = 3;

interface AwsEnvironment extends ContractEnvironment {
  ec2: EC2Client;
  proxy: FaultProxy;
  /** Every instance tagged with this gitspace id, terminated ones included (moto keeps them listed). */
  instancesOf(gitspaceId: string): Promise<Instance[]>;
}

export const awsOnMoto: ContractTarget<AwsEnvironment> = {
  name: 'aws on moto',
  orphanGraceSeconds: ORPHAN_GRACE_SECONDS,

  start: ({ bundle }) =>
    assemble(async (closeLater) => {
      const moto = await startMoto({ env: { MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION: 'true' } });
      closeLater(() => moto.stop());
      const proxy = await startFaultProxy(moto.url);
      closeLater(() => proxy.close());
      // Set before the runner makes its EC2 client: the SDK reads the endpoint and credentials from the environment.
      closeLater(useEc2Emulator(proxy.url));
      const ec2 = createEc2Client({ region: REGION });
      closeLater(() => ec2.destroy());
      const network = await createEmulatedNetwork(ec2, REGION);
      const stack = await startCloudStack(
        { bundle, orphanGraceSeconds: ORPHAN_GRACE_SECONDS },
        closeLater,
        {
          name: INFRA,
          provider: 'aws',
          config: {
            region: REGION,
            subnetId: network.subnetId,
            securityGroupIds: [network.securityGroupId],
            amiLookup: AMI_LOOKUP,
            // The test's git server listens on loopback.
            repositoryNetworks: { allowLoopback: true },
          },
        },
        [
          { name: 'large', machineType: 't3.large', diskSizeGb: 30 },
          // Valid in form, unknown to EC2 (moto validates instance types here).
          { name: 'bogus', machineType: 'x9.mega', diskSizeGb: 30 },
        ],
      );

      const instancesOf = async (gitspaceId: string): Promise<Instance[]> => {
        const result = await ec2.send(
          new DescribeInstancesCommand({ Filters: [{ Name: 'tag:gitspace-id', Values: [gitspaceId] }] }),
        );
        return (result.Reservations ?? []).flatMap((r) => r.Instances ?? []);
      };
      const liveInstancesOf = async (gitspaceId: string) =>
        (await instancesOf(gitspaceId)).filter((i) => i.State?.Name !== 'terminated');
      const volumesOf = async (gitspaceId: string): Promise<SeenDisk[]> => {
        const result = await ec2.send(
          new DescribeVolumesCommand({ Filters: [{ Name: 'tag:gitspace-id', Values: [gitspaceId] }] }),
        );
        return (result.Volumes ?? []).map((volume) => ({
          id: volume.VolumeId ?? '',
          ...(volume.Size !== undefined ? { sizeGb: volume.Size } : {}),
          attachedTo: (volume.Attachments ?? []).map((a) => a.InstanceId ?? ''),
        }));
      };

      // The machine's agent runs with the secret in the user data the runner gave the instance, as on EC2.
      const agent = await startAgentSlot(async (gitspaceId) => {
        const [instance] = await liveInstancesOf(gitspaceId);
        if (!instance) return undefined;
        const attribute = await ec2.send(
          new DescribeInstanceAttributeCommand({ InstanceId: instance.InstanceId, Attribute: 'userData' }),
        );
        const encoded = attribute.UserData?.Value;
        return encoded ? Buffer.from(encoded, 'base64').toString('utf8') : undefined;
      }, stack.dataDir);
      // Closed before the stack stops (reverse order), as the agent of a machine goes before its runner's host.
      closeLater(() => agent.close());
      await stack.startRunner({ infrastructureId: INFRA, agentEndpoint: agent.url });

      return {
        stack,
        ec2,
        proxy,
        instancesOf,
        infrastructureId: INFRA,
        machine: { name: 'large', diskSizeGb: 30 },
        serve: (gitspaceId) => agent.serve(gitspaceId),
        routeTargetOf: async () => agent.url,
        cloud: {
          machinesOf: async (gitspaceId) =>
            (await liveInstancesOf(gitspaceId)).map((instance) => ({
              id: instance.InstanceId ?? '',
              state: instance.State?.Name ?? '',
              labels: Object.fromEntries((instance.Tags ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? ''])),
            })),
          disksOf: volumesOf,
          // The runner gives an instance one volume of its own, its data volume; the root volume is the image's.
          dataDisksOf: volumesOf,
          labelsFor: (gitspaceId) => ({
            'gitspace-id': gitspaceId,
            'gitspaces-installation': TEST_INSTALLATION_ID,
            Name: `gitspace-${gitspaceId}`,
          }),
          createRequestsFor: (gitspaceId) =>
            proxy.requests.filter((r) => ec2Action('RunInstances')(r) && r.body.includes(gitspaceId)).length,
          plantMachine: (gitspaceId, installation) => plantInstance(ec2, gitspaceId, installation),
          planted: { disks: 1, dataDiskOutlivesMachine: false },
          settle: async () => undefined,
        },
      };
    }),

  quotaExceeded: {
    inject: ({ proxy }) => proxy.failNext(1, ec2ErrorAnswer('VcpuLimitExceeded', 400), ec2Action('RunInstances')),
    message: /quota exceeded \(VcpuLimitExceeded\)/,
  },
  unknownMachineType: { machine: 'bogus', message: 'x9.mega' },

  specifics: {
    // aws only: the instance's type and Name tag, and its data volume at /dev/sdf, in use.
    async firstStart({ ec2, instancesOf }, gitspaceId, machine, disk) {
      const [instance] = (await instancesOf(gitspaceId)).filter((i) => i.InstanceId === machine.id);
      expect(instance).toMatchObject({ InstanceType: 't3.large', State: { Name: 'running' } });
      expect(machine.labels).toMatchObject({ Name: `gitspace-${gitspaceId}` });
      const { Volumes: [volume] = [] } = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [disk.id] }));
      expect(volume).toMatchObject({ Size: 30, State: 'in-use' });
      expect(volume?.Attachments?.[0]).toMatchObject({ InstanceId: machine.id, Device: '/dev/sdf' });
    },
    // aws only: EC2 still lists a terminated instance for a while; the gitspace's one instance is that, no other.
    async deleted({ instancesOf }, gitspaceId) {
      expect((await instancesOf(gitspaceId)).map((i) => i.State?.Name)).toEqual(['terminated']);
    },
  },
};

/** An instance with a tagged data volume made straight in moto, as a crashed or foreign control plane leaves one. */
async function plantInstance(ec2: EC2Client, gitspaceId: string, installation: string): Promise<void> {
  const images = await ec2.send(
    new DescribeImagesCommand({
      Owners: AMI_LOOKUP.owners,
      Filters: [{ Name: 'name', Values: [AMI_LOOKUP.namePattern] }],
    }),
  );
  const tags = [
    { Key: 'gitspace-id', Value: gitspaceId },
    { Key: 'gitspaces-installation', Value: installation },
  ];
  await ec2.send(
    new RunInstancesCommand({
      ImageId: images.Images?.[0]?.ImageId,
      InstanceType: 't3.micro',
      MinCount: 1,
      MaxCount: 1,
      BlockDeviceMappings: [{ DeviceName: '/dev/sdf', Ebs: { VolumeSize: 8, DeleteOnTermination: true } }],
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tags },
        { ResourceType: 'volume', Tags: tags },
      ],
    }),
  );
}
