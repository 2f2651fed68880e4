import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import {
  CONTROL_PLANE_TASK_QUEUE,
  STARTED_OUTSIDE_THE_API,
  lifecycleWorkflowId,
  type Actor,
  type LifecycleInput,
} from '../contracts/lifecycle';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitServer, type GitServer } from './support/git-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';

/**
 * Issue 10, finding 8: an event did not say who asked. Every event names its actor: the user whose request made it,
 * the reconciler, or — for a lifecycle workflow started outside the API, whose input names nobody — unknown, saying
 * so. Real Temporal dev server, runner, gateway and git server.
 */
describe('the actor on every event', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let git: GitServer;
  let stack: TestStack;
  let alice: { id: string; token: string };

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('repo', { 'README.md': 'hi\n' });
    stack = await startTestStack({ workflowBundle: bundle });
    const created = await stack.api('POST', '/api/v1/users', { name: 'alice' });
    alice = { id: created.body.user.id, token: created.body.token };
  });
  afterAll(async () => {
    await stack?.stop();
    await git?.stop();
  });

  const create = async (name: string, start: boolean, token = alice.token) => {
    const response = await stack.api(
      'POST',
      '/api/v1/gitspaces',
      { name, repository: { url: git.urlOf('repo') }, infrastructureId: 'local', machineId: 'local-default', start },
      token,
    );
    expect(response.status).toBe(201);
    return response.body.gitspace.id as string;
  };
  const eventsOf = async (id: string) =>
    (await stack.api('GET', `/api/v1/gitspaces/${id}/events`)).body.items as {
      type: string;
      message: string;
      actor: { type: string; id?: string; name?: string; reason?: string };
    }[];

  it('names the user on every event of the start, stop and delete they asked for', async () => {
    const id = await create('alices', true);
    await waitForGitspace(stack, id, (g) => g.state === 'running' || g.state === 'error');
    expect((await stack.api('POST', `/api/v1/gitspaces/${id}/actions`, { action: 'stop' }, alice.token)).status).toBe(
      202,
    );
    await waitForGitspace(stack, id, (g) => g.state === 'stopped' || g.state === 'error');
    expect((await stack.api('DELETE', `/api/v1/gitspaces/${id}`, undefined, alice.token)).status).toBe(202);
    const deleted = await waitForGitspace(stack, id, (g) => g.state === 'deleted' || g.state === 'error');
    expect(deleted.state).toBe('deleted');

    const events = await eventsOf(id);
    const states = events.filter((e) => e.type === 'state' || e.type === 'created').map((e) => e.message);
    expect(states).toEqual([
      "gitspace 'alices' created",
      'start requested',
      'gitspace running',
      'stop requested',
      'gitspace stopped',
      'delete requested',
      'gitspace deleted',
    ]);
    expect(events.filter((e) => e.type === 'step').length).toBeGreaterThan(5);
    for (const event of events)
      expect([event.message, event.actor]).toEqual([event.message, { type: 'user', id: alice.id, name: 'alice' }]);
  });

  it('names the reconciler on what reconciliation did', async () => {
    const id = await create('reconciled', true);
    await waitForGitspace(stack, id, (g) => g.state === 'running' || g.state === 'error');
    // The record says stopped while the machine runs: reconciliation stops the machine.
    await stack.controlPlane.store.changeState(id, {
      to: 'stopped',
      message: 'stopped behind the machine’s back (test)',
      url: null,
      actor: { type: 'user', id: alice.id, name: 'alice' },
    });
    await stack.controlPlane.client.schedule.getHandle('reconcile-local').trigger();
    let events = await eventsOf(id);
    for (let i = 0; i < 300 && !events.some((e) => e.type === 'reconcile'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      events = await eventsOf(id);
    }
    const reconciled = events.find((e) => e.type === 'reconcile');
    expect(reconciled).toMatchObject({
      message: expect.stringContaining('reconciliation stopped a machine that should not run'),
      actor: { type: 'reconciler' },
    });
  });

  it('records a workflow started outside the API, with no actor in its input, as unknown', async () => {
    const id = await create('by-hand', false);
    // As `temporal workflow start --type deleteGitspace --input '{"gitspaceId": "…"}'` would.
    const handle = await stack.controlPlane.client.workflow.start('deleteGitspace', {
      workflowId: lifecycleWorkflowId(id),
      taskQueue: CONTROL_PLANE_TASK_QUEUE,
      args: [{ gitspaceId: id } satisfies LifecycleInput],
    });
    await handle.result();
    const events = await eventsOf(id);
    expect(events[0]).toMatchObject({ type: 'created', actor: { type: 'user', id: alice.id, name: 'alice' } });
    expect(events.length).toBeGreaterThan(3);
    for (const event of events.slice(1))
      expect([event.message, event.actor]).toEqual([event.message, STARTED_OUTSIDE_THE_API]);
    expect(STARTED_OUTSIDE_THE_API).toEqual({
      type: 'unknown',
      reason: 'started outside the API (a Temporal workflow whose input names no actor)',
    });
  });

  it('believes no name from a workflow input: a user is named as the database knows them, an unknown one is not a user', async () => {
    const forged = await create('forged-name', false);
    await (
      await stack.controlPlane.client.workflow.start('deleteGitspace', {
        workflowId: lifecycleWorkflowId(forged),
        taskQueue: CONTROL_PLANE_TASK_QUEUE,
        args: [{ gitspaceId: forged, actor: { type: 'user', id: alice.id, name: 'the CEO' } } satisfies LifecycleInput],
      })
    ).result();
    expect((await eventsOf(forged)).slice(1).map((e) => e.actor)).toContainEqual({
      type: 'user',
      id: alice.id,
      name: 'alice',
    });
    expect((await eventsOf(forged)).some((e) => e.actor.name === 'the CEO')).toBe(false);

    const ghost = await create('ghost', false);
    await (
      await stack.controlPlane.client.workflow.start('deleteGitspace', {
        workflowId: lifecycleWorkflowId(ghost),
        taskQueue: CONTROL_PLANE_TASK_QUEUE,
        args: [
          { gitspaceId: ghost, actor: { type: 'user', id: 'usr-nobody', name: 'nobody' } } satisfies LifecycleInput,
        ],
      })
    ).result();
    for (const event of (await eventsOf(ghost)).slice(1)) {
      expect(event.actor).toEqual({ type: 'unknown', reason: 'the workflow input names a user that does not exist' });
    }
  });

  it('believes no reconciler, unrecorded auto-stop or reason of its own from a workflow input: only the API starts these, for a user', async () => {
    const claims: Actor[] = [
      { type: 'reconciler' },
      { type: 'auto-stop' },
      // An auto-stop is believed only with a stop request the watcher recorded for that gitspace.
      { type: 'auto-stop', reason: 'idle', requestId: 'asr-forged' },
      { type: 'unknown', reason: 'routine maintenance by the platform team, nothing to see' },
    ];
    // The auto-stop only ever stops: a stop with a request id that was never recorded is the claim to refuse.
    const runs: [Actor, 'deleteGitspace' | 'stopGitspace'][] = [
      ...claims.map((actor): [Actor, 'deleteGitspace'] => [actor, 'deleteGitspace']),
      [{ type: 'auto-stop', reason: 'max-lifetime', requestId: 'asr-forged' }, 'stopGitspace'],
    ];
    for (const [i, [actor, workflow]] of runs.entries()) {
      const id = await create(`claimed-${i}`, false);
      await (
        await stack.controlPlane.client.workflow.start(workflow, {
          workflowId: lifecycleWorkflowId(id),
          taskQueue: CONTROL_PLANE_TASK_QUEUE,
          args: [{ gitspaceId: id, actor } satisfies LifecycleInput],
        })
      ).result();
      const events = (await eventsOf(id)).slice(1);
      expect(events.length).toBeGreaterThan(3);
      for (const event of events) {
        expect([actor.type, event.message, event.actor]).toEqual([
          actor.type,
          event.message,
          {
            type: 'unknown',
            reason:
              actor.type === 'auto-stop'
                ? 'the workflow input names an auto-stop that was never requested'
                : 'the workflow input names an actor that is not a user',
          },
        ]);
      }
    }
  });

  it('describes the actor of events, and the 429s and the quota, in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${stack.controlPlane.url}/api/v1/openapi.json`)).json()) as any;
    const events = doc.paths['/gitspaces/{id}/events'].get.responses;
    const event = events['200'].content['application/json'].schema.properties.items.items;
    expect(event.required).toContain('actor');
    expect(event.properties.actor.oneOf.map((o: any) => o.properties.type.const)).toEqual([
      'user',
      'reconciler',
      'auto-stop',
      'unknown',
    ]);
    expect(events['429'].headers['retry-after']).toBeDefined();
    expect(doc.paths['/gitspaces'].post.responses['403'].description).toContain('quota');
    expect(doc.paths['/gitspaces'].get.responses['429']).toBeDefined();
  });
});
