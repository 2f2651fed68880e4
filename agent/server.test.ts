import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ROUTE_SECRET_HEADER, SSH_KEYS_HEADER } from '../common/gateway-route';
import { rawRequest, statusOf } from '../test/support/gateway-harness';
import { silentLogger } from '../common/logger';
import { serveAgent, type ServedAgent } from '../test/support/agent';
import { upgradeStatus } from '../test/support/websocket';
import { installFakeCodeServer } from '../test/support/fake-code-server';

const AGENT_SECRET = 'agent-secret-of-this-start';
const ROUTE_SECRET = 'r'.repeat(43);

describe('the agent answers only the gateway (DESIGN.md §8)', () => {
  let root: string;
  let url: string;
  let agent: ServedAgent;
  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-agent-door-'));
    agent = await serveAgent({
      gitspaceId: 'gs-door',
      secret: AGENT_SECRET,
      workspaceDir: path.join(root, 'workspace'),
      homeDir: path.join(root, 'home'),
      ide: 'terminal',
      logger: silentLogger,
      ideHost: { shell: '/bin/sh', env: { PATH: '/usr/bin:/bin' } },
    });
    url = agent.url;
  });
  afterAll(async () => {
    await agent.close();
    await rm(root, { recursive: true, force: true });
  });

  const giveRouteSecret = (authorization: string, secret = ROUTE_SECRET) =>
    fetch(`${url}/_agent/route`, {
      method: 'PUT',
      headers: { authorization, 'content-type': 'application/json' },
      body: JSON.stringify({ secret }),
    });

  it('before any route is registered, the IDE answers nobody: no page, no shell', async () => {
    expect((await fetch(`${url}/`)).status).toBe(401);
    expect((await fetch(`${url}/`, { headers: { [ROUTE_SECRET_HEADER]: '' } })).status).toBe(401);
    expect(await upgradeStatus(`${url.replace('http', 'ws')}/pty`, { origin: 'http://evil.example' })).toBe(401);
  });

  it('the health check stays open (the runner polls it before it holds any route)', async () => {
    const health = await fetch(`${url}/_agent/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ gitspaceId: 'gs-door' });
  });

  it('only the runner (the agent secret) sets the route secret', async () => {
    expect((await giveRouteSecret('Bearer wrong')).status).toBe(401);
    expect((await giveRouteSecret('')).status).toBe(401);
    expect((await giveRouteSecret(`Bearer ${AGENT_SECRET}`, 'short')).status).toBe(400);
    const given = await giveRouteSecret(`Bearer ${AGENT_SECRET}`);
    // The answer carries the gitspace's SSH host key, for the runner to hand to the control plane.
    expect([given.status, await given.json()]).toEqual([
      200,
      { sshHostKey: expect.stringMatching(/^ssh-ed25519 AAAA/) },
    ]);
  });

  it('a shell or page without the route secret, or with a wrong one, is refused; with it, served', async () => {
    const ws = url.replace('http', 'ws');
    expect(await upgradeStatus(`${ws}/pty`)).toBe(401);
    expect(await upgradeStatus(`${ws}/pty`, { [ROUTE_SECRET_HEADER]: 'x'.repeat(43) })).toBe(401);
    expect((await fetch(`${url}/`)).status).toBe(401);
    expect((await fetch(`${url}/`, { headers: { [ROUTE_SECRET_HEADER]: ROUTE_SECRET.slice(1) } })).status).toBe(401);
    expect(await upgradeStatus(`${ws}/pty`, { [ROUTE_SECRET_HEADER]: ROUTE_SECRET })).toBe(101);
    expect((await fetch(`${url}/`, { headers: { [ROUTE_SECRET_HEADER]: ROUTE_SECRET } })).status).toBe(200);
  });

  it('the route secret does not open the private API, however its path is spelled', async () => {
    const withRoute = { [ROUTE_SECRET_HEADER]: ROUTE_SECRET, 'content-type': 'application/json' };
    const body = JSON.stringify({ repository: { url: 'https://example.invalid/r.git' } });
    for (const p of ['/_agent/workspace', '/_AGENT/workspace', '/%5Fagent/workspace', '/%5fAgent/workspace']) {
      const response = await fetch(`${url}${p}`, { method: 'POST', headers: withRoute, body });
      expect([p, response.status]).toEqual([p, 401]);
    }
    // Read as the gateway reads it: decoded until stable, leading slashes skipped.
    for (const p of ['/_agent/session', '/%5Fagent/route', '//_agent/session', '/%255Fagent/session', '/%2F_agent/x']) {
      expect([p, (await fetch(`${url}${p}`, { headers: withRoute })).status]).toEqual([p, 401]);
    }
    expect(await upgradeStatus(`${url.replace('http', 'ws')}/_agent/pty`, withRoute)).toBe(401);
  });

  it('the route secret does not reach the private API through a target in absolute form', async () => {
    for (const target of ['http://127.0.0.1/_agent/session', 'http://gateway.example/_agent/workspace']) {
      const answer = await rawRequest(
        url,
        `GET ${target} HTTP/1.1\r\nhost: x\r\n${ROUTE_SECRET_HEADER}: ${ROUTE_SECRET}\r\nconnection: close\r\n\r\n`,
      );
      expect([target, statusOf(answer)]).toEqual([target, 401]);
      expect(answer).not.toContain('routeSecretSet');
    }
    // The negative control: the same request with a path is the IDE's, and served.
    const page = await rawRequest(
      url,
      `GET / HTTP/1.1\r\nhost: x\r\n${ROUTE_SECRET_HEADER}: ${ROUTE_SECRET}\r\nconnection: close\r\n\r\n`,
    );
    expect(statusOf(page)).toBe(200);
  });

  it('what the gateway adds (the route secret) cannot set another route secret; the health check is open to reads only', async () => {
    const withRoute = { [ROUTE_SECRET_HEADER]: ROUTE_SECRET, 'content-type': 'application/json' };
    const other = 's'.repeat(43);
    const put = await fetch(`${url}/_agent/route`, {
      method: 'PUT',
      headers: withRoute,
      body: JSON.stringify({ secret: other }),
    });
    expect(put.status).toBe(401);
    // Still the runner's route secret, not the one the request tried to set.
    expect((await fetch(`${url}/`, { headers: { [ROUTE_SECRET_HEADER]: other } })).status).toBe(401);
    expect((await fetch(`${url}/`, { headers: { [ROUTE_SECRET_HEADER]: ROUTE_SECRET } })).status).toBe(200);
    // Only GET and HEAD of the health check are open.
    expect((await fetch(`${url}/_agent/healthz`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${url}/_agent/healthz`, { method: 'HEAD' })).status).toBe(200);
  });

  it('repository commands (devcontainer hooks) never get the agent secret', async () => {
    const workspace = path.join(root, 'workspace');
    await mkdir(path.join(workspace, '.git'), { recursive: true });
    await mkdir(path.join(workspace, '.devcontainer'));
    await writeFile(
      path.join(workspace, '.devcontainer', 'devcontainer.json'),
      JSON.stringify({ postStartCommand: 'env > hook-env.txt' }),
    );
    process.env.GITSPACE_AGENT_SECRET = AGENT_SECRET; // As in an agent started with the secret in its environment.
    try {
      const response = await fetch(`${url}/_agent/workspace`, {
        method: 'POST',
        headers: { authorization: `Bearer ${AGENT_SECRET}`, 'content-type': 'application/json' },
        body: JSON.stringify({ repository: { url: 'https://git.example.com/org/repo.git' } }),
      });
      expect(await response.json()).toEqual({ clone: 'present', ranCommands: ['postStartCommand'] });
    } finally {
      delete process.env.GITSPACE_AGENT_SECRET;
    }
    const hookEnv = await readFile(path.join(workspace, 'hook-env.txt'), 'utf8');
    expect(hookEnv).toContain('PATH=/usr/bin:/bin');
    expect(hookEnv).not.toContain(AGENT_SECRET);
  });

  it('the SSH path, however it is spelled, is SSH: never the IDE, and only with the gateway’s key list', async () => {
    const ws = url.replace('http', 'ws');
    for (const spelling of ['/_GITSPACES/SSH', '/%5Fgitspaces/ssh', '//_gitspaces/Ssh/']) {
      expect([spelling, await upgradeStatus(`${ws}${spelling}`)]).toEqual([spelling, 401]);
      expect([spelling, await upgradeStatus(`${ws}${spelling}`, { [ROUTE_SECRET_HEADER]: ROUTE_SECRET })]).toEqual([
        spelling,
        403,
      ]);
      const withKeys = { [ROUTE_SECRET_HEADER]: ROUTE_SECRET, [SSH_KEYS_HEADER]: 'SHA256:x' };
      expect([spelling, await upgradeStatus(`${ws}${spelling}`, withKeys)]).toEqual([spelling, 101]);
      const page = await fetch(`${url}${spelling}`, { headers: { [ROUTE_SECRET_HEADER]: ROUTE_SECRET } });
      expect([spelling, page.status]).toEqual([spelling, 404]);
    }
  });

  it('tells the runner whether it holds this start’s agent secret', async () => {
    expect((await fetch(`${url}/_agent/session`, { headers: { authorization: 'Bearer old' } })).status).toBe(401);
    const ok = await fetch(`${url}/_agent/session`, { headers: { authorization: `Bearer ${AGENT_SECRET}` } });
    expect(await ok.json()).toEqual({ gitspaceId: 'gs-door', routeSecretSet: true });
  });
});

