import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { localMachinePaths, localMachinesRoot } from '../providers/local/provider';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitServer, type GitServer } from './support/git-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';

/** The whole lifecycle through the REST API, against a real Temporal dev server, runner, gateway and git server. */
describe('gitspace lifecycle through the REST API', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let stack: TestStack;
  let git: GitServer;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('hello', { 'README.md': '# hello\n', 'src/main.ts': 'export {};\n' });
    stack = await startTestStack({ workflowBundle: bundle });
  });
  afterAll(async () => {
    await stack?.stop();
    await git?.stop();
  });

  const machineOf = (id: string) => localMachinePaths(localMachinesRoot(stack.dataDir), id);
  const workspaceOf = (id: string) => machineOf(id).workspace;
  const create = async (name: string, repository: string, extra: Record<string, unknown> = {}) => {
    const response = await stack.api('POST', '/api/v1/gitspaces', {
      name,
      repository: { url: repository },
      infrastructureId: 'local',
      machineId: 'local-default',
      ...extra,
    });
    expect(response.status).toBe(201);
    return response.body as { gitspace: any; operation: any };
  };

  it('lists the embedded local infrastructure and its default machine', async () => {
    const infrastructures = await stack.api('GET', '/api/v1/infrastructures');
    expect(infrastructures.status).toBe(200);
    expect(infrastructures.body.items).toEqual([
      expect.objectContaining({
        id: 'local',
        name: 'local',
        provider: 'local',
        taskQueue: 'gitspaces-infra-local',
        gatewayUrl: stack.gatewayUrl,
      }),
    ]);
    const machines = await stack.api('GET', '/api/v1/infrastructures/local/machines');
    expect(machines.body.items).toEqual([
      expect.objectContaining({ id: 'local-default', name: 'default', infrastructureId: 'local' }),
    ]);
  });

  it('creates, runs, stops, restarts and deletes a gitspace, keeping files across stop/start', async () => {
    const { gitspace, operation } = await create('api', git.urlOf('hello'));
    expect(gitspace).toMatchObject({
      name: 'api',
      state: expect.stringMatching(/stopped|starting/),
      infrastructureId: 'local',
      machineId: 'local-default',
    });
    expect(gitspace.repository).toEqual({ url: git.urlOf('hello'), hasToken: false });
    expect(operation).toMatchObject({ action: 'start', workflowId: `gitspace-${gitspace.id}`, status: 'running' });

    const running = await waitForGitspace(stack, gitspace.id, (g) => g.state === 'running' || g.state === 'error');
    expect(running.state).toBe('running');
    expect(running.url).toBe(`${stack.gatewayUrl}/gitspaces/${gitspace.id}/`);
    expect(running.operation).toMatchObject({ action: 'start', status: 'succeeded' });
    expect(await readFile(path.join(workspaceOf(gitspace.id), 'README.md'), 'utf8')).toBe('# hello\n');
    const routes = await fetch(`${stack.gatewayAdminUrl}/routes`, {
      headers: { authorization: 'Bearer test-gateway-admin-token' },
    });
    expect(((await routes.json()) as any).routes.map((r: any) => r.gitspaceId)).toContain(gitspace.id);

    // The developer's way in: a short-lived token, exchanged by the gateway for a cookie, then the IDE page.
    const access = await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/access`);
    expect(access.status).toBe(200);
    expect(access.body.url).toBe(`${running.url}?token=${access.body.token}`);
    const exchange = await fetch(access.body.url, { redirect: 'manual' });
    expect([302, 303]).toContain(exchange.status);
    expect(exchange.headers.get('location')).not.toContain('token=');
    const cookie = exchange.headers.get('set-cookie')!.split(';')[0]!;
    const page = await fetch(new URL(exchange.headers.get('location')!, access.body.url), { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');

    await writeFile(path.join(workspaceOf(gitspace.id), 'notes.txt'), 'keep me');
    const stop = await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'stop' });
    expect(stop.status).toBe(202);
    expect(stop.body.operation).toMatchObject({ action: 'stop', workflowId: `gitspace-${gitspace.id}` });
    const stopped = await waitForGitspace(stack, gitspace.id, (g) => g.state === 'stopped' || g.state === 'error');
    expect(stopped.state).toBe('stopped');
    expect(stopped.url).toBeUndefined();
    expect((await fetch(`${running.url}`, { headers: { cookie } })).status).toBe(404);
    const refused = await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/access`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toBe("gitspace 'api' is stopped; start it before opening it");

    await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'start' });
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'running');
    expect(await readFile(path.join(workspaceOf(gitspace.id), 'notes.txt'), 'utf8')).toBe('keep me');

    const deletion = await stack.api('DELETE', `/api/v1/gitspaces/${gitspace.id}`);
    expect(deletion.status).toBe(202);
    expect(deletion.body.operation.action).toBe('delete');
    const deleted = await waitForGitspace(stack, gitspace.id, (g) => g.state === 'deleted' || g.state === 'error');
    expect(deleted.state).toBe('deleted');
    expect(existsSync(machineOf(gitspace.id).dir)).toBe(false);

    const events = await stack.api('GET', `/api/v1/gitspaces/${gitspace.id}/events`);
    const states = events.body.items.filter((e: any) => e.state).map((e: any) => e.state);
    expect(states).toEqual([
      'stopped',
      'starting',
      'running',
      'stopping',
      'stopped',
      'starting',
      'running',
      'deleting',
      'deleted',
    ]);
    expect(events.body.items.map((e: any) => e.seq)).toEqual(events.body.items.map((_: unknown, i: number) => i + 1));

    // The Web UI's view: every run of this gitspace is found by its search attribute, with a readable summary.
    const runs = [];
    for await (const run of stack.controlPlane.client.workflow.list({ query: `GitspaceId = '${gitspace.id}'` }))
      runs.push(run);
    expect(runs.map((r) => r.type).sort()).toEqual([
      'deleteGitspace',
      'startGitspace',
      'startGitspace',
      'stopGitspace',
    ]);
    const described = await stack.controlPlane.client.workflow
      .getHandle(`gitspace-${gitspace.id}`, runs.find((r) => r.type === 'stopGitspace')!.runId)
      .describe();
    expect(await described.staticSummary()).toBe("stop gitspace 'api' on infrastructure 'local'");
  });

  it('refuses invalid transitions with 409 and a clear message', async () => {
    const { gitspace } = await create('idle', git.urlOf('hello'), { start: false });
    expect(gitspace.state).toBe('stopped');
    const stop = await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'stop' });
    expect(stop.status).toBe(409);
    expect(stop.body.error.message).toBe("gitspace 'idle' is already stopped; it cannot stop");
    const retry = await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'retry' });
    expect(retry.status).toBe(409);

    await stack.api('DELETE', `/api/v1/gitspaces/${gitspace.id}`);
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'deleted');
    const start = await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'start' });
    expect(start.status).toBe(409);
    expect(start.body.error.message).toContain('is deleted');
  });

  it('accepts one of two concurrent actions and answers 409 naming the running one', async () => {
    const { gitspace } = await create('race', git.urlOf('hello'), { start: false });
    const [a, b] = await Promise.all([
      stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'start' }),
      stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'start' }),
    ]);
    expect([a.status, b.status].sort()).toEqual([202, 409]);
    const refused = a.status === 409 ? a : b;
    expect(refused.body.error.message).toMatch(
      /has a start operation running \(workflow gitspace-gs-[a-z0-9]+, run [0-9a-f-]+\)/,
    );
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'running');
    await stack.api('DELETE', `/api/v1/gitspaces/${gitspace.id}`);
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'deleted');
  });

  it('puts a start whose clone fails into error, leaves nothing running, and retries once the repository exists', async () => {
    const url = git.urlOf('later');
    const { gitspace } = await create('broken', url);
    const failed = await waitForGitspace(stack, gitspace.id, (g) => g.state === 'error');
    expect(failed.lastError).toMatchObject({ action: 'start', step: 'prepareWorkspace', cause: 'CloneFailedError' });
    // The message says what failed, not which repository (Temporal keeps it encrypted; the API shows it to the owner).
    expect(failed.lastError.message).toContain('could not clone the repository');
    expect(failed.lastError.message).not.toContain(url);
    expect(failed.url).toBeUndefined();
    const record = JSON.parse(await readFile(machineOf(gitspace.id).record, 'utf8'));
    expect(record.agent).toBeNull();
    const routes = (await (
      await fetch(`${stack.gatewayAdminUrl}/routes`, { headers: { authorization: 'Bearer test-gateway-admin-token' } })
    ).json()) as any;
    expect(routes.routes.map((r: any) => r.gitspaceId)).not.toContain(gitspace.id);

    await git.createRepository('later', { 'LATER.md': 'here now\n' });
    const retry = await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'retry' });
    expect(retry.status).toBe(202);
    expect(retry.body.operation.action).toBe('start');
    const running = await waitForGitspace(
      stack,
      gitspace.id,
      (g) => g.operation.runId === retry.body.operation.runId && g.operation.status !== 'running',
    );
    expect(running.lastError).toBeUndefined();
    expect(running.state).toBe('running');
    expect(await readFile(path.join(workspaceOf(gitspace.id), 'LATER.md'), 'utf8')).toBe('here now\n');
    await stack.api('DELETE', `/api/v1/gitspaces/${gitspace.id}`);
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'deleted');
  });

  it('cancels and compensates a running start when a stop arrives, ending stopped', async () => {
    await git.createRepository('slow', {
      '.devcontainer/devcontainer.json': '{ // setup takes a while\n "postCreateCommand": "sleep 30" }\n',
    });
    const { gitspace } = await create('slow', git.urlOf('slow'));
    await waitForGitspace(stack, gitspace.id, (g) => g.operation?.step === 'prepareWorkspace');
    const stop = await stack.api('POST', `/api/v1/gitspaces/${gitspace.id}/actions`, { action: 'stop' });
    expect(stop.status).toBe(202);
    const stopped = await waitForGitspace(
      stack,
      gitspace.id,
      (g) => g.state === 'stopped' && g.operation?.action === 'stop' && g.operation?.status === 'succeeded',
    );
    expect(stopped.lastError).toBeUndefined();
    const record = JSON.parse(await readFile(machineOf(gitspace.id).record, 'utf8'));
    expect(record.agent).toBeNull();
    const events = (await stack.api('GET', `/api/v1/gitspaces/${gitspace.id}/events`)).body.items;
    expect(events.map((e: any) => e.message)).toContain('start cancelled; the machine is stopped');
    const startRun = await stack.controlPlane.client.workflow
      .getHandle(`gitspace-${gitspace.id}`, stop.body.operation.runId)
      .describe();
    expect(startRun.type).toBe('stopGitspace');
  });

  it('lets users act only on their own gitspaces', async () => {
    const created = await stack.api('POST', '/api/v1/users', { name: 'ada' });
    expect(created.status).toBe(201);
    expect(created.body.user).toMatchObject({ name: 'ada', role: 'member' });
    const adaToken: string = created.body.token;
    const mine = await stack.api(
      'POST',
      '/api/v1/gitspaces',
      {
        name: 'ada-space',
        repository: { url: git.urlOf('hello') },
        infrastructureId: 'local',
        machineId: 'local-default',
        start: false,
      },
      adaToken,
    );
    expect(mine.status).toBe(201);
    const { gitspace: adminSpace } = await create('admin-space', git.urlOf('hello'), { start: false });

    const list = await stack.api('GET', '/api/v1/gitspaces', undefined, adaToken);
    expect(list.body.items.map((g: any) => g.name)).toEqual(['ada-space']);
    expect((await stack.api('GET', `/api/v1/gitspaces/${adminSpace.id}`, undefined, adaToken)).status).toBe(404);
    expect((await stack.api('DELETE', `/api/v1/gitspaces/${adminSpace.id}`, undefined, adaToken)).status).toBe(404);
    expect((await stack.api('POST', '/api/v1/users', { name: 'eve' }, adaToken)).status).toBe(403);
    expect((await stack.api('GET', '/api/v1/gitspaces', undefined, 'gsp_not-a-token')).status).toBe(401);
    const adminList = await stack.api('GET', '/api/v1/gitspaces');
    expect(adminList.body.items.map((g: any) => g.name)).toEqual(expect.arrayContaining(['ada-space', 'admin-space']));
  });

  it('replays every workflow history the tests produced with the current workflow code', async () => {
    const histories = [];
    for await (const run of stack.controlPlane.client.workflow.list({ query: "WorkflowType STARTS_WITH ''" })) {
      if (run.status.name === 'RUNNING') continue;
      histories.push({
        workflowId: run.workflowId,
        history: await stack.controlPlane.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory(),
      });
    }
    expect(histories.length).toBeGreaterThanOrEqual(8);
    let replayed = 0;
    const dataConverter = { payloadCodecs: [stack.controlPlane.payloadCodec] };
    for await (const result of Worker.runReplayHistories({ workflowBundle: bundle, dataConverter }, histories)) {
      expect(result.error).toBeUndefined();
      replayed++;
    }
    expect(replayed).toBe(histories.length);
  });
});
