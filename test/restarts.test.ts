import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { CONTROL_PLANE_TASK_QUEUE, lifecycleWorkflowId } from '../contracts/lifecycle';
import { localMachinePaths, localMachinesRoot } from '../providers/local/provider';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitServer, type GitServer } from './support/git-server';
import { lifecycleClosed, startTestStack, waitForGitspace, type TestStack } from './support/stack';

/** Runners, agents and the control plane restart, and every gitspace still shows a state that is true. */
describe('restarts and recovery', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let git: GitServer;
  let stack: TestStack;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('repo', { 'README.md': 'hi\n' });
  });
  afterEach(async () => {
    await stack?.stop();
  });
  afterAll(async () => {
    await git?.stop();
  });

  const createRunning = async (name: string) => {
    const created = await stack.api('POST', '/api/v1/gitspaces', {
      name,
      repository: { url: git.urlOf('repo') },
      infrastructureId: 'local',
      machineId: 'local-default',
    });
    return waitForGitspace(stack, created.body.gitspace.id, (g) => g.state === 'running');
  };
  const agentOf = async (id: string) =>
    JSON.parse(await readFile(localMachinePaths(localMachinesRoot(stack.dataDir), id).record, 'utf8')).agent;
  const healthy = async (port: number) =>
    fetch(`http://127.0.0.1:${port}/_agent/healthz`).then(
      (r) => r.ok,
      () => false,
    );

  it('keeps gitspaces running across a runner restart, and the new runner adopts them', async () => {
    stack = await startTestStack({ workflowBundle: bundle });
    const gitspace = await createRunning('adopted');
    const agent = await agentOf(gitspace.id);
    await stack.runner!.stop();
    expect(await healthy(agent.port)).toBe(true);

    await stack.startRunner();
    await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'stop' });
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'stopped');
    expect(await healthy(agent.port)).toBe(false);
    expect(await agentOf(gitspace.id)).toBeNull();
  });

  it('finds a gitspace whose machine died and shows it stopped, without its route, until started again', async () => {
    stack = await startTestStack({ workflowBundle: bundle });
    const gitspace = await createRunning('crashed');
    const agent = await agentOf(gitspace.id);
    process.kill(agent.pid, 'SIGKILL'); // as a host restart would (its sandbox goes with it)
    await stack.controlPlane.client.schedule.getHandle('reconcile-local').trigger();
    const stopped = await waitForGitspace(stack, gitspace.id, (g) => g.state === 'stopped');
    const events = (await stack.api('GET', `/api/v1/gitspaces/${gitspace.id}/events`)).body.items;
    expect(events.at(-1).message).toContain('the machine was found stopped');
    expect(stopped.url).toBeUndefined();
    // The route goes in the same reconciliation run, just after the state is recorded.
    const routed = async () =>
      (
        (await (
          await fetch(`${stack.gatewayAdminUrl}/routes`, {
            headers: { authorization: 'Bearer test-gateway-admin-token' },
          })
        ).json()) as any
      ).routes.map((r: any) => r.gitspaceId);
    for (let i = 0; i < 50 && (await routed()).includes(gitspace.id); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await routed()).not.toContain(gitspace.id);

    await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'start' });
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'running');
  });

  it("boots a machine left running by an earlier start again, with the new start's agent secret", async () => {
    stack = await startTestStack({ workflowBundle: bundle });
    const gitspace = await createRunning('rebooted');
    const before = await agentOf(gitspace.id);
    // Its state is recorded a moment before its start workflow closes: a second run under that id waits for it.
    await lifecycleClosed(stack, gitspace.id);
    // Another start of a running gitspace, as a Web UI reset or a re-run of the workflow would make: its agent
    // secret (derived from the run) is not the one the running agent has.
    const handle = await stack.controlPlane.client.workflow.start('startGitspace', {
      workflowId: lifecycleWorkflowId(gitspace.id),
      taskQueue: CONTROL_PLANE_TASK_QUEUE,
      args: [{ gitspaceId: gitspace.id }],
    });
    expect(await handle.result()).toEqual({ url: gitspace.url });
    const after = await agentOf(gitspace.id);
    // A new agent process, and the earlier start's is gone: the machine was booted again.
    expect(after.pid).not.toBe(before.pid);
    expect(await healthy(after.port)).toBe(true);
    expect(await healthy(before.port)).toBe(after.port === before.port);
    expect((await stack.api('GET', `/api/v1/gitspaces/${gitspace.id}`)).body.state).toBe('running');
  });

  it('loses nothing when the control plane restarts: same gitspaces, states and events', async () => {
    const dbDir = path.join(require('node:os').tmpdir(), `gitspaces-db-${process.pid}-${Date.now()}`);
    stack = await startTestStack({ workflowBundle: bundle, database: { kind: 'pglite', dir: dbDir } });
    const gitspace = await createRunning('durable');
    const before = (await stack.api('GET', `/api/v1/gitspaces/${gitspace.id}/events`)).body.items;
    await stack.restartControlPlane();
    const after = await stack.api('GET', `/api/v1/gitspaces/${gitspace.id}`);
    expect(after.body).toMatchObject({ id: gitspace.id, state: 'running', url: gitspace.url });
    const events = (await stack.api('GET', `/api/v1/gitspaces/${gitspace.id}/events`)).body.items;
    expect(events.slice(0, before.length)).toEqual(before);
    await stack.api('DELETE', `/api/v1/gitspaces/${gitspace.id}`);
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'deleted');
    await require('node:fs/promises').rm(dbDir, { recursive: true, force: true });
  });

  it('fails a start within a bounded time when no runner serves the infrastructure, naming it', async () => {
    stack = await startTestStack({ workflowBundle: bundle, runner: false, runnerPickupTimeoutSeconds: 3 });
    const created = await stack.api('POST', '/api/v1/gitspaces', {
      name: 'orphaned',
      repository: { url: git.urlOf('repo') },
      infrastructureId: 'local',
      machineId: 'local-default',
    });
    const failed = await waitForGitspace(stack, created.body.gitspace.id, (g) => g.state === 'error', 60_000);
    expect(failed.lastError).toMatchObject({ action: 'start', step: 'ensureMachine', cause: 'RunnerUnavailableError' });
    expect(failed.lastError.message).toMatch(
      /^no runner is serving infrastructure 'local': nothing picked up 'ensure the machine exists and runs' within 3s/,
    );
  });
});
