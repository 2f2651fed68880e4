/**
 * The whole lifecycle on the `gcp` provider, through the REST API and the workflows: a real Temporal dev server, the
 * control plane, a runner with the real `@google-cloud/compute` client (REST transport) against the in-repo fake of
 * the Compute API on loopback, and the gitspace agent served on loopback (the fake's 10.x addresses are never dialed).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import {
  FAKE_FAULTS,
  startFakeComputeServer,
  type FakeComputeServer,
  type FakeRequest,
} from './support/fake-compute-server';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import {
  createStoppedGitspace,
  reconcileNow,
  registerInfrastructure,
  runAction,
  startAgentSlot,
  type AgentSlot,
} from './support/emulated-machine';
import { startGitServer, type GitServer } from './support/git-server';
import { TEST_INSTALLATION_ID, startTestStack, waitForGitspace, type TestStack } from './support/stack';

const INFRA = 'gcp-lab';
const ZONE = 'europe-west1-b';
const PROJECT = 'acme-dev-123';
const ORPHAN_GRACE_SECONDS = 3;

describe('gitspace lifecycle on gcp (fake Compute API)', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let git: GitServer;
  let fake: FakeComputeServer;
  let stack: TestStack;
  let agent: AgentSlot;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('hello', { 'README.md': '# hello from gcp\n' });
    fake = await startFakeComputeServer({ operationDelayMs: 100 });
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
        provider: 'gcp',
        config: {
          project: PROJECT,
          region: 'europe-west1',
          zones: [ZONE],
          network: 'gitspaces',
          subnetwork: 'regions/europe-west1/subnetworks/gitspaces',
          serviceAccount: 'gitspace-vm@acme-dev-123.iam.gserviceaccount.com',
          // The test's git server listens on loopback.
          repositoryNetworks: { allowLoopback: true },
        },
      },
      [
        { name: 'standard', machineType: 'e2-standard-4', diskSizeGb: 50 },
        // Valid in form, absent from the zone's catalogue.
        { name: 'imaginary', machineType: 'e2-imaginary-64', diskSizeGb: 50 },
      ],
    );
    // The machine's agent runs with the secret in the startup script the runner gave the instance, as on GCE.
    agent = await startAgentSlot(async (gitspaceId) => {
      const instance = instancesOf(gitspaceId)[0];
      return instance?.metadata.items.find((item) => item.key === 'startup-script')?.value;
    }, stack.dataDir);
    await stack.startRunner({ infrastructureId: INFRA, agentEndpoint: agent.url, gcpComputeEndpoint: fake.url });
  });
  afterAll(async () => {
    await agent?.close();
    await stack?.stop();
    await fake?.close();
    await git?.stop();
  });

  const instancesOf = (id: string) => fake.instances().filter((i) => i.labels['gitspace-id'] === id);
  const disksOf = (id: string) => fake.disks().filter((d) => d.labels['gitspace-id'] === id);
  const insertsFor = (id: string) =>
    fake.requests.filter(
      (r: FakeRequest) =>
        r.method === 'POST' && r.path.endsWith('/instances') && (r.body as { name?: string }).name === `gitspace-${id}`,
    );
  const stoppedGitspace = (name: string, machine = 'standard', repository = 'hello') =>
    createStoppedGitspace(stack, {
      name,
      repositoryUrl: git.urlOf(repository),
      infrastructureId: INFRA,
      machineId: `${INFRA}-${machine}`,
    });

  it('runs a gitspace on a labelled instance, keeps its data disk across stop/start, and removes both on delete', async () => {
    const id = await stoppedGitspace('compute');
    const { workspaceDir } = await agent.serve(id);
    const running = await runAction(stack, id, 'start');
    expect(running).toMatchObject({ state: 'running', url: `${stack.gatewayUrl}/gitspaces/${id}/` });
    expect(await readFile(path.join(workspaceDir, 'README.md'), 'utf8')).toBe('# hello from gcp\n');

    const [instance, ...others] = instancesOf(id);
    expect(others).toHaveLength(0);
    expect(instance).toMatchObject({ name: `gitspace-${id}`, zone: ZONE, status: 'RUNNING' });
    expect(instance?.machineType).toMatch(/\/zones\/europe-west1-b\/machineTypes\/e2-standard-4$/);
    expect(instance?.labels).toEqual({ 'gitspace-id': id, 'gitspaces-installation': TEST_INSTALLATION_ID });
    expect(disksOf(id).map((d) => [d.name, d.sizeGb])).toContainEqual([`gitspace-${id}-data`, 50]);

    expect((await runAction(stack, id, 'stop')).state).toBe('stopped');
    expect(instancesOf(id).map((i) => i.status)).toEqual(['TERMINATED']);
    expect(disksOf(id).map((d) => d.name)).toContain(`gitspace-${id}-data`);

    expect((await runAction(stack, id, 'start')).state).toBe('running');
    expect(instancesOf(id).map((i) => [i.id, i.status])).toEqual([[instance?.id, 'RUNNING']]);
    expect(disksOf(id).map((d) => d.name)).toContain(`gitspace-${id}-data`);
    expect(insertsFor(id)).toHaveLength(1);

    expect((await runAction(stack, id, 'delete')).state).toBe('deleted');
    expect(instancesOf(id)).toHaveLength(0);
    expect(disksOf(id)).toHaveLength(0);
  });

  it('retries a failed start on the instance it already inserted', async () => {
    const id = await stoppedGitspace('retried', 'standard', 'arrives-later');
    await agent.serve(id);
    expect((await runAction(stack, id, 'start')).lastError).toMatchObject({ cause: 'CloneFailedError' });
    expect(instancesOf(id).map((i) => i.status)).toEqual(['TERMINATED']);

    await git.createRepository('arrives-later', { 'README.md': 'late\n' });
    expect((await runAction(stack, id, 'retry')).state).toBe('running');
    expect(instancesOf(id).map((i) => i.status)).toEqual(['RUNNING']);
    expect(insertsFor(id)).toHaveLength(1);
    expect((await runAction(stack, id, 'delete')).state).toBe('deleted');
  });

  it('fails a start fast on a quota error, with its message, and leaves no machine', async () => {
    const id = await stoppedGitspace('over-quota');
    fake.failNext(1, FAKE_FAULTS.quotaExceeded, (r) => r.method === 'POST' && r.path.endsWith('/instances'));
    const failed = await runAction(stack, id, 'start', 20_000);
    expect(failed).toMatchObject({
      state: 'error',
      lastError: { action: 'start', step: 'ensureMachine', cause: 'QuotaExceededError' },
    });
    expect(failed.lastError.message).toContain("Quota 'CPUS' exceeded");
    expect(insertsFor(id)).toHaveLength(1);
    expect(instancesOf(id)).toHaveLength(0);
  });

  it('fails a start on a machine type the zone does not have, naming it, and leaves no machine', async () => {
    const id = await stoppedGitspace('bad-type', 'imaginary');
    const failed = await runAction(stack, id, 'start');
    expect(failed).toMatchObject({
      state: 'error',
      lastError: { action: 'start', step: 'ensureMachine', cause: 'InvalidMachineSpecError' },
    });
    expect(failed.lastError.message).toContain("Machine type with name 'e2-imaginary-64' does not exist");
    expect(instancesOf(id)).toHaveLength(0);
    expect(disksOf(id)).toHaveLength(0);
  });

  it('reconciles orphans: stops an unknown one, deletes it after the grace period, deletes leftovers of deleted gitspaces, and leaves live machines alone', async () => {
    const live = await stoppedGitspace('live');
    await agent.serve(live);
    expect((await runAction(stack, live, 'start')).state).toBe('running');
    const gone = await stoppedGitspace('gone');
    expect((await runAction(stack, gone, 'delete')).state).toBe('deleted');
    await plantInstance(gone, TEST_INSTALLATION_ID);
    await plantInstance('gs-unknown-orphan', TEST_INSTALLATION_ID);
    await plantInstance('gs-of-another-installation', 'another-installation');
    await fake.settle();
    const statusOf = (gitspaceId: string) => instancesOf(gitspaceId).map((i) => i.status);

    const first = await reconcileNow(stack, INFRA, 'first');
    expect(first).toMatchObject({
      stopped: ['gs-unknown-orphan'],
      deleted: [gone],
      awaitingGrace: ['gs-unknown-orphan'],
      failed: [],
    });
    await fake.settle();
    expect(statusOf('gs-unknown-orphan')).toEqual(['TERMINATED']);
    expect(disksOf('gs-unknown-orphan')).toHaveLength(2);
    expect(instancesOf(gone)).toHaveLength(0);
    // Its data disk (not auto-deleted) was still attached when the instance went: it is left for the next pass.
    expect(disksOf(gone).map((d) => d.users)).toEqual([[]]);
    expect(statusOf('gs-of-another-installation')).toEqual(['RUNNING']);
    expect(statusOf(live)).toEqual(['RUNNING']);
    expect((await stack.api('GET', `/api/v1/gitspaces/${live}`)).body.state).toBe('running');
    const goneEvents = (await stack.api('GET', `/api/v1/gitspaces/${gone}/events`)).body.items;
    expect(goneEvents.at(-1)).toMatchObject({ type: 'reconcile' });

    // Inside the grace period the orphan is kept (stopped), with its disks: they may be someone's work. The deleted
    // gitspace's detached disk goes now.
    expect(await reconcileNow(stack, INFRA, 'again')).toMatchObject({
      stopped: [],
      deleted: [gone],
      awaitingGrace: ['gs-unknown-orphan'],
    });
    await fake.settle();
    expect(disksOf(gone)).toHaveLength(0);
    expect(disksOf('gs-unknown-orphan')).toHaveLength(2);

    await new Promise((resolve) => setTimeout(resolve, ORPHAN_GRACE_SECONDS * 1000 + 200));
    expect(await reconcileNow(stack, INFRA, 'later')).toMatchObject({
      stopped: [],
      deleted: ['gs-unknown-orphan'],
      awaitingGrace: [],
    });
    await fake.settle();
    expect(instancesOf('gs-unknown-orphan')).toHaveLength(0);
    expect(disksOf('gs-unknown-orphan').map((d) => d.users)).toEqual([[]]);
    expect(await reconcileNow(stack, INFRA, 'last')).toMatchObject({ deleted: ['gs-unknown-orphan'] });
    await fake.settle();
    expect(disksOf('gs-unknown-orphan')).toHaveLength(0);
    expect(statusOf('gs-of-another-installation')).toEqual(['RUNNING']);
    expect(statusOf(live)).toEqual(['RUNNING']);
    expect((await runAction(stack, live, 'delete')).state).toBe('deleted');
  });

  it('hands the zone operation ensureMachine started to the runner that waits: its failure surfaces there, and a retry inserts anew', async () => {
    const id = await stoppedGitspace('handed-over');
    await agent.serve(id);
    const first = stack.runner!;
    // Long enough that the insert is still running when its runner goes and another one takes the wait over.
    fake.setOperationDelay(6000);
    fake.failNextInsertOperation(
      'ZONE_RESOURCE_POOL_EXHAUSTED',
      "The zone 'europe-west1-b' does not have enough resources",
    );
    try {
      const started = await stack.api('POST', `/api/v1/gitspaces/${id}/actions`, { action: 'start' });
      expect(started.status).toBe(202);
      await waitForGitspace(stack, id, (g) => g.operation?.step === 'waitForMachine');
      expect(insertsFor(id)).toHaveLength(1);
      await first.stop();
      await stack.startRunner({ infrastructureId: INFRA, agentEndpoint: agent.url, gcpComputeEndpoint: fake.url });
      const failed = await waitForGitspace(stack, id, (g) => g.state === 'error', 60_000);
      // The second runner never saw the insert, yet it waited for that very operation and reports its error (not
      // "the machine disappeared").
      expect(failed.lastError).toMatchObject({
        action: 'start',
        step: 'waitForMachine',
        cause: 'CapacityUnavailableError',
      });
      expect(failed.lastError.message).toContain('ZONE_RESOURCE_POOL_EXHAUSTED');
    } finally {
      fake.setOperationDelay(100);
    }
    expect(instancesOf(id)).toHaveLength(0);
    // A retry is a new request to Compute (a new request id), not the failed insert again.
    expect((await runAction(stack, id, 'retry')).state).toBe('running');
    expect(insertsFor(id)).toHaveLength(2);
    expect(new Set(insertsFor(id).map((r) => r.query.get('requestId'))).size).toBe(2);
    expect((await runAction(stack, id, 'delete')).state).toBe('deleted');
  });

  /** A labelled instance with a labelled data disk, inserted straight into the fake as a crashed or foreign control
   * plane leaves one. */
  async function plantInstance(gitspaceId: string, installation: string): Promise<void> {
    const labels = { 'gitspace-id': gitspaceId, 'gitspaces-installation': installation };
    const name = `planted-${gitspaceId}`;
    const response = await fetch(`${fake.url}/compute/v1/projects/${PROJECT}/zones/${ZONE}/instances`, {
      method: 'POST',
      // The fake wants some bearer token, as the API does; an emulator run's is fixed.
      headers: { 'content-type': 'application/json', authorization: 'Bearer emulator' },
      body: JSON.stringify({
        name,
        machineType: `zones/${ZONE}/machineTypes/e2-small`,
        labels,
        disks: [
          { boot: true, autoDelete: true, initializeParams: { diskName: name, labels } },
          { boot: false, autoDelete: false, initializeParams: { diskName: `${name}-data`, labels } },
        ],
      }),
    });
    expect(response.status).toBe(200);
  }
});