describe('a vscode-web start waits for VS Code (issue 15, part 3)', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-agent-vscode-'));
    await mkdir(path.join(root, 'workspace', '.git'), { recursive: true }); // A clone that is present.
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const agentWith = (searchPath: string) =>
    serveAgent({
      gitspaceId: 'gs-vscode',
      secret: AGENT_SECRET,
      workspaceDir: path.join(root, 'workspace'),
      ide: 'vscode-web',
      logger: silentLogger,
      ideHost: { shell: '/bin/sh', env: { PATH: '/usr/bin:/bin' }, searchPath },
    });
  const prepare = (agent: ServedAgent) =>
    fetch(`${agent.url}/_agent/workspace`, {
      method: 'POST',
      headers: { authorization: `Bearer ${AGENT_SECRET}`, 'content-type': 'application/json' },
      body: JSON.stringify({ repository: { url: 'https://git.example.com/org/repo.git' } }),
    });
  const health = async (agent: ServedAgent) => (await fetch(`${agent.url}/_agent/healthz`)).json();

  it('with no VS Code server, preparing the workspace answers 422 saying what to install; health says unavailable', async () => {
    const agent = await agentWith(path.join(root, 'empty-path'));
    try {
      expect(await health(agent)).toMatchObject({ ide: 'vscode-web' });
      const response = await prepare(agent);
      expect(response.status).toBe(422);
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe('VscodeNotInstalledError');
      expect(error.message).toContain('no VS Code server is installed on this machine');
      expect(error.message).toContain('`npm install -g code-server@4.117.0` with Node.js 22');
      expect(error.message).toContain('config.agent.vscodeInstallCommand');
      expect(error.message).toContain('`--ide terminal`');
      expect(await health(agent)).toMatchObject({ workspace: 'failed', ide: 'unavailable' });
    } finally {
      await agent.close();
    }
  });

  it('with a healthy VS Code server, preparing the workspace succeeds and health names the IDE', async () => {
    const bin = path.join(root, 'bin');
    await mkdir(bin);
    await installFakeCodeServer(bin);
    const agent = await agentWith(bin);
    try {
      const response = await prepare(agent);
      expect([response.status, await response.json()]).toEqual([200, { clone: 'present', ranCommands: [] }]);
      expect(await health(agent)).toMatchObject({ workspace: 'ready', ide: 'vscode-web' });
    } finally {
      await agent.close();
    }
  });
});
