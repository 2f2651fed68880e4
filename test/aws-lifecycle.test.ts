/**
 * The whole lifecycle on the `aws` provider, through the REST API and the workflows: a real Temporal dev server, the
 * control plane, a runner with the real `@aws-sdk/client-ec2` against moto (behind a fault proxy) on loopback, and
 * the gitspace agent served on loopback, since moto's instances have fake addresses that are never dialed.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  DescribeInstanceAttributeCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createEc2Client } from '../providers/aws/provider';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import {
  createStoppedGitspace,
  reconcileNow,
  registerInfrastructure,
  runAction,
  startAgentSlot,
  type AgentSlot,
} from './support/emulated-machine';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy';
import { startGitServer, type GitServer } from './support/git-server';
import {
  createEmulatedNetwork,
  ec2Action,
  ec2ErrorAnswer,
  startMoto,
  useEc2Emulator,
  type MotoServer,
} from './support/moto';
import { TEST_INSTALLATION_ID, startTestStack, type TestStack } from './support/stack';

const REGION = 'eu-west-1';
const INFRA = 'aws-lab';
const AMI_LOOKUP = { owners: ['amazon'], namePattern: 'al2023-ami-2023*', architecture: 'x86_64' };
const ORPHAN_GRACE_SECONDS = 3;

describe('gitspace lifecycle on aws (moto)', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let git: GitServer;
  let moto: MotoServer;
  let proxy: FaultProxy;
  let restoreEnv: () => void = () => undefined;
  let ec2: EC2Client;
  let stack: TestStack;
  let agent: AgentSlot;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('hello', { 'README.md': '# hello\n' });
    moto = await startMoto({ env: { MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION: 'true' } });
    proxy = await startFaultProxy(moto.url);
    // Set before the runner makes its EC2 client: the SDK reads the endpoint and credentials from the environment.
    restoreEnv = useEc2Emulator(proxy.url);
    ec2 = createEc2Client({ region: REGION });
    const network = await createEmulatedNetwork(ec2, REGION);
    stack = await startTestStack({
      workflowBundle: bundle,
      runner: false,
      runnerPickupTimeoutSeconds: 20,
      orphanGraceSeconds: ORPHAN_GRACE_SECONDS,
    });
    await registerInfrastructure(
      stack,
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
    // The machine's agent runs with the secret in the user data the runner gave the instance, as on EC2.
    agent = await startAgentSlot(async (gitspaceId) => {
      const [instance] = await liveInstancesOf(gitspaceId);
      if (!instance) return undefined;
      const attribute = await ec2.send(
        new DescribeInstanceAttributeCommand({ InstanceId: instance.InstanceId, Attribute: 'userData' }),
      );
      const encoded = attribute.UserData?.Value;
      return encoded ? Buffer.from(encoded, 'base64').toString('utf8') : undefined;
    }, stack.dataDir);
    await stack.startRunner({ infrastructureId: INFRA, agentEndpoint: agent.url });
  });
  afterAll(async () => {
    await agent?.close();
    await stack?.stop();
    ec2?.destroy();
    await proxy?.close();
    await moto?.stop();
    await git?.stop();
    restoreEnv();
  });

  /** Every instance tagged with this gitspace id, terminated ones included (moto keeps them listed). */
  const instancesOf = async (gitspaceId: string): Promise<Instance[]> => {
    const result = await ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'tag:gitspace-id', Values: [gitspaceId] }] }),
    );
    return (result.Reservations ?? []).flatMap((r) => r.Instances ?? []);
  };
  const liveInstancesOf = async (gitspaceId: string) =>
    (await instancesOf(gitspaceId)).filter((i) => i.State?.Name !== 'terminated');
  const volumesOf = async (gitspaceId: string) =>
    (await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'tag:gitspace-id', Values: [gitspaceId] }] })))
      .Volumes ?? [];
  const runInstancesFor = (gitspaceId: string) =>
    proxy.requests.filter((r) => ec2Action('RunInstances')(r) && r.body.includes(gitspaceId));
  const tagsOf = (instance: Instance | undefined) =>
    Object.fromEntries((instance?.Tags ?? []).map((tag) => [tag.Key, tag.Value]));
  const stoppedGitspace = (name: string, machine = 'large', repository = 'hello') =>
    createStoppedGitspace(stack, {
      name,
      repositoryUrl: git.urlOf(repository),
      infrastructureId: INFRA,
      machineId: `${INFRA}-${machine}`,
    });
  const runningGitspace = async (name: string) => {
    const id = await stoppedGitspace(name);
    const { workspaceDir } = await agent.serve(id);
    const running = await runAction(stack, id, 'start');
    expect(running).toMatchObject({ state: 'running' });
    return { id, workspaceDir, running };
  };

  it('runs a gitspace on a tagged EC2 instance, keeps its data volume across stop/start, and removes both on delete', async () => {
    const { id, workspaceDir, running } = await runningGitspace('ec2');
    expect(running.url).toBe(`${stack.gatewayUrl}/gitspaces/${id}/`);
    expect(await readFile(path.join(workspaceDir, 'README.md'), 'utf8')).toBe('# hello\n');

    const [instance, ...others] = await liveInstancesOf(id);
    expect(others).toHaveLength(0);
    expect(instance).toMatchObject({ InstanceType: 't3.large', State: { Name: 'running' } });
    expect(tagsOf(instance)).toMatchObject({
      'gitspace-id': id,
      'gitspaces-installation': TEST_INSTALLATION_ID,
      Name: `gitspace-${id}`,
    });
    const [volume, ...moreVolumes] = await volumesOf(id);
    expect(moreVolumes).toHaveLength(0);
    expect(volume).toMatchObject({ Size: 30, State: 'in-use' });
    expect(volume?.Attachments?.[0]).toMatchObject({ InstanceId: instance?.InstanceId, Device: '/dev/sdf' });
    // The route goes to the agent endpoint on loopback, never to the instance's fake private address.
    const routes = (await (
      await fetch(`${stack.gatewayAdminUrl}/routes`, { headers: { authorization: 'Bearer test-gateway-admin-token' } })
    ).json()) as { routes: { gitspaceId: string; target: string }[] };
    expect(routes.routes.find((r) => r.gitspaceId === id)?.target).toBe(agent.url);

    expect((await runAction(stack, id, 'stop')).state).toBe('stopped');
    expect((await liveInstancesOf(id)).map((i) => [i.InstanceId, i.State?.Name])).toEqual([
      [instance?.InstanceId, 'stopped'],
    ]);
    expect((await volumesOf(id)).map((v) => v.VolumeId)).toEqual([volume?.VolumeId]);

    expect((await runAction(stack, id, 'start')).state).toBe('running');
    expect((await liveInstancesOf(id)).map((i) => [i.InstanceId, i.State?.Name])).toEqual([
      [instance?.InstanceId, 'running'],
    ]);
    expect((await volumesOf(id)).map((v) => [v.VolumeId, v.State])).toEqual([[volume?.VolumeId, 'in-use']]);
    expect(runInstancesFor(id)).toHaveLength(1);

    expect((await runAction(stack, id, 'delete')).state).toBe('deleted');
    expect((await instancesOf(id)).map((i) => i.State?.Name)).toEqual(['terminated']);
    expect(await volumesOf(id)).toHaveLength(0);
  });

  it('retries a failed start on the instance it already made, never a second one', async () => {
    const id = await stoppedGitspace('retried', 'large', 'not-yet');
    await agent.serve(id);
    const failed = await runAction(stack, id, 'start');
    expect(failed).toMatchObject({
      state: 'error',
      lastError: { action: 'start', step: 'prepareWorkspace', cause: 'CloneFailedError' },
    });
    // The failed start stopped its machine and kept it (and its disk) for the retry.
    const [made, ...others] = await liveInstancesOf(id);
    expect(others).toHaveLength(0);
    expect(made?.State?.Name).toBe('stopped');

    await git.createRepository('not-yet', { 'README.md': 'now here\n' });
    expect((await runAction(stack, id, 'retry')).state).toBe('running');
    expect((await liveInstancesOf(id)).map((i) => [i.InstanceId, i.State?.Name])).toEqual([
      [made?.InstanceId, 'running'],
    ]);
    expect(runInstancesFor(id)).toHaveLength(1);

    expect((await runAction(stack, id, 'delete')).state).toBe('deleted');
  });

  it('fails a start fast on a quota error, with its message, and leaves no machine', async () => {
    const id = await stoppedGitspace('over-quota');
    proxy.failNext(1, ec2ErrorAnswer('VcpuLimitExceeded', 400), ec2Action('RunInstances'));
    const began = Date.now();
    const failed = await runAction(stack, id, 'start');
    expect(Date.now() - began).toBeLessThan(20_000);
    expect(failed).toMatchObject({
      state: 'error',
      lastError: { action: 'start', step: 'ensureMachine', cause: 'QuotaExceededError' },
    });
    expect(failed.lastError.message).toMatch(/quota exceeded \(VcpuLimitExceeded\)/);
    // Non-retryable: one attempt only.
    expect(runInstancesFor(id)).toHaveLength(1);
    expect(await liveInstancesOf(id)).toHaveLength(0);
  });

  it('fails a start on an instance type EC2 does not know, naming it, and leaves no machine', async () => {
    const id = await stoppedGitspace('bad-type', 'bogus');
    const failed = await runAction(stack, id, 'start');
    expect(failed).toMatchObject({
      state: 'error',
      lastError: { action: 'start', step: 'ensureMachine', cause: 'InvalidMachineSpecError' },
    });
    expect(failed.lastError.message).toContain('x9.mega');
    expect(await liveInstancesOf(id)).toHaveLength(0);
  });

  it('reconciles orphans: stops an unknown one, deletes it after the grace period, deletes leftovers of deleted gitspaces, and leaves live machines alone', async () => {
    const live = await runningGitspace('live');
    const gone = await stoppedGitspace('gone');
    expect((await runAction(stack, gone, 'delete')).state).toBe('deleted');
    const leftover = await plantInstance(gone, TEST_INSTALLATION_ID);
    const orphan = await plantInstance('gs-unknown-orphan', TEST_INSTALLATION_ID);
    const foreign = await plantInstance('gs-of-another-installation', 'another-installation');
    const stateOf = async (instanceId: string | undefined) =>
      (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId ?? ''] }))).Reservations?.[0]
        ?.Instances?.[0]?.State?.Name;

    const first = await reconcileNow(stack, INFRA, 'first');
    expect(first).toMatchObject({
      stopped: ['gs-unknown-orphan'],
      deleted: [gone],
      awaitingGrace: ['gs-unknown-orphan'],
      failed: [],
    });
    expect(await stateOf(orphan)).toBe('stopped');
    expect(await stateOf(leftover)).toBe('terminated');
    expect(await stateOf(foreign)).toBe('running');
    expect((await liveInstancesOf(live.id)).map((i) => i.State?.Name)).toEqual(['running']);
    expect((await stack.api('GET', `/api/v1/gitspaces/${live.id}`)).body.state).toBe('running');
    const goneEvents = (await stack.api('GET', `/api/v1/gitspaces/${gone}/events`)).body.items;
    expect(goneEvents.at(-1)).toMatchObject({
      type: 'reconcile',
      message: 'reconciliation deleted a leftover machine and its disks (the gitspace is deleted)',
    });

    // Inside the grace period the orphan is kept (stopped): its disk may be someone's work.
    const again = await reconcileNow(stack, INFRA, 'again');
    expect(again).toMatchObject({ stopped: [], deleted: [], awaitingGrace: ['gs-unknown-orphan'] });
    expect(await stateOf(orphan)).toBe('stopped');

    await new Promise((resolve) => setTimeout(resolve, ORPHAN_GRACE_SECONDS * 1000 + 200));
    const later = await reconcileNow(stack, INFRA, 'later');
    expect(later).toMatchObject({ stopped: [], deleted: ['gs-unknown-orphan'], awaitingGrace: [] });
    expect(await stateOf(orphan)).toBe('terminated');
    expect(await volumesOf('gs-unknown-orphan')).toHaveLength(0);
    expect(await stateOf(foreign)).toBe('running');
    expect((await liveInstancesOf(live.id)).map((i) => i.State?.Name)).toEqual(['running']);

    // What it did, for an operator: Prometheus text with the admin token, refused without it.
    const metrics = await fetch(`${stack.controlPlane.url}/metrics`, {
      headers: { authorization: `Bearer ${stack.controlPlane.adminToken}` },
    });
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    const text = await metrics.text();
    expect(text).toContain(`gitspaces_reconcile_runs_total{infrastructure="${INFRA}"} 3`);
    expect(text).toContain(`gitspaces_reconcile_machines_total{infrastructure="${INFRA}",action="stopped"} 1`);
    expect(text).toContain(`gitspaces_reconcile_machines_total{infrastructure="${INFRA}",action="deleted"} 2`);
    expect(text).toContain(`gitspaces_gitspaces{infrastructure="${INFRA}",state="running"} 1`);
    expect(text).toMatch(
      new RegExp(`gitspaces_reconcile_last_run_timestamp_seconds\\{infrastructure="${INFRA}"\\} \\d+`),
    );
    expect((await fetch(`${stack.controlPlane.url}/metrics`)).status).toBe(401);

    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [foreign ?? ''] }));
    expect((await runAction(stack, live.id, 'delete')).state).toBe('deleted');
  });

  /** An instance with a tagged data volume made straight in moto, as a crashed or foreign control plane leaves one. */
  async function plantInstance(gitspaceId: string, installation: string): Promise<string | undefined> {
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
    const result = await ec2.send(
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
    return result.Instances?.[0]?.InstanceId;
  }
});
