/**
 * The `gcp` provider with the real `@google-cloud/compute` client (REST transport) against the in-repo fake of the
 * Compute endpoints on loopback. The clients get a fixed access token, so no credential lookup leaves the machine.
 */
import { agentSecretIn } from '../bootstrap';
import { silentLogger } from '../../common/logger';
import {
  CapacityUnavailableError,
  InstanceNotFoundError,
  InvalidMachineSpecError,
  ProviderAuthError,
  type ProviderError,
  ProviderUnavailableError,
  QuotaExceededError,
} from '../../contracts/provider-errors';
import {
  OperationFailedError,
  type CreateMachineRequest,
  type MachineInfo,
  type MachineStatus,
  type Provider,
  type ProviderCallOptions,
  type ProviderOperation,
} from '../../contracts/provider';
import { parseGcpInfrastructureConfig, type GcpInfrastructureConfig } from './config';
import {
  FAKE_FAULTS,
  startFakeComputeServer,
  type FakeComputeServer,
  type FakeRequest,
} from '../../test/support/fake-compute-server';
import { createGcpClients, createGcpProvider, type GcpClients } from './provider';

const INSTALLATION = 'inst-test';
const REPOSITORY_TOKEN = 'ghp_secretRepositoryToken';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let fake: FakeComputeServer;
let clients: GcpClients;
let config: GcpInfrastructureConfig;
let provider: Provider;

const options = (idempotencyKey = 'key-1', operation?: ProviderOperation | void): ProviderCallOptions => ({
  idempotencyKey,
  signal: AbortSignal.timeout(60_000),
  ...(operation ? { operation } : {}),
});
const request = (gitspaceId: string, overrides: Partial<CreateMachineRequest['spec']> = {}): CreateMachineRequest => ({
  gitspaceId,
  spec: { machineType: 'e2-standard-4', diskSizeGb: 50, ...overrides },
  bootstrap: { agentSecret: 'agent-secret-one-0123456789', ide: 'vscode-web' },
});
const inserts = (r: FakeRequest) => r.method === 'POST' && /\/instances$/.test(r.path);

/**
 * What the runner's heartbeating activity does: poll describe, given the operation the call before started, until the
 * machine reaches a status (or is gone).
 */
