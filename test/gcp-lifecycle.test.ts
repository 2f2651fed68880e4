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
} from '../providers/gcp/fake-compute-server';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import {
  createStoppedGitspace,
  registerInfrastructure,
  runAction,
  startAgentSlot,
  type AgentSlot,
} from './support/emulated-machine';
import { startGitServer, type GitServer } from './support/git-server';
import { TEST_INSTALLATION_ID, startTestStack, type TestStack } from './support/stack';

const INFRA = 'gcp-lab';
const ZONE = 'europe-west1-b';

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
    stack = await startTestStack({ workflowBundle: bundle, runner: false, runnerPickupTimeoutSeconds: 20 });
    await registerInfrastructure(
      stack,
      {
        name: INFRA,
        provider: 'gcp',
        config: {
          project: 'acme-dev-123',
          region: 'europe-west1',
          zones: [ZONE],
          network: 'gitspaces',
          subnetwork: 'regions/europe-west1/subnetworks/gitspaces',
          serviceAccount: 'gitspace-vm@acme-dev-123.iam.gserviceaccount.com',
        },
      },
      [
        { name: 'standard', machineType: 'e2-standard-4', diskSizeGb: 50 },
        // Valid in form, absent from the zone's catalogue.
        { name: 'imaginary', machineType: 'e2-imaginary-64', diskSizeGb: 50 },
      ],
    );
    agent = await startAgentSlot(stack);
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
});
