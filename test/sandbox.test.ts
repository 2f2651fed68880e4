import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { ROUTE_SECRET_HEADER } from '../common/gateway-route';
import { agentProgram } from '../providers/local/sandbox';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitServer, type GitServer } from './support/git-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';
import { Terminal } from './support/terminal';

/**
 * What a member's repository does from inside its gitspace: it looks for the agent secret of every process it can
 * see, and uses what it finds on that agent's private API. Prints one JSON line.
 */
const PROBE = `
const fs = require('node:fs');
const found = [];
const workspaces = new Set();
for (const pid of fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p))) {
  let env;
  try { env = fs.readFileSync('/proc/' + pid + '/environ', 'utf8').split('\\0'); } catch { continue; }
  const get = (k) => env.find((v) => v.startsWith(k + '='))?.slice(k.length + 1);
  if (get('GITSPACE_WORKSPACE_DIR')) workspaces.add(get('GITSPACE_WORKSPACE_DIR'));
  if (get('GITSPACE_AGENT_SECRET')) found.push({ port: get('GITSPACE_AGENT_PORT'), secret: get('GITSPACE_AGENT_SECRET') });
}
(async () => {
  const reached = [];
  for (const { port, secret } of found) {
    const r = await fetch('http://127.0.0.1:' + port + '/_agent/session', { headers: { authorization: 'Bearer ' + secret } })
      .then((res) => res.status, () => 0);
    reached.push(r);
  }
  console.log('PROBE' + JSON.stringify({ uid: process.getuid(), secrets: found.length, reached, workspaces: [...workspaces] }));
})();
`;

/**
 * What a member's shell tries on an agent's loopback port (the sandbox shares the host's network), without any secret:
 * its page, its shell, its private API, and setting a route secret of its own. Prints one JSON line of statuses.
 */
const KNOCK = `
const http = require('node:http');
const port = Number(process.argv[2]);
const ask = (method, path, headers = {}, body) => new Promise((resolve) => {
  const req = http.request({ host: '127.0.0.1', port, method, path, headers }, (res) => { res.resume(); resolve(res.statusCode); });
  req.on('upgrade', (_res, socket) => { socket.destroy(); resolve(101); });
  req.on('error', () => resolve(0));
  req.end(body);
});
(async () => {
  const guess = 'g'.repeat(43);
  const json = { 'content-type': 'application/json' };
  const upgrade = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' };
  const result = {
    health: await ask('GET', '/_agent/healthz'),
    page: await ask('GET', '/'),
    shell: await ask('GET', '/pty', upgrade),
    session: await ask('GET', '/_agent/session'),
    workspace: await ask('POST', '/_agent/workspace', json, JSON.stringify({ repository: { url: 'https://example.invalid/r.git' } })),
    route: await ask('PUT', '/_agent/route', json, JSON.stringify({ secret: guess })),
    pageWithGuess: await ask('GET', '/', { '${ROUTE_SECRET_HEADER}': guess }),
    shellWithGuess: await ask('GET', '/pty', { ...upgrade, '${ROUTE_SECRET_HEADER}': guess }),
  };
  console.log('KNOCK' + JSON.stringify(result));
})();
`;

/**
 * DESIGN.md §8, "a gitspace is a cell", attacked on the whole stack: a member's own shell (reached through the
 * gateway, as the member would) and the member's repository code try to read the control plane's secrets, another
 * member's workspace and other agents' secrets. Every attempt must fail.
 */
