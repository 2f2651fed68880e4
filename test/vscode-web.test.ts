import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { localMachinePaths, localMachinesRoot } from '../providers/local/provider';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { installFakeCodeServer } from './support/fake-code-server';
import { startGitServer, type GitServer } from './support/git-server';
import { GATEWAY_ADMIN_TOKEN, startTestStack, waitForGitspace, type TestStack } from './support/stack';

/**
 * `vscode-web` on the whole stack (issue 15, part 3): a start waits for the VS Code server's own health, so a gitspace
 * whose machine has none fails its start, saying what to install, instead of showing `running` and a broken page.
 * The VS Code server is the fake of test/support (code-server's arguments and health route): a real code-server
 * needs a native build (node-gyp, libkrb5) too slow for every CI run.
 */
describe('vscode-web through the gateway', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let stack: TestStack;
  let git: GitServer;
  let fakeDir: string;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('hello', { 'README.md': '# hello\n' });
    // Outside every directory a sandbox sees: only the runner setting makes it readable there.
    fakeDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-fake-code-server-'));
    await chmod(fakeDir, 0o755);
    await installFakeCodeServer(fakeDir);
    stack = await startTestStack({ workflowBundle: bundle, runner: false });
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await git?.stop();
    await rm(fakeDir, { recursive: true, force: true });
  }, 60_000);

  const create = async (name: string) => {
    const response = await stack.api('POST', '/api/v1/gitspaces', {
      name,
      repository: { url: git.urlOf('hello') },
      infrastructureId: 'local',
      machineId: 'local-default',
      ide: 'vscode-web',
    });
    expect(response.status).toBe(201);
    return response.body.gitspace.id as string;
  };
  const machineOf = (id: string) => localMachinePaths(localMachinesRoot(stack.dataDir), id);

  it('with no VS Code server, the start ends in error at the workspace step, never running, the machine stopped', async () => {
    const runner = await stack.startRunner();
    try {
      const id = await create('no-vscode');
      const failed = await waitForGitspace(stack, id, (g) => g.state === 'error' || g.state === 'running');
      expect(failed.state).toBe('error');
      expect(failed.lastError).toMatchObject({
        action: 'start',
        step: 'prepareWorkspace',
        cause: 'VscodeNotInstalledError',
      });
      expect(failed.lastError.message).toContain('no VS Code server is installed on this machine');
      expect(failed.lastError.message).toContain('`npm install -g code-server@4.117.0` with Node.js 22');
      expect(failed.lastError.message).toContain('`--ide terminal`');
      expect(failed.url).toBeUndefined();

      const events = (await stack.api('GET', `/api/v1/gitspaces/${id}/events`)).body.items;
      expect(events.filter((e: any) => e.state).map((e: any) => e.state)).not.toContain('running');
      // Compensated: the agent is stopped (the disk is kept) and no route is left.
      const record = JSON.parse(await readFile(machineOf(id).record, 'utf8'));
      expect(record.agent).toBeNull();
      const routes = (await (
        await fetch(`${stack.gatewayAdminUrl}/routes`, { headers: { authorization: `Bearer ${GATEWAY_ADMIN_TOKEN}` } })
      ).json()) as any;
      expect(routes.routes.map((r: any) => r.gitspaceId)).not.toContain(id);
    } finally {
      await runner.stop();
    }
  }, 120_000);

  it('with the runner’s VS Code command, the gitspace runs and its page comes through the gateway', async () => {
    const runner = await stack.startRunner({
      localVscodeCommand: `${fakeDir}/code-server --bind-addr 127.0.0.1:{port} --auth none {workspace}`,
    });
    try {
      const id = await create('with-vscode');
      const running = await waitForGitspace(stack, id, (g) => g.state === 'running' || g.state === 'error');
      expect([running.state, running.lastError]).toEqual(['running', undefined]);

      const access = await stack.api('POST', `/api/v1/gitspaces/${id}/access`);
      expect(access.status).toBe(200);
      const exchange = await fetch(access.body.url, { redirect: 'manual' });
      const cookie = exchange.headers.get('set-cookie')!.split(';')[0]!;
      const page = await fetch(`${running.url}some/file?x=1`, { headers: { cookie } });
      expect(page.status).toBe(200);
      // Served by the VS Code server the agent started in the gitspace's sandbox, for its workspace.
      expect(await page.text()).toBe(
        `<title>fake vscode</title><p>workspace=${machineOf(id).workspace} path=/some/file?x=1</p>`,
      );
    } finally {
      await runner.stop();
    }
  }, 120_000);
});
