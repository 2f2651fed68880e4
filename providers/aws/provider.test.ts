/**
 * The `aws` provider with the real `@aws-sdk/client-ec2` against a moto server on loopback, behind a fault-injecting
 * proxy. The SDK finds moto through its standard AWS_ENDPOINT_URL_EC2, as the runner does in an emulator run.
 */
import { agentSecretIn } from '../bootstrap';
import {
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { silentLogger } from '../../common/logger';
import { startFaultProxy, type FaultProxy } from '../../test/support/fault-proxy';
import {
  createEmulatedNetwork,
  ec2Action as action,
  ec2ErrorAnswer as ec2Error,
  startMoto,
  useEc2Emulator,
  type MotoServer,
} from '../../test/support/moto';
import {
  InstanceNotFoundError,
  InvalidMachineSpecError,
  ProviderAuthError,
  type ProviderError,
  QuotaExceededError,
  RateLimitedError,
} from '../../contracts/provider-errors';
import type { CreateMachineRequest, Provider, ProviderCallOptions } from '../../contracts/provider';
import { parseAwsInfrastructureConfig, type AwsInfrastructureConfig } from './config';
import { createAwsProvider, createEc2Client } from './provider';

const REGION = 'eu-west-1';
const INSTALLATION = 'inst-test';
const REPOSITORY_TOKEN = 'ghp_secretRepositoryToken';

let moto: MotoServer;
let proxy: FaultProxy;
let ec2: EC2Client;
let config: AwsInfrastructureConfig;
let provider: Provider;
let restoreEnv: () => void = () => undefined;

const options = (idempotencyKey = 'key-1'): ProviderCallOptions => ({
  idempotencyKey,
  signal: AbortSignal.timeout(60_000),
});
const request = (gitspaceId: string, overrides: Partial<CreateMachineRequest['spec']> = {}): CreateMachineRequest => ({
  gitspaceId,
  spec: { machineType: 't3.large', diskSizeGb: 30, ...overrides },
  bootstrap: { agentSecret: 'agent-secret-one-0123456789', ide: 'vscode-web' },
});

async function instancesTagged(gitspaceId: string) {
  const result = await ec2.send(
    new DescribeInstancesCommand({ Filters: [{ Name: 'tag:gitspace-id', Values: [gitspaceId] }] }),
  );
  return (result.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}
async function volumesTagged(gitspaceId: string) {
  const result = await ec2.send(
    new DescribeVolumesCommand({ Filters: [{ Name: 'tag:gitspace-id', Values: [gitspaceId] }] }),
  );
  return result.Volumes ?? [];
}
async function userDataOf(instanceId: string): Promise<string> {
  const result = await ec2.send(
    new DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'userData' }),
  );
  return Buffer.from(result.UserData?.Value ?? '', 'base64').toString();
}

