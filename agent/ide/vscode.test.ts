import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { silentLogger } from '../../common/logger';
import { serveAgent } from '../../test/support/agent';
import { installBrokenCodeServer, installFakeCodeServer } from '../../test/support/fake-code-server';
import { VscodeNotInstalledError, VscodeStartError, createVscodeIde } from './vscode';

const FAKE_SERVER = path.join(__dirname, '..', '..', 'test', 'support', 'fake-vscode-server.js');

async function startVscodeAgent(ideHost: { vscodeCommand?: string; searchPath?: string }) {
  const root = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-vscode-'));
  const workspaceDir = path.join(root, 'my workspace');
  const agent = await serveAgent({
    gitspaceId: 'gs-code',
    secret: 'secret',
    workspaceDir,
    ide: 'vscode-web',
    logger: silentLogger,
    ideHost: { shell: '/bin/sh', env: { PATH: '/usr/bin:/bin' }, searchPath: '/nonexistent', ...ideHost },
  });
  const headers = await agent.route();
  return {
    url: agent.url,
    headers,
    workspaceDir,
    async close() {
      await agent.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

describe('vscode-web IDE', () => {
  it('launches the configured VS Code server and proxies HTTP and WebSockets to it', async () => {
    const agent = await startVscodeAgent({ vscodeCommand: `${process.execPath} ${FAKE_SERVER} {port} {workspace}` });
    try {
      const response = await fetch(`${agent.url}/some/path?x=1`, { headers: agent.headers });
      expect(response.status).toBe(200);
      // The workspace path has a space and still arrives as one argument.
      expect(await response.text()).toContain(`workspace=${agent.workspaceDir} path=/some/path?x=1`);
      const ws = new WebSocket(`${agent.url.replace('http', 'ws')}/socket`, { headers: agent.headers });
      const echoed = new Promise<string>((resolve, reject) => {
        ws.once('message', (data: Buffer) => resolve(data.toString()));
        ws.once('error', reject);
      });
      ws.once('open', () => ws.send('ping-through-agent'));
      expect(await echoed).toBe('ping-through-agent');
      ws.terminate();
      expect((await fetch(`${agent.url}/_agent/healthz`)).status).toBe(200);
    } finally {
      await agent.close();
    }
  });

  it('says clearly when no VS Code server is installed, and offers the terminal instead', async () => {
    const agent = await startVscodeAgent({});
    try {
      const response = await fetch(`${agent.url}/`, { headers: agent.headers });
      expect(response.status).toBe(503);
      const html = await response.text();
      expect(html).toContain('no VS Code server is installed on this machine');
      expect(html).toContain('code-server');
      expect(html).toContain('openvscode-server');
      expect(html).toContain('href="terminal/"');
      const terminal = await fetch(`${agent.url}/terminal/`, { headers: agent.headers });
      expect(terminal.status).toBe(200);
      expect(await terminal.text()).toContain('assets/xterm.js');
    } finally {
      await agent.close();
    }
  });

  it('explains a configured command that cannot start', async () => {
    const agent = await startVscodeAgent({ vscodeCommand: '/bin/sh -c exit_7_is_not_a_command' });
    try {
      const response = await fetch(`${agent.url}/`, { headers: agent.headers });
      expect(response.status).toBe(503);
      expect(await response.text()).toMatch(/did not start: exited with code 127/);
    } finally {
      await agent.close();
    }
  });
});

describe('vscode-web readiness (what a start waits for)', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-vscode-ready-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const ideWith = (options: { searchPath?: string; command?: string; startTimeoutMs?: number }) =>
    createVscodeIde({
      workspaceDir: root,
      logger: silentLogger,
      searchPath: options.searchPath ?? '',
      env: { PATH: '/usr/bin:/bin' },
      ...(options.command ? { command: options.command } : {}),
      startTimeoutMs: options.startTimeoutMs ?? 20_000,
    });

  it('rejects VscodeNotInstalledError when no server is on the PATH, or the configured one does not exist', async () => {
    const none = ideWith({ searchPath: root });
    await expect(none.ready()).rejects.toThrow(VscodeNotInstalledError);
    await expect(none.ready()).rejects.toThrow(/looked for code-server and openvscode-server/);
    none.close();
    const missing = ideWith({ command: `${root}/nowhere/code-server --bind-addr 127.0.0.1:{port} {workspace}` });
    await expect(missing.ready()).rejects.toThrow(VscodeNotInstalledError);
    missing.close();
  });

  it('rejects VscodeStartError with the tail of its output when the server exits before it is healthy', async () => {
    await installBrokenCodeServer(root, "Error: Cannot find module './build/Release/kerberos.node'", 3);
    const ide = ideWith({ searchPath: root });
    const error = (await ide.ready().catch((e: unknown) => e)) as VscodeStartError;
    expect(error).toBeInstanceOf(VscodeStartError);
    expect(error.message).toMatch(/did not start: exited with code 3; its last output: .*kerberos\.node/);
    ide.close();
  });

  it("resolves once code-server's /healthz answers, 'expired' included (a fresh server's word until first use)", async () => {
    await installFakeCodeServer(root);
    const ide = ideWith({ searchPath: root });
    try {
      await expect(ide.ready()).resolves.toBeUndefined();
      // Ready twice is the same running server.
      await expect(ide.ready()).resolves.toBeUndefined();
    } finally {
      ide.close();
    }
  });

  it("is not ready while code-server's /healthz says anything else, and says so when the start timeout passes", async () => {
    await installFakeCodeServer(root, { healthz: 'starting' });
    const ide = ideWith({ searchPath: root, startTimeoutMs: 1500 });
    try {
      const error = (await ide.ready().catch((e: unknown) => e)) as VscodeStartError;
      expect(error).toBeInstanceOf(VscodeStartError);
      expect(error.message).toMatch(
        /not healthy \(GET \/healthz\) within 1500 ms \(last: HTTP 200 status 'starting'\)/,
      );
    } finally {
      ide.close();
    }
  });
});
