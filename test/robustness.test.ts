import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitServer, type GitServer } from './support/git-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';

/** Impatient users: retried creates and a burst of concurrent actions change the system exactly once. */
describe('idempotent and concurrent requests', () => {
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

  const body = (name: string, start = true) => ({
    name,
    repository: { url: git.urlOf('repo') },
    infrastructureId: 'local',
    machineId: 'local-default',
    start,
  });
  const post = async (payload: unknown, key?: string) => {
    const response = await fetch(`${stack.controlPlane.url}/api/v1/gitspaces`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${stack.controlPlane.adminToken}`,
        'content-type': 'application/json',
        ...(key ? { 'idempotency-key': key } : {}),
      },
      body: JSON.stringify(payload),
    });
    return {
      status: response.status,
      replayed: response.headers.get('idempotent-replayed'),
      body: (await response.json()) as any,
    };
  };
  const gitspacesNamed = async (name: string) =>
    (await stack.api('GET', '/api/v1/gitspaces')).body.items.filter((g: { name: string }) => g.name === name);

  it('creates one gitspace and starts it once for ten concurrent requests with one Idempotency-Key', async () => {
    const responses = await Promise.all(Array.from({ length: 10 }, () => post(body('once'), 'create-once-1')));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(201));
    const ids = new Set(responses.map((r) => r.body.gitspace.id));
    expect(ids.size).toBe(1);
    expect(responses.filter((r) => r.replayed === null)).toHaveLength(1);
    expect(responses.filter((r) => r.body.operation)).toHaveLength(1);
    expect(await gitspacesNamed('once')).toHaveLength(1);
    const [id] = [...ids];
    await waitForGitspace(stack, id!, (g) => g.state === 'running');
    const runs = [];
    for await (const run of stack.controlPlane.client.workflow.list({ query: `GitspaceId = '${id}'` })) runs.push(run);
    expect(runs).toHaveLength(1);
  });

  it('refuses the same Idempotency-Key with another body, and a malformed key, changing nothing', async () => {
    const first = await post(body('first', false), 'key-reused');
    expect(first.body).toMatchObject({ gitspace: { name: 'first' } });
    const reused = await post(body('second', false), 'key-reused');
    expect(reused.status).toBe(409);
    expect(reused.body.error.message).toContain('Idempotency-Key was already used with a different request body');
    expect(await gitspacesNamed('second')).toHaveLength(0);
    const malformed = await post(body('third', false), 'has spaces in it');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.fields[0].path).toBe('header.Idempotency-Key');
    expect(await gitspacesNamed('third')).toHaveLength(0);
  });

  it('starts exactly one operation for 50 concurrent actions on one gitspace; the rest get 409', async () => {
    const created = await post(body('burst', false));
    const id = created.body.gitspace.id;
    const responses = await Promise.all(
      Array.from({ length: 50 }, () => stack.api('POST', `/api/v1/gitspaces/${id}/actions`, { action: 'start' })),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(49);
    for (const refused of responses.filter((r) => r.status === 409)) {
      expect(refused.body.error.message).toMatch(
        /start operation running|is already (starting|running)|had another operation start/,
      );
    }
    await waitForGitspace(stack, id, (g) => g.state === 'running');
    const operations = await stack.controlPlane.store.db
      .selectFrom('operations')
      .selectAll()
      .where('gitspaceId', '=', id)
      .execute();
    expect(operations).toHaveLength(1);
  });
});