beforeAll(async () => {
  moto = await startMoto({ env: { MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION: 'true' } });
  proxy = await startFaultProxy(moto.url);
  restoreEnv = useEc2Emulator(proxy.url);
  ec2 = createEc2Client({ region: REGION });
  const network = await createEmulatedNetwork(ec2, REGION);
  const parsed = parseAwsInfrastructureConfig({
    region: REGION,
    subnetId: network.subnetId,
    securityGroupIds: [network.securityGroupId],
    amiLookup: { owners: ['amazon'], namePattern: 'al2023-ami-2023*', architecture: 'x86_64' },
    agent: { packageUrl: 'https://artifacts.example.internal/gitspaces-agent.tar.gz', packageSha256: 'ab'.repeat(32) },
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  config = parsed.value;
  provider = createAwsProvider({ config, installationId: INSTALLATION, ec2, logger: silentLogger });
});

afterAll(async () => {
  ec2?.destroy();
  await proxy?.close();
  await moto?.stop();
  restoreEnv();
});

describe('aws provider against moto', () => {
  it('creates an instance of the right type, tagged, with a data volume and the bootstrap in its user data', async () => {
    const machine = await provider.create(request('gs-create'), options());

    const [instance, ...others] = await instancesTagged('gs-create');
    expect(others).toHaveLength(0);
    expect(instance?.InstanceType).toBe('t3.large');
    expect(instance?.SubnetId).toBe(config.subnetId);
    const tags = Object.fromEntries((instance?.Tags ?? []).map((t) => [t.Key, t.Value]));
    expect(tags).toMatchObject({
      'gitspace-id': 'gs-create',
      'gitspaces-installation': INSTALLATION,
      Name: 'gitspace-gs-create',
    });

    const volumes = await volumesTagged('gs-create');
    expect(volumes).toHaveLength(1);
    expect(volumes[0]?.Size).toBe(30);
    expect(volumes[0]?.Attachments?.[0]?.Device).toBe('/dev/sdf');
    expect(machine).toMatchObject({
      gitspaceId: 'gs-create',
      providerId: instance?.InstanceId,
      disks: [volumes[0]?.VolumeId],
      agentUrl: `http://${instance?.PrivateIpAddress}:8089`,
    });
    expect(['provisioning', 'running']).toContain(machine.status);
    expect((await provider.describe('gs-create', options()))?.status).toBe('running');

    const userData = await userDataOf(instance?.InstanceId ?? '');
    expect(agentSecretIn(userData)).toBe('agent-secret-one-0123456789');
    expect(userData).toContain('GITSPACE_ID=gs-create');
    expect(userData).not.toContain(REPOSITORY_TOKEN);
    const runRequest = proxy.requests.find((r) => r.body.includes('Action=RunInstances&'));
    expect(runRequest?.body).toMatch(/ClientToken=[0-9a-f]{64}/);
    expect(runRequest?.body).not.toContain(REPOSITORY_TOKEN);
  });

  it('adopts the instance it already made when a create is retried or reset', async () => {
    const first = await provider.create(request('gs-retry'), options('start-1'));
    const again = await provider.create(request('gs-retry'), options('start-1'));
    const reset = await provider.create(request('gs-retry'), options('start-1-reset'));
    expect(again.providerId).toBe(first.providerId);
    expect(reset.providerId).toBe(first.providerId);
    expect(await instancesTagged('gs-retry')).toHaveLength(1);
    expect(await volumesTagged('gs-retry')).toHaveLength(1);
  });

  it('keeps the data volume across stop and start, and rewrites the agent secret on start', async () => {
    const created = await provider.create(request('gs-stop'), options());
    await provider.stop('gs-stop', options());
    const stopped = await provider.describe('gs-stop', options());
    expect(stopped?.status).toBe('stopped');
    expect(stopped?.disks).toEqual(created.disks);
    await provider.stop('gs-stop', options()); // stopping what is stopped succeeds

    const started = await provider.start(
      'gs-stop',
      { agentSecret: 'agent-secret-two-0123456789', ide: 'terminal' },
      options(),
    );
    expect(started.providerId).toBe(created.providerId);
    const running = await provider.describe('gs-stop', options());
    expect(running?.status).toBe('running');
    expect(running?.disks).toEqual(created.disks);
    const volumes = await volumesTagged('gs-stop');
    expect(volumes.map((v) => [v.VolumeId, v.State])).toEqual([[created.disks[0], 'in-use']]);
    expect(agentSecretIn(await userDataOf(created.providerId))).toBe('agent-secret-two-0123456789');
  });

  it('deletes the instance and its volume, and deleting again succeeds', async () => {
    await provider.create(request('gs-delete'), options());
    await provider.delete('gs-delete', options());
    expect(await provider.describe('gs-delete', options())).toBeNull();
    expect((await instancesTagged('gs-delete')).map((i) => i.State?.Name)).toEqual(['terminated']);
    expect(await volumesTagged('gs-delete')).toHaveLength(0);

    await expect(provider.delete('gs-delete', options())).resolves.toBeUndefined();
    await expect(provider.stop('gs-delete', options())).resolves.toBeUndefined();
    await expect(
      provider.start('gs-delete', { agentSecret: 'agent-secret-one-0123456789', ide: 'terminal' }, options()),
    ).rejects.toBeInstanceOf(InstanceNotFoundError);
  });

  it("lists this installation's machines only", async () => {
    const other = createAwsProvider({ config, installationId: 'someone-else', ec2, logger: silentLogger });
    await provider.create(request('gs-list'), options());
    await other.create(request('gs-foreign'), options());
    const listed = await provider.list(options());
    const ids = listed.map((m) => m.gitspaceId);
    expect(ids).toContain('gs-list');
    expect(ids).not.toContain('gs-foreign');
    expect(listed.every((m) => m.labels['gitspaces-installation'] === INSTALLATION)).toBe(true);
    await other.delete('gs-foreign', options());
  });

  it('retries throttling and 503 answers with backoff and creates one instance', async () => {
    proxy.failNext(1, ec2Error('RequestLimitExceeded', 503), action('RunInstances'));
    proxy.failNext(1, ec2Error('Unavailable', 503), action('RunInstances'));
    const before = proxy.requests.length;
    const machine = await provider.create(request('gs-faults'), options());
    expect(proxy.pendingFaults()).toBe(0);
    const runs = proxy.requests.slice(before).filter(action('RunInstances'));
    expect(runs).toHaveLength(3);
    // Every attempt carries the same ClientToken, so EC2 itself would not launch twice.
    expect(new Set(runs.map((r) => /ClientToken=([^&]+)/.exec(r.body)?.[1])).size).toBe(1);
    expect(await instancesTagged('gs-faults')).toHaveLength(1);
    expect(machine.providerId).toMatch(/^i-/);
  });

  it('reports persistent throttling as a retryable error once the attempts are used up', async () => {
    const impatient = createEc2Client({ region: REGION, maxAttempts: 2 });
    const quick = createAwsProvider({ config, installationId: INSTALLATION, ec2: impatient, logger: silentLogger });
    proxy.failNext(2, ec2Error('RequestLimitExceeded', 503), action('DescribeInstances'));
    const error = await quick.describe('gs-anything', options()).catch((e: unknown) => e);
    impatient.destroy();
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as ProviderError).retryable).toBe(true);
  });

  it('fails fast on a quota error with a message a user can act on', async () => {
    proxy.failNext(1, ec2Error('VcpuLimitExceeded', 400), action('RunInstances'));
    const before = proxy.requests.length;
    const error = await provider.create(request('gs-quota'), options()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect((error as ProviderError).retryable).toBe(false);
    expect((error as Error).message).toMatch(/quota exceeded \(VcpuLimitExceeded\).*Raise the quota/);
    expect(proxy.requests.slice(before).filter(action('RunInstances'))).toHaveLength(1);
    expect(await instancesTagged('gs-quota')).toHaveLength(0);
  });

  it('fails fast on an instance type that does not exist', async () => {
    const error = await provider
      .create(request('gs-badtype', { machineType: 'x9.mega' }), options())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidMachineSpecError);
    expect((error as Error).message).toContain('x9.mega');
    expect(await instancesTagged('gs-badtype')).toHaveLength(0);
  });

  it('maps refused credentials to a non-retryable auth error', async () => {
    proxy.failNext(1, ec2Error('AuthFailure', 401), action('DescribeInstances'));
    const error = await provider.describe('gs-auth', options()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderAuthError);
    expect((error as Error).message).toMatch(/credentials were refused/);
  });

  describe('warm pools', () => {
    const tagsOf = (resource: { Tags?: { Key?: string; Value?: string }[] } | undefined) =>
      Object.fromEntries((resource?.Tags ?? []).map((t) => [t.Key, t.Value]));
    const createTagsSince = (before: number) => proxy.requests.slice(before).filter(action('CreateTags'));
    /** A pooled machine as the runner makes one: created under the warm key, then stopped. */
    async function pooled(warmKey: string) {
      await provider.create(request(warmKey), options(`pool-${warmKey}`));
      await provider.stop(warmKey, options());
      const machine = await provider.describe(warmKey, options());
      expect(machine?.status).toBe('stopped');
      return machine!;
    }

    it('adopt re-tags the stopped pooled instance and its volumes, and start boots it as the gitspace', async () => {
      const warm = await pooled('warm-k3v9x2m7q1wz');
      const warmVolumes = (await volumesTagged('warm-k3v9x2m7q1wz')).map((v) => v.VolumeId).sort();

      const adopted = await provider.adopt!('warm-k3v9x2m7q1wz', 'gs-adopt', options());
      expect(adopted).toMatchObject({
        gitspaceId: 'gs-adopt',
        providerId: warm.providerId,
        status: 'stopped',
        disks: warm.disks,
        labels: { 'gitspace-id': 'gs-adopt', 'gitspaces-installation': INSTALLATION, Name: 'gitspace-gs-adopt' },
      });

      // As EC2 itself reports them: nothing is left under the warm key.
      expect(await instancesTagged('warm-k3v9x2m7q1wz')).toHaveLength(0);
      expect(await volumesTagged('warm-k3v9x2m7q1wz')).toHaveLength(0);
      const [instance, ...others] = await instancesTagged('gs-adopt');
      expect(others).toHaveLength(0);
      expect(instance?.InstanceId).toBe(warm.providerId);
      const expectedTags = {
        'gitspace-id': 'gs-adopt',
        'gitspaces-installation': INSTALLATION,
        Name: 'gitspace-gs-adopt',
      };
      expect(tagsOf(instance)).toEqual(expectedTags);
      const volumes = await volumesTagged('gs-adopt');
      expect(volumes.map((v) => v.VolumeId).sort()).toEqual(warmVolumes);
      for (const volume of volumes) expect(tagsOf(volume)).toEqual(expectedTags);

      expect(await provider.describe('warm-k3v9x2m7q1wz', options())).toBeNull();
      expect(await provider.describe('gs-adopt', options())).toEqual(adopted);
      const listed = (await provider.list(options())).map((m) => m.gitspaceId);
      expect(listed).toContain('gs-adopt');
      expect(listed).not.toContain('warm-k3v9x2m7q1wz');

      const started = await provider.start(
        'gs-adopt',
        { agentSecret: 'agent-secret-adopt-0123456789', ide: 'terminal' },
        options(),
      );
      expect(started).toMatchObject({ gitspaceId: 'gs-adopt', providerId: warm.providerId });
      expect((await provider.describe('gs-adopt', options()))?.status).toBe('running');
      const userData = await userDataOf(warm.providerId);
      expect(agentSecretIn(userData)).toBe('agent-secret-adopt-0123456789');
      expect(userData).toContain('GITSPACE_ID=gs-adopt\n');
      expect(userData).not.toContain('warm-k3v9x2m7q1wz');
    });

    it('adopt again returns the same machine and sends no CreateTags', async () => {
      await pooled('warm-again');
      const first = await provider.adopt!('warm-again', 'gs-adopt-again', options());
      const before = proxy.requests.length;
      expect(await provider.adopt!('warm-again', 'gs-adopt-again', options())).toEqual(first);
      expect(createTagsSince(before)).toHaveLength(0);
    });

    it('adopt retried after the instance was re-tagged but its volumes were not finishes the volumes', async () => {
      const warm = await pooled('warm-partial');
      const volumeIds = (await volumesTagged('warm-partial')).map((v) => v.VolumeId).sort();
      const isVolumeTagging = (r: { body: string }) => action('CreateTags')(r) && /ResourceId\.1=vol-/.test(r.body);
      proxy.failNext(1, ec2Error('UnauthorizedOperation', 403), isVolumeTagging);
      await expect(provider.adopt!('warm-partial', 'gs-partial', options())).rejects.toBeInstanceOf(ProviderAuthError);
      expect(proxy.pendingFaults()).toBe(0);

      // Half done: the gitspace already has its whole machine; the warm key, only volumes its delete leaves alone.
      expect(await provider.describe('gs-partial', options())).toMatchObject({
        providerId: warm.providerId,
        status: 'stopped',
        disks: warm.disks,
      });
      expect((await volumesTagged('warm-partial')).map((v) => v.VolumeId).sort()).toEqual(volumeIds);
      await provider.delete('warm-partial', options());
      expect((await volumesTagged('warm-partial')).map((v) => v.State)).toEqual(volumeIds.map(() => 'in-use'));

      const retried = await provider.adopt!('warm-partial', 'gs-partial', options());
      expect(retried).toMatchObject({ gitspaceId: 'gs-partial', providerId: warm.providerId });
      expect(await volumesTagged('warm-partial')).toHaveLength(0);
      const volumes = await volumesTagged('gs-partial');
      expect(volumes.map((v) => v.VolumeId).sort()).toEqual(volumeIds);
      for (const volume of volumes) expect(tagsOf(volume)).toMatchObject({ Name: 'gitspace-gs-partial' });
    });

    it('adopt waits until EC2 lists the re-tagged instance under the gitspace, so the start after it finds it', async () => {
      const warm = await pooled('warm-lagging');
      // EC2's tag filters are eventually consistent: the first lookups by the new tag find nothing.
      const byNewTag = (r: { body: string }) => action('DescribeInstances')(r) && r.body.includes('gs-lagging');
      const emptyAnswer = {
        status: 200,
        contentType: 'text/xml',
        body: '<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-1</requestId><reservationSet/></DescribeInstancesResponse>',
      };
      proxy.failNext(3, emptyAnswer, byNewTag);
      const adopted = await provider.adopt!('warm-lagging', 'gs-lagging', options());
      expect(proxy.pendingFaults()).toBe(0);
      expect(adopted).toMatchObject({ gitspaceId: 'gs-lagging', providerId: warm.providerId });
      const started = await provider.start(
        'gs-lagging',
        { agentSecret: 'agent-secret-lag-0123456789', ide: 'terminal' },
        options(),
      );
      expect(started.providerId).toBe(warm.providerId);
    });

    it('adopt for a gitspace that already has a machine returns that one and leaves the pooled machine alone', async () => {
      const own = await provider.create(request('gs-adopt-own'), options());
      const warm = await pooled('warm-spare');
      const [warmInstance] = await instancesTagged('warm-spare');
      const warmVolumes = await volumesTagged('warm-spare');
      const before = proxy.requests.length;

      const adopted = await provider.adopt!('warm-spare', 'gs-adopt-own', options());
      expect(adopted).toEqual(await provider.describe('gs-adopt-own', options()));
      expect(adopted?.providerId).toBe(own.providerId);
      expect(createTagsSince(before)).toHaveLength(0);
      expect(await provider.describe('warm-spare', options())).toEqual(warm);
      const [warmAfter] = await instancesTagged('warm-spare');
      expect(tagsOf(warmAfter)).toEqual(tagsOf(warmInstance));
      expect((await volumesTagged('warm-spare')).map((v) => [v.VolumeId, tagsOf(v)])).toEqual(
        warmVolumes.map((v) => [v.VolumeId, tagsOf(v)]),
      );
    });

    it('adopt of a pooled machine that is gone or terminated returns null and tags nothing', async () => {
      const before = proxy.requests.length;
      expect(await provider.adopt!('warm-never', 'gs-adopt-none', options())).toBeNull();
      await pooled('warm-terminated');
      await provider.delete('warm-terminated', options());
      expect(await provider.adopt!('warm-terminated', 'gs-adopt-none', options())).toBeNull();
      expect(createTagsSince(before)).toHaveLength(0);
      expect(await provider.describe('gs-adopt-none', options())).toBeNull();
      expect(await instancesTagged('gs-adopt-none')).toHaveLength(0);
    });
  });
});
