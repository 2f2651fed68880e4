import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitServer, type GitServer } from './support/git-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';

/**
 * Issue 14: removing a user stops their gitspaces through the lifecycle, not behind it, and loses none. Real Temporal
 * dev server, control plane, runner, gateway and git server: a running gitspace really stops (the stop workflow runs
 * and its events name the administrator), and an administrator can start it again later.
 */
describe('removing a user', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let git: GitServer;
  let stack: TestStack;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('repo', { 'README.md': 'hi\n' });
    stack = await startTestStack({ workflowBundle: bundle });
  });
  afterAll(async () => {
    await stack?.stop();
    await git?.stop();
  });

  type Event = { type: string; message: string; actor: { type: string; id?: string; name?: string } };
  const eventsOf = async (id: string) =>
    (await stack.api('GET', `/api/v1/gitspaces/${id}/events`)).body.items as Event[];

  it("stops the removed user's running gitspace as the administrator; an administrator can start it again", async () => {
    const users = (await stack.api('GET', '/api/v1/users')).body.items as { id: string; name: string }[];
    const admin = { type: 'user', id: users.find((u) => u.name === 'admin')!.id, name: 'admin' };
    const created = await stack.api('POST', '/api/v1/users', { name: 'leaver' });
    const leaver = { id: created.body.user.id as string, token: created.body.token as string };
    const gitspace = await stack.api(
      'POST',
      '/api/v1/gitspaces',
      { name: 'theirs', repository: { url: git.urlOf('repo') }, infrastructureId: 'local', machineId: 'local-default' },
      leaver.token,
    );
    expect(gitspace.status).toBe(201);
    const id = gitspace.body.gitspace.id as string;
    expect((await waitForGitspace(stack, id, (g) => g.state === 'running' || g.state === 'error')).state).toBe(
      'running',
    );
    const before = (await eventsOf(id)).length;

    const removed = await stack.api('DELETE', `/api/v1/users/${leaver.id}`);
    expect(removed.status).toBe(202);
    expect(removed.body).toMatchObject({
      user: { id: leaver.id, deleted: true },
      stopped: [{ id, name: 'theirs', operation: { action: 'stop' } }],
      notStopped: [],
    });
    const refused = await stack.api('GET', '/api/v1/gitspaces', undefined, leaver.token);
    expect(refused.status).toBe(401);

    const stopped = await waitForGitspace(stack, id, (g) => g.state === 'stopped' || g.state === 'error');
    expect(stopped).toMatchObject({
      state: 'stopped',
      owner: leaver.id,
      operation: { action: 'stop', status: 'succeeded' },
    });
    const stopEvents = (await eventsOf(id)).slice(before);
    expect(stopEvents.map((e) => e.message)).toEqual(expect.arrayContaining(['stop requested', 'gitspace stopped']));
    expect(stopEvents.filter((e) => e.type === 'step').length).toBeGreaterThan(0);
    for (const event of stopEvents) expect([event.message, event.actor]).toEqual([event.message, admin]);

    // Kept: the administrator still lists it, and starts it again.
    const listed = (await stack.api('GET', '/api/v1/gitspaces')).body.items as { id: string }[];
    expect(listed.map((g) => g.id)).toContain(id);
    const started = await stack.api('POST', `/api/v1/gitspaces/${id}/actions`, { action: 'start' });
    expect(started.status).toBe(202);
    const running = await waitForGitspace(stack, id, (g) => g.state === 'running' || g.state === 'error');
    expect(running).toMatchObject({ state: 'running', owner: leaver.id });
    const startEvents = (await eventsOf(id)).slice(before + stopEvents.length);
    expect(startEvents.map((e) => e.message)).toEqual(expect.arrayContaining(['start requested', 'gitspace running']));
    for (const event of startEvents) expect([event.message, event.actor]).toEqual([event.message, admin]);
  });
});