async function waitFor(
  gitspaceId: string,
  wanted: MachineStatus | null,
  operation?: ProviderOperation | void,
  by: Provider = provider,
): Promise<MachineInfo | null> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const machine = await by.describe(gitspaceId, options('key-1', operation));
    if ((machine?.status ?? null) === wanted) return machine;
    if (Date.now() > deadline)
      throw new Error(`gitspace ${gitspaceId} is ${machine?.status ?? 'gone'}, not ${wanted ?? 'gone'}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

beforeAll(async () => {
  fake = await startFakeComputeServer({ operationDelayMs: 60 });
  clients = createGcpClients({ apiEndpoint: fake.url });
  const parsed = parseGcpInfrastructureConfig({
    project: 'acme-dev-123',
    region: 'europe-west1',
    zones: ['europe-west1-b', 'europe-west1-c'],
    network: 'gitspaces',
    subnetwork: 'regions/europe-west1/subnetworks/gitspaces',
    serviceAccount: 'gitspace-vm@acme-dev-123.iam.gserviceaccount.com',
    networkTags: ['gitspaces-agent'],
    agent: { packageUrl: 'https://artifacts.example.internal/gitspaces.tgz', packageSha256: 'ab'.repeat(32) },
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  config = parsed.value;
  provider = createGcpProvider({ config, installationId: INSTALLATION, clients, logger: silentLogger });
});

afterAll(async () => {
  await clients?.close();
  await fake?.close();
});

describe('gcp provider against the fake Compute API', () => {
  it('creates a labelled instance of the right type with a data disk and the bootstrap as startup script', async () => {
    const created = await provider.create(request('gs-create'), options());
    expect(created).toMatchObject({ providerId: 'gitspace-gs-create', status: 'provisioning' });

    const insert = fake.requests.find(inserts);
    expect(insert?.path).toBe('/compute/v1/projects/acme-dev-123/zones/europe-west1-b/instances');
    expect(insert?.query.get('requestId')).toMatch(UUID);
    expect(JSON.stringify(insert?.body)).not.toContain(REPOSITORY_TOKEN);
    expect(JSON.stringify(insert?.body)).not.toContain('accessConfigs');

    const [instance] = fake.instances();
    expect(instance?.machineType).toMatch(/\/zones\/europe-west1-b\/machineTypes\/e2-standard-4$/);
    expect(instance?.labels).toEqual({ 'gitspace-id': 'gs-create', 'gitspaces-installation': INSTALLATION });
    const script = instance?.metadata.items.find((i) => i.key === 'startup-script')?.value ?? '';
    expect(agentSecretIn(script)).toBe('agent-secret-one-0123456789');
    expect(script).toContain('/dev/disk/by-id/google-gitspace-data');
    const dataDisk = fake.disks().find((d) => d.name === 'gitspace-gs-create-data');
    expect(dataDisk).toMatchObject({ sizeGb: 50, labels: instance?.labels });

    const running = await waitFor('gs-create', 'running');
    expect(running).toMatchObject({
      gitspaceId: 'gs-create',
      disks: ['gitspace-gs-create-data'],
      agentUrl: expect.stringMatching(/^http:\/\/10\.\d+\.\d+\.\d+:8089$/),
    });
  });

  it('adopts the instance it already made when a create is retried or reset', async () => {
    const before = fake.requests.filter(inserts).length;
    const first = await provider.create(request('gs-retry'), options('start-1'));
    const again = await provider.create(request('gs-retry'), options('start-1'));
    const reset = await provider.create(request('gs-retry'), options('start-1-reset'));
    expect([again.providerId, reset.providerId]).toEqual([first.providerId, first.providerId]);
    expect(fake.requests.filter(inserts).length - before).toBe(1);
    expect(fake.instances().filter((i) => i.labels['gitspace-id'] === 'gs-retry')).toHaveLength(1);
  });

  it('keeps the data disk across stop and start, and rewrites the agent secret on start', async () => {
    await provider.create(request('gs-stop'), options());
    await waitFor('gs-stop', 'running');
    const stopping = await provider.stop('gs-stop', options());
    expect(stopping).toMatchObject({ kind: 'stop', zone: 'europe-west1-b', name: expect.any(String) });
    expect((await provider.describe('gs-stop', options('key-1', stopping)))?.status).toBe('stopping');
    const stopped = await waitFor('gs-stop', 'stopped', stopping);
    expect(stopped?.disks).toEqual(['gitspace-gs-stop-data']);
    expect(fake.disks().some((d) => d.name === 'gitspace-gs-stop-data')).toBe(true);
    await provider.stop('gs-stop', options()); // stopping what is stopped succeeds

    await provider.start('gs-stop', { agentSecret: 'agent-secret-two-0123456789', ide: 'terminal' }, options());
    const running = await waitFor('gs-stop', 'running');
    expect(running?.disks).toEqual(['gitspace-gs-stop-data']);
    const instance = fake.instances().find((i) => i.name === 'gitspace-gs-stop');
    const script = instance?.metadata.items.find((i) => i.key === 'startup-script')?.value ?? '';
    expect(agentSecretIn(script)).toBe('agent-secret-two-0123456789');
    expect(script).toContain('GITSPACE_IDE=terminal');
  });

  it('deletes the instance and its disks, reporting deleting until they are gone', async () => {
    await provider.create(request('gs-delete'), options());
    await waitFor('gs-delete', 'running');
    // Long enough that a loaded machine still finds the delete in flight.
    fake.setOperationDelay(3000);
    try {
      const deleting = await provider.delete('gs-delete', options());
      expect(deleting).toMatchObject({ kind: 'delete', name: expect.any(String) });
      expect((await provider.describe('gs-delete', options('key-1', deleting)))?.status).toBe('deleting');
    } finally {
      fake.setOperationDelay(60);
    }
    await waitFor('gs-delete', null);
    expect(fake.instances().some((i) => i.name === 'gitspace-gs-delete')).toBe(false);
    expect(fake.disks().some((d) => d.name.startsWith('gitspace-gs-delete'))).toBe(false);

    await expect(provider.delete('gs-delete', options())).resolves.toBeUndefined();
    await expect(provider.stop('gs-delete', options())).resolves.toBeUndefined();
    await expect(
      provider.start('gs-delete', { agentSecret: 'agent-secret-one-0123456789', ide: 'terminal' }, options()),
    ).rejects.toBeInstanceOf(InstanceNotFoundError);
  });

  it("lists this installation's machines only, across its zones", async () => {
    const other = createGcpProvider({ config, installationId: 'someone-else', clients, logger: silentLogger });
    await provider.create(request('gs-list', { zone: 'europe-west1-c' }), options());
    await other.create(request('gs-foreign'), options());
    const listed = await provider.list(options());
    expect(listed.map((m) => m.gitspaceId)).toContain('gs-list');
    expect(listed.map((m) => m.gitspaceId)).not.toContain('gs-foreign');
    expect((await provider.describe('gs-list', options()))?.providerId).toBe('gitspace-gs-list');
    await other.delete('gs-foreign', options());
  });

  it('retries throttling and 503 answers with backoff, with one request id, and creates one instance', async () => {
    fake.failNext(1, FAKE_FAULTS.rateLimited, inserts);
    fake.failNext(1, FAKE_FAULTS.unavailable, inserts);
    const before = fake.requests.length;
    await provider.create(request('gs-faults'), options());
    const attempts = fake.requests.slice(before).filter(inserts);
    expect(attempts).toHaveLength(3);
    expect(new Set(attempts.map((r) => r.query.get('requestId'))).size).toBe(1);
    expect(fake.instances().filter((i) => i.labels['gitspace-id'] === 'gs-faults')).toHaveLength(1);
  });

  it('reports a Compute API that stays unavailable as a retryable error', async () => {
    fake.failNext(1000, FAKE_FAULTS.unavailable, (r) => r.method === 'GET');
    const error = await provider.describe('gs-anything', options()).catch((e: unknown) => e);
    fake.clearFaults();
    expect(error).toBeInstanceOf(ProviderUnavailableError);
    expect((error as ProviderError).retryable).toBe(true);
  });

  it('fails fast on a quota error with a message a user can act on', async () => {
    fake.failNext(1, FAKE_FAULTS.quotaExceeded, inserts);
    const before = fake.requests.filter(inserts).length;
    const error = await provider.create(request('gs-quota'), options()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect((error as ProviderError).retryable).toBe(false);
    expect((error as Error).message).toMatch(/Quota 'CPUS' exceeded.*Request more quota/);
    expect(fake.requests.filter(inserts).length - before).toBe(1);
    expect(await provider.describe('gs-quota', options())).toBeNull();
  });

  it('fails fast on a machine type the zone does not have', async () => {
    const error = await provider
      .create(request('gs-badtype', { machineType: 'e2-imaginary-64' }), options())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidMachineSpecError);
    expect((error as Error).message).toContain("Machine type with name 'e2-imaginary-64' does not exist");
    expect(fake.instances().some((i) => i.labels['gitspace-id'] === 'gs-badtype')).toBe(false);
  });

  it('surfaces a zone operation that fails after the insert was accepted', async () => {
    fake.failNextInsertOperation(
      'ZONE_RESOURCE_POOL_EXHAUSTED',
      "The zone 'europe-west1-b' does not have enough resources",
    );
    const created = await provider.create(request('gs-exhausted'), options());
    expect(created.operation).toMatchObject({ kind: 'insert', zone: 'europe-west1-b', name: expect.any(String) });
    const error = await waitFor('gs-exhausted', 'running', created.operation).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OperationFailedError);
    expect((error as OperationFailedError).cause).toBeInstanceOf(CapacityUnavailableError);
    expect((error as OperationFailedError).message).toContain('ZONE_RESOURCE_POOL_EXHAUSTED');
    expect(await provider.describe('gs-exhausted', options())).toBeNull();
  });

  it('keeps no operation in memory: another provider (another runner) given the handle waits for it and sees it fail', async () => {
    fake.setOperationDelay(1500);
    fake.failNextInsertOperation(
      'ZONE_RESOURCE_POOL_EXHAUSTED',
      "The zone 'europe-west1-b' does not have enough resources",
    );
    let created: MachineInfo;
    try {
      created = await provider.create(request('gs-handed-over'), options());
    } finally {
      fake.setOperationDelay(60);
    }
    // As it would reach the next step: through history, as plain JSON.
    const handle = JSON.parse(JSON.stringify(created.operation)) as ProviderOperation;
    const otherRunner = createGcpProvider({ config, installationId: INSTALLATION, clients, logger: silentLogger });
    // While the insert runs, the machine is provisioning for it, not missing.
    expect((await otherRunner.describe('gs-handed-over', options('key-1', handle)))?.status).toBe('provisioning');
    const error = await waitFor('gs-handed-over', 'running', handle, otherRunner).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OperationFailedError);
    expect((error as OperationFailedError).cause).toBeInstanceOf(CapacityUnavailableError);
  });

  it('maps refused credentials to a non-retryable auth error', async () => {
    fake.failNext(1, FAKE_FAULTS.forbidden);
    const error = await provider.list(options()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderAuthError);
    expect((error as Error).message).toMatch(/credentials were refused/);
  });
});
