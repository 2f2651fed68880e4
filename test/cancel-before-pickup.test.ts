import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { lifecycleWorkflowId } from '../contracts/lifecycle';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';

/**
 * A stop that arrives while the start still waits for a runner cancels an activity no worker ever started. The server
 * records that cancellation with details of its own ("ACTIVITY_ID_NOT_STARTED", never through our codec): the start
 * must still wind down, not fail its workflow task forever on a payload it cannot decrypt.
 */
describe('a stop while the start waits for a runner', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let stack: TestStack;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    stack = await startTestStack({ workflowBundle: bundle, runner: false, runnerPickupTimeoutSeconds: 8 });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('cancels the start, which ends, and the gitspace leaves starting', async () => {
    const created = await stack.api('POST', '/api/v1/gitspaces', {
      name: 'unpicked',
      repository: { url: 'https://git.example.com/org/repo.git' },
      infrastructureId: 'local',
      machineId: 'local-default',
      ide: 'terminal',
    });
    const id = created.body.gitspace.id as string;
    const start = created.body.operation.runId as string;
    await waitForGitspace(stack, id, (g) => g.state === 'starting' && g.operation?.step === 'ensureMachine');
    const stop = await stack.api('POST', `/api/v1/gitspaces/${id}/actions`, { action: 'stop' });
    expect([202, 409]).toContain(stop.status);

    const handle = stack.controlPlane.client.workflow.getHandle(lifecycleWorkflowId(id), start);
    const ended = await Promise.race([
      handle.result().then(
        () => 'completed',
        (error: Error) => error.name,
      ),
      new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 60_000)),
    ]);
    expect(ended).not.toBe('still running');
    const after = await waitForGitspace(stack, id, (g) => g.state !== 'starting');
    expect(['stopped', 'stopping', 'error']).toContain(after.state);
  });
});
