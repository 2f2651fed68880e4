import { startRouteHarness, type RouteHarness } from '../test/support/route-harness';

/**
 * The REST API's routes without Temporal (test/support/route-harness.ts): the real app, store and lifecycle service,
 * with a fake at the one edge where the service talks to Temporal; a test plays the workflow's part through the store.
 */
describe('REST API routes (no Temporal)', () => {
  let harness: RouteHarness;
  let store: RouteHarness['store'];
  let fake: RouteHarness['fake'];
  let adminToken: string;
  let ada: { id: string; token: string };
  let bob: { id: string; token: string };

  beforeAll(async () => {
    harness = await startRouteHarness();
    ({ store, fake, adminToken } = harness);
    ada = await harness.member('ada');
    bob = await harness.member('bob');
  });
  afterAll(async () => {
    await harness?.close();
  });

  const call = (method: string, route: string, token: string | undefined, body?: unknown) =>
    harness.call(method, route, token, body);
  const gitspace = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    repository: { url: 'https://git.example.test/org/repo.git' },
    infrastructureId: 'local',
    machineId: 'local-default',
    ...extra,
  });
  /** A stopped gitspace of ada's, created without a start. */
  const stoppedGitspace = async (name: string) => {
    const created = await call('POST', '/gitspaces', ada.token, gitspace(name, { start: false }));
    expect(created.status).toBe(201);
    return created.body.gitspace.id as string;
  };
  const stateOf = async (id: string) => (await store.getGitspace(id)).state;
  const action = (id: string, name: string, token = ada.token) =>
    call('POST', `/gitspaces/${id}/actions`, token, { action: name });

  it('answers 401 without a token or with an unknown one, and says why', async () => {
    for (const token of [undefined, 'gsp_not-a-token']) {
      const response = await call('GET', '/gitspaces', token);
      expect(response.status).toBe(401);
      expect(response.body.error.code).toBe('unauthenticated');
    }
    expect((await call('GET', '/gitspaces', ada.token)).status).toBe(200);
  });

  it("answers 404 for another user's gitspace on every route, and lists only one's own", async () => {
    const id = await stoppedGitspace('adas');
    for (const [method, route, body] of [
      ['GET', `/gitspaces/${id}`, undefined],
      ['GET', `/gitspaces/${id}/events`, undefined],
      ['POST', `/gitspaces/${id}/actions`, { action: 'start' }],
      ['DELETE', `/gitspaces/${id}`, undefined],
    ] as const) {
      const response = await call(method, route, bob.token, body);
      expect(response.status).toBe(404);
      expect(response.body.error.code).toBe('not_found');
    }
    expect(fake.runs.filter((r) => (r.args[0] as { gitspaceId: string }).gitspaceId === id)).toEqual([]);
    const bobs = await call('GET', '/gitspaces', bob.token);
    expect(bobs.body.items.map((g: { id: string }) => g.id)).not.toContain(id);
    const adas = await call('GET', '/gitspaces', ada.token);
    expect(adas.body.items.map((g: { id: string }) => g.id)).toContain(id);
    const admins = await call('GET', '/gitspaces', adminToken);
    expect(admins.body.items.map((g: { id: string }) => g.id)).toContain(id);
    expect((await call('GET', `/gitspaces/${id}`, adminToken)).status).toBe(200);
  });

  it('answers 400 with every problem and its field path, and creates nothing', async () => {
    const before = (await call('GET', '/gitspaces', ada.token)).body.items.length;
    const response = await call('POST', '/gitspaces', ada.token, {
      name: '../x',
      repository: { url: 'file:///etc/passwd' },
      infrastructureId: 'local',
      machineId: 'local-default',
      ide: 'emacs',
    });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe('invalid_request');
    expect(response.body.error.fields.map((f: { path: string }) => f.path).sort()).toEqual(
      ['ide', 'name', 'repository.url'].sort(),
    );
    expect((await call('GET', '/gitspaces', ada.token)).body.items.length).toBe(before);

    const id = await stoppedGitspace('bad-action');
    const bad = await action(id, 'explode');
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields.map((f: { path: string }) => f.path)).toEqual(['action']);
  });

  it('creates and starts a gitspace: 201, state starting, its start workflow named for the user', async () => {
    const runsBefore = fake.runs.length;
    const response = await call('POST', '/gitspaces', ada.token, gitspace('started'));
    expect(response.status).toBe(201);
    const { gitspace: created, operation } = response.body;
    expect(created.state).toBe('starting');
    expect(operation).toMatchObject({ action: 'start', workflowId: `gitspace-${created.id}`, status: 'running' });
    const run = fake.runs[runsBefore]!;
    expect(fake.runs).toHaveLength(runsBefore + 1);
    expect(run).toMatchObject({ type: 'startGitspace', workflowId: `gitspace-${created.id}`, runId: operation.runId });
    expect(run.args).toEqual([{ gitspaceId: created.id, actor: { type: 'user', id: ada.id, name: 'ada' } }]);
    expect((await call('GET', `/gitspaces/${created.id}`, ada.token)).body.state).toBe('starting');
  });

  it('refuses actions the state does not allow with 409, and starts none', async () => {
    const id = await stoppedGitspace('machine');
    const runsBefore = fake.runs.length;
    const stop = await action(id, 'stop');
    expect(stop.status).toBe(409);
    expect(stop.body.error.message).toBe("gitspace 'machine' is already stopped; it cannot stop");
    const retry = await action(id, 'retry');
    expect(retry.status).toBe(409);
    expect(retry.body.error.message).toBe("gitspace 'machine' is stopped; only a gitspace in error can be retried");
    expect(fake.runs).toHaveLength(runsBefore);
    expect(await stateOf(id)).toBe('stopped');
  });

  it('start → 202 starting; a stop during the start cancels it first, then 202 stopping', async () => {
    const id = await stoppedGitspace('cancel-me');
    const started = await action(id, 'start');
    expect(started.status).toBe(202);
    expect(started.body.operation).toMatchObject({ action: 'start', workflowId: `gitspace-${id}` });
    expect(await stateOf(id)).toBe('starting');
    // A second start while one runs: 409 naming the running one.
    const again = await action(id, 'start');
    expect(again.status).toBe(409);
    expect(again.body.error.message).toContain(`has a start operation running (workflow gitspace-${id}`);

    const stopped = await action(id, 'stop');
    expect(stopped.status).toBe(202);
    expect(fake.cancelled).toContain(`gitspace-${id}`);
    expect(stopped.body.operation).toMatchObject({ action: 'stop', workflowId: `gitspace-${id}` });
    expect(fake.runs.filter((r) => r.workflowId === `gitspace-${id}`).map((r) => r.type)).toEqual([
      'startGitspace',
      'stopGitspace',
    ]);
    expect(await stateOf(id)).toBe('stopping');
  });

  it('retry of a failed start runs the start again and shows starting, not the old error', async () => {
    const id = await stoppedGitspace('retry-me');
    await store.changeState(id, {
      to: 'error',
      actor: { type: 'reconciler' },
      allowedFrom: ['stopped'],
      message: 'start failed',
      lastError: { action: 'start', step: 'waitForAgent', message: 'agent not up', cause: 'AgentUnreachableError' },
    });
    const retried = await action(id, 'retry');
    expect(retried.status).toBe(202);
    expect(retried.body.operation.action).toBe('start');
    const shown = await call('GET', `/gitspaces/${id}`, ada.token);
    expect(shown.body.state).toBe('starting');
    expect(shown.body.lastError).toBeUndefined();
  });

  it('delete → 202 deleting with a delete workflow; a deleted gitspace can do nothing more', async () => {
    const id = await stoppedGitspace('delete-me');
    const deleted = await call('DELETE', `/gitspaces/${id}`, ada.token);
    expect(deleted.status).toBe(202);
    expect(deleted.body.operation).toMatchObject({ action: 'delete', workflowId: `gitspace-${id}` });
    expect(fake.runs.at(-1)).toMatchObject({ type: 'deleteGitspace', workflowId: `gitspace-${id}` });
    expect(await stateOf(id)).toBe('deleting');

    // The workflow's part: it records deleted and closes.
    fake.finish(`gitspace-${id}`);
    await store.changeState(id, {
      to: 'deleted',
      actor: { type: 'reconciler' },
      allowedFrom: ['deleting'],
      message: 'deleted',
    });
    const start = await action(id, 'start');
    expect(start.status).toBe(409);
    expect(start.body.error.message).toBe("gitspace 'delete-me' is deleted; it cannot start");
  });

  it('puts the gitspace back when Temporal refuses the workflow, answering 409 with the one that runs', async () => {
    const id = await stoppedGitspace('raced');
    // Another operation's workflow runs under the gitspace's id although the record says stopped (a race).
    fake.runs.push({
      workflowId: `gitspace-${id}`,
      type: 'stopGitspace',
      runId: 'run-other',
      args: [],
      status: 'RUNNING',
    });
    const response = await action(id, 'start');
    expect(response.status).toBe(409);
    expect(response.body.error.message).toContain('has a stop operation running');
    expect(response.body.error.message).toContain('run run-other');
    expect(await stateOf(id)).toBe('stopped');
  });
});