describe('a local gitspace is a cell', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let stack: TestStack;
  let git: GitServer;
  let alice: { token: string; gitspaceId: string };
  let bob: { token: string; gitspaceId: string };
  let terminal: Terminal;

  const member = async (name: string, repository: string): Promise<{ token: string; gitspaceId: string }> => {
    const user = await stack.api('POST', '/api/v1/users', { name });
    expect(user.status).toBe(201);
    const token: string = user.body.token;
    const created = await stack.api(
      'POST',
      '/api/v1/gitspaces',
      { name, repository: { url: git.urlOf(repository) }, infrastructureId: 'local', machineId: 'local-default' },
      token,
    );
    expect(created.status).toBe(201);
    return { token, gitspaceId: created.body.gitspace.id };
  };

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('alice', {
      'README.md': '# alice\n',
      'probe.js': PROBE,
      'knock.js': KNOCK,
      // Repository commands run at creation: they try the same as the shell.
      '.devcontainer.json': JSON.stringify({ postCreateCommand: 'node probe.js > probe-at-create.txt 2>&1' }),
    });
    await git.createRepository('bob', { 'README.md': 'bob-private-words\n' });
    stack = await startTestStack({ workflowBundle: bundle });
    alice = await member('alice', 'alice');
    bob = await member('bob', 'bob');
    for (const { gitspaceId } of [alice, bob]) {
      const running = await waitForGitspace(stack, gitspaceId, (g) => g.state === 'running' || g.state === 'error');
      expect([running.state, running.lastError]).toEqual(['running', undefined]);
    }
    terminal = await Terminal.open(stack, alice.gitspaceId, alice.token);
  });
  afterAll(async () => {
    terminal?.close();
    await stack?.stop();
    await git?.stop();
  });

  /** Where bob's README could be on the runner's host: inside the data dir (as it once was) or beside it. */
  const bobReadmeCandidates = () => [
    path.join(stack.dataDir, 'machines', bob.gitspaceId, 'workspace', 'README.md'),
    path.join(`${stack.dataDir}-machines`, bob.gitspaceId, 'workspace', 'README.md'),
  ];

  it("the member's shell runs in its workspace, as a user of its own when the runner is root", async () => {
    expect(await terminal.run('cat README.md')).toBe('# alice');
    // A runner that is not root sandboxes in a user namespace, as its own user id.
    if (process.getuid!() === 0) expect(Number(await terminal.run('id -u'))).not.toBe(0);
    expect(await terminal.run('id -un')).toBe('gitspace');
  });

  it("cannot read the control plane's admin token or the runner's keys", async () => {
    const adminToken = stack.controlPlane.adminToken;
    const runnerKeys = (await readFile(path.join(stack.dataDir, 'runner-keys'), 'utf8')).trim();
    const shown = await terminal.run(
      `cat ${stack.dataDir}/admin-token ${stack.dataDir}/runner-keys; ls -la ${stack.dataDir}`,
    );
    expect(shown).not.toContain(adminToken);
    expect(shown).not.toContain(runnerKeys);
    expect(shown).not.toContain('runner-keys\n');
    expect(shown).toMatch(/No such file or directory|Permission denied/);
  });

  it('cannot change the agent program every gitspace runs, nor add one beside it', async () => {
    const program = agentProgram().command[1]!;
    const before = await readFile(program, 'utf8');
    const cache = path.dirname(path.dirname(path.dirname(program)));
    const shown = await terminal.run(
      `echo 'process.exit(7)' >> ${program}; mkdir -p ${cache}/planted && echo planted; ` +
        `cp ${program} /tmp/main.js && mv -f /tmp/main.js ${program} && echo replaced; echo done`,
    );
    expect(shown).toMatch(/Read-only file system|Permission denied/);
    expect(shown).not.toMatch(/^planted$|^replaced$/m);
    expect(shown).toMatch(/^done$/m);
    expect(await readFile(program, 'utf8')).toBe(before);
  });

  it("cannot read another member's workspace", async () => {
    const shown = await terminal.run(`cat ${bobReadmeCandidates().join(' ')}`);
    expect(shown).not.toContain('bob-private-words');
    // Not even which other gitspaces exist.
    const machinesRoot = path.dirname(path.dirname(path.dirname(bobReadmeCandidates()[1]!)));
    expect(await terminal.run(`ls -a ${machinesRoot}`)).not.toContain(bob.gitspaceId);
  });

  it('finds no agent secret in any process it can see, so reaches no private agent API', async () => {
    expect(await terminal.run('env | grep -c ^GITSPACE_AGENT_SECRET')).toBe('0');
    const line = (await terminal.run('node probe.js')).split('\n').find((l) => l.startsWith('PROBE'));
    const probe = JSON.parse(line!.slice('PROBE'.length));
    expect(probe).toMatchObject({ secrets: 0, reached: [] });
    // Not even bob's processes are visible: only this gitspace's own.
    expect(probe.workspaces.every((w: string) => !w.includes(bob.gitspaceId))).toBe(true);
  });

  it("reaches no agent's page, shell or private API over loopback, its own or another member's", async () => {
    const machinesRoot = `${stack.dataDir}-machines`;
    for (const { gitspaceId } of [bob, alice]) {
      const record = JSON.parse(await readFile(path.join(machinesRoot, '.state', gitspaceId, 'machine.json'), 'utf8'));
      const line = (await terminal.run(`node knock.js ${record.agent.port}`))
        .split('\n')
        .find((l) => l.startsWith('KNOCK'));
      expect([gitspaceId, JSON.parse(line!.slice('KNOCK'.length))]).toEqual([
        gitspaceId,
        {
          health: 200, // The port is reachable from the sandbox: every 401 below is the agent's refusal.
          page: 401,
          shell: 401,
          session: 401,
          workspace: 401,
          route: 401,
          pageWithGuess: 401,
          shellWithGuess: 401,
        },
      ]);
    }
    // The member's own way in, through the gateway, still works.
    expect(await terminal.run('cat README.md')).toBe('# alice');
  });

  it("the repository's own commands see no agent secret either", async () => {
    const line = (await terminal.run('cat probe-at-create.txt')).split('\n').find((l) => l.startsWith('PROBE'));
    expect(JSON.parse(line!.slice('PROBE'.length))).toMatchObject({ secrets: 0, reached: [] });
  });
});
