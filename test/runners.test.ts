import { existsSync } from 'node:fs';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { lifecycleWorkflowId } from '../contracts/lifecycle';
import { CONTRACT_VERSION_NEEDED, RUNNER_CONTRACT_VERSION } from '../common/work-order';
import { localMachinePaths, localMachinesRoot } from '../providers/local/provider';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { PACKAGE_VERSION } from '../common/package-version';
import { startGitServer, type GitServer } from './support/git-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';

const PICKUP_SECONDS = 8;
/** The contract version a start needs. */
const START_NEEDS = CONTRACT_VERSION_NEEDED.start;

/**
 * Runners that are older than the control plane, gone, or never there; and what the API says right after it accepted
 * an action. Real dev server, control plane, runners and gateway in this process.
 */
describe('runners and the truth after a 202', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let stack: TestStack;
  let git: GitServer;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('hello', { 'README.md': '# hello\n' });
    stack = await startTestStack({ workflowBundle: bundle, runner: false, runnerPickupTimeoutSeconds: PICKUP_SECONDS });
  });
  afterAll(async () => {
    await stack?.stop();
    await git?.stop();
  });

  const create = async (name: string, options: { infrastructureId?: string; repository?: string; start?: boolean }) => {
    const infrastructureId = options.infrastructureId ?? 'local';
    const response = await stack.api('POST', '/api/v1/gitspaces', {
      name,
      repository: { url: options.repository ?? git.urlOf('hello') },
      infrastructureId,
      machineId: `${infrastructureId}-default`,
      ide: 'terminal',
      start: options.start ?? true,
    });
    expect(response.status).toBe(201);
    return response.body as { gitspace: any; operation?: any };
  };
  const registerLocal = async (name: string) => {
    const created = await stack.api('POST', '/api/v1/infrastructures', {
      name,
      provider: 'local',
      config: { repositoryNetworks: { allowLoopback: true } },
      gatewayUrl: stack.gatewayUrl,
    });
    expect(created.status).toBe(201);
    const machine = await stack.api('POST', `/api/v1/infrastructures/${name}/machines`, {
      name: 'default',
      machineType: 'local',
      diskSizeGb: 10,
    });
    expect(machine.status).toBe(201);
  };
  const eventsOf = async (id: string) => (await stack.api('GET', `/api/v1/gitspaces/${id}/events`)).body.items as any[];

  it('fails a start fast on a runner older than the contract it needs, naming both versions, on the gitspace and its events', async () => {
    // Older than a start needs (warm pools need a newer one still, RUNNER_CONTRACT_VERSION).
    const old = await stack.startRunner({ contractVersion: START_NEEDS - 1 });
    try {
      const began = Date.now();
      const { gitspace } = await create('too-old', {});
      const failed = await waitForGitspace(stack, gitspace.id, (g) => g.state === 'error', PICKUP_SECONDS * 1000);
      // Refused at once, not found out by a timeout.
      expect(Date.now() - began).toBeLessThan(PICKUP_SECONDS * 1000);
      expect(failed.lastError).toMatchObject({
        action: 'start',
        step: 'ensureMachine',
        cause: 'RunnerContractVersionError',
      });
      expect(failed.lastError.message).toMatch(
        new RegExp(
          `^runner for infrastructure 'local' is version ${START_NEEDS - 1}, needs ${START_NEEDS}; upgrade it`,
        ),
      );
      expect(failed.lastError.message.match(/upgrade it/g)).toHaveLength(1);
      const events = await eventsOf(gitspace.id);
      expect(events.at(-1)).toMatchObject({ type: 'state', state: 'error' });
      expect(events.at(-1).message).toContain(`is version ${START_NEEDS - 1}, needs ${START_NEEDS}`);

      const listed = await stack.api('GET', '/api/v1/infrastructures/local');
      expect(listed.status).toBe(200);
      expect(listed.body.runnerContractVersion).toBe(RUNNER_CONTRACT_VERSION);
      expect(listed.body.runners).toContainEqual(
        expect.objectContaining({
          contractVersion: START_NEEDS - 1,
          version: PACKAGE_VERSION,
          upToDate: false,
        }),
      );
    } finally {
      await old.stop();
    }
  });

  it('lists the runners polling an infrastructure, with their versions and when they last polled', async () => {
    await stack.startRunner();
    const deadline = Date.now() + 20_000;
    let runners: any[] = [];
    while (Date.now() < deadline) {
      runners = (await stack.api('GET', '/api/v1/infrastructures/local')).body.runners;
      if (runners.some((r) => r.contractVersion === RUNNER_CONTRACT_VERSION)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const current = runners.find((r) => r.contractVersion === RUNNER_CONTRACT_VERSION);
    expect(current).toMatchObject({
      version: PACKAGE_VERSION,
      upToDate: true,
      identity: expect.stringContaining(`${process.pid}@`),
    });
    expect(Date.now() - new Date(current.lastAccessTime).getTime()).toBeLessThan(120_000);
    // An infrastructure nobody serves lists none; an unknown one is 404.
    await registerLocal('unserved');
    expect((await stack.api('GET', '/api/v1/infrastructures/unserved')).body.runners).toEqual([]);
    expect((await stack.api('GET', '/api/v1/infrastructures/nothing-here')).status).toBe(404);
  });

  it('takes a stop right after a start: the start is cancelled, not "already stopped"', async () => {
    const { gitspace, operation } = await create('start-then-stop', {});
    expect(operation.action).toBe('start');
    const stop = await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'stop' });
    expect(stop.status).toBe(202);
    expect(stop.body.operation.action).toBe('stop');
    const stopped = await waitForGitspace(
      stack,
      gitspace.id,
      (g) => g.operation?.runId === stop.body.operation.runId && g.operation.status !== 'running',
    );
    expect(stopped.state).toBe('stopped');
    const start = await stack.controlPlane.client.workflow
      .getHandle(lifecycleWorkflowId(gitspace.id), operation.runId)
      .describe();
    expect(start.status.name).toBe('CANCELLED');
  });

  it('shows starting at once after a retry is accepted, not the old error', async () => {
    const { gitspace } = await create('retried', { repository: git.urlOf('not-there-yet') });
    const failed = await waitForGitspace(stack, gitspace.id, (g) => g.state === 'error');
    expect(failed.lastError.cause).toBe('CloneFailedError');
    await git.createRepository('not-there-yet', { 'README.md': 'late\n' });
    const retry = await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'retry' });
    expect(retry.status).toBe(202);
    const now = (await stack.api('GET', `/api/v1/gitspaces/${gitspace.id}`)).body;
    expect(now.state).toBe('starting');
    expect(now.lastError).toBeUndefined();
    expect((await waitForGitspace(stack, gitspace.id, (g) => g.state !== 'starting')).state).toBe('running');
    expect((await stack.api('DELETE', `/api/v1/gitspaces/${gitspace.id}`)).status).toBe(202);
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'deleted');
  });

  it('never leaves a cancelled stop in stopping', async () => {
    const { gitspace } = await create('cancelled-stop', {});
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'running');
    // Without a runner the stop waits at its first step; it is cancelled there (from the Web UI or the CLI, say).
    await stack.runner!.stop();
    const stop = await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'stop' });
    expect(stop.status).toBe(202);
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'stopping' && g.operation?.step === 'removeRoute');
    await stack.controlPlane.client.workflow.getHandle(lifecycleWorkflowId(gitspace.id)).cancel();
    const after = await waitForGitspace(stack, gitspace.id, (g) => g.state !== 'stopping', PICKUP_SECONDS * 1000);
    expect(after).toMatchObject({
      state: 'error',
      lastError: { action: 'stop', step: 'removeRoute', cause: 'OperationCancelledError' },
    });
    expect(after.operation.status).toBe('cancelled');
    // A runner again, and the stop is retried to the end.
    await stack.startRunner();
    expect((await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'retry' })).status).toBe(202);
    expect(
      (await waitForGitspace(stack, gitspace.id, (g) => g.state !== 'stopping' && g.state !== 'error')).state,
    ).toBe('stopped');
  });

  it('reports a runner that is not polling within the pickup timeout, not twice it', async () => {
    await registerLocal('nobody');
    const began = Date.now();
    const { gitspace } = await create('unserved-start', { infrastructureId: 'nobody' });
    const failed = await waitForGitspace(stack, gitspace.id, (g) => g.state === 'error', 4 * PICKUP_SECONDS * 1000);
    const took = Date.now() - began;
    expect(failed.lastError).toMatchObject({ action: 'start', step: 'ensureMachine', cause: 'RunnerUnavailableError' });
    expect(failed.lastError.message).toMatch(
      new RegExp(
        `^no runner is serving infrastructure 'nobody': nothing picked up 'ensure the machine exists and runs' within ${PICKUP_SECONDS}s`,
      ),
    );
    expect(took).toBeGreaterThanOrEqual(PICKUP_SECONDS * 1000);
    expect(took).toBeLessThan(PICKUP_SECONDS * 1000 + 4000);
  });

  it('deletes a gitspace whose runner is gone (the machine left for reconciliation, with a warning), then its infrastructure', async () => {
    await registerLocal('lab');
    const labRunner = await stack.startRunner({ infrastructureId: 'lab' });
    const { gitspace } = await create('orphaned', { infrastructureId: 'lab' });
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'running');
    await labRunner.stop();

    const deletion = await stack.api('DELETE', `/api/v1/gitspaces/${gitspace.id}`);
    expect(deletion.status).toBe(202);
    const deleted = await waitForGitspace(stack, gitspace.id, (g) => g.state !== 'deleting', 3 * PICKUP_SECONDS * 1000);
    expect(deleted.state).toBe('deleted');
    const last = (await eventsOf(gitspace.id)).at(-1);
    expect(last).toMatchObject({ type: 'state', state: 'deleted' });
    expect(last.message).toMatch(/no runner is serving infrastructure 'lab'.*left for reconciliation/);
    expect(last.data.warning).toMatch(/left for reconciliation/);
    // Nobody touched the machine: it is still there for reconciliation.
    expect(existsSync(localMachinePaths(localMachinesRoot(stack.dataDir), gitspace.id).record)).toBe(true);

    // The infrastructure "nobody" still has its failed gitspace; "lab" has only a deleted one now.
    expect((await stack.api('DELETE', '/api/v1/infrastructures/lab')).status).toBe(204);
    expect((await stack.api('GET', '/api/v1/infrastructures/lab')).status).toBe(404);
    // Its reconciliation schedule went with it; the deleted gitspace's record and events stay readable.
    await expect(stack.controlPlane.client.schedule.getHandle('reconcile-lab').describe()).rejects.toThrow();
    expect((await stack.api('GET', `/api/v1/gitspaces/${gitspace.id}`)).body).toMatchObject({
      state: 'deleted',
      infrastructureId: 'lab',
    });
  });
});
