import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitServer, type GitServer } from './support/git-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';
import { upgradeStatus } from './support/websocket';

/**
 * DESIGN.md §8, "the gateway is the only door into a machine", attacked on the whole stack: a running gitspace's
 * agent refuses everyone but the gateway, and a token lives no longer than the start it was issued for.
 */
describe('the gateway is the only door', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let stack: TestStack;
  let git: GitServer;
  let gitspaceId: string;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('door', { 'README.md': '# door\n' });
    stack = await startTestStack({ workflowBundle: bundle });
    const created = await stack.api('POST', '/api/v1/gitspaces', {
      name: 'door',
      repository: { url: git.urlOf('door') },
      infrastructureId: 'local',
      machineId: 'local-default',
      ide: 'terminal',
    });
    gitspaceId = created.body.gitspace.id;
    const running = await waitForGitspace(stack, gitspaceId, (g) => g.state === 'running' || g.state === 'error');
    expect(running.state).toBe('running');
  });
  afterAll(async () => {
    await stack?.stop();
    await git?.stop();
  });

  const agentTarget = async (): Promise<string> => {
    const routes = await fetch(`${stack.gatewayAdminUrl}/routes`, {
      headers: { authorization: 'Bearer test-gateway-admin-token' },
    });
    const body = (await routes.json()) as { routes: { gitspaceId: string; target: string; secret?: string }[] };
    const route = body.routes.find((r) => r.gitspaceId === gitspaceId)!;
    expect(route.secret).toBeUndefined(); // The admin listing never shows a route secret.
    return route.target;
  };

  /** Opens the gitspace as a developer does: token in the URL, exchanged for a cookie. Returns the cookie. */
  const openWith = async (token: string): Promise<{ status: number; cookie?: string; body: string }> => {
    const response = await fetch(`${stack.gatewayUrl}/gitspaces/${gitspaceId}/?token=${token}`, {
      redirect: 'manual',
    });
    return {
      status: response.status,
      cookie: response.headers.get('set-cookie')?.split(';')[0],
      body: await response.text(),
    };
  };

  it('reaching the agent directly gives no page and no shell, whatever Origin', async () => {
    const target = await agentTarget();
    expect((await fetch(`${target}/`)).status).toBe(401);
    expect((await fetch(`${target}/terminal.js`)).status).toBe(401);
    const ws = target.replace('http', 'ws');
    expect(await upgradeStatus(`${ws}/pty`)).toBe(401);
    expect(await upgradeStatus(`${ws}/pty`, { origin: `${stack.gatewayUrl}` })).toBe(401);
    expect((await fetch(`${target}/_agent/healthz`)).status).toBe(200);
  });

  it('through the gateway with a token, the shell opens', async () => {
    const access = await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/access`);
    const opened = await openWith(access.body.token);
    expect(opened.status).toBe(303);
    const ws = `${stack.gatewayUrl.replace('http', 'ws')}/gitspaces/${gitspaceId}/pty`;
    expect(await upgradeStatus(ws, { cookie: opened.cookie! })).toBe(101);
  });

  it('a token issued before a stop does not work after the next start', async () => {
    const before = (await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/access`)).body.token as string;
    expect((await openWith(before)).status).toBe(303);

    await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/actions`, { action: 'stop' });
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'stopped');
    await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/actions`, { action: 'start' });
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'running');

    const old = await openWith(before);
    expect(old.status).toBe(401);
    expect(JSON.parse(old.body).error.code).toBe('token_revoked');
    const fresh = (await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/access`)).body.token as string;
    expect((await openWith(fresh)).status).toBe(303);
    // The new start gave the agent a new route secret: still nobody but the gateway gets in.
    expect((await fetch(`${await agentTarget()}/`)).status).toBe(401);
  });
});
