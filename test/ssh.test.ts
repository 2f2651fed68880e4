import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { freeLoopbackPorts } from '../common/net';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitServer, type GitServer } from './support/git-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';
import { upgradeStatus } from './support/websocket';

const CLI = path.join(__dirname, '..', 'cli', 'main.ts');
const TSX = pathToFileURL(require.resolve('tsx')).href;
/** Access tokens live this long here: a session longer than it shows the tunnel being renewed. */
const TOKEN_TTL_SECONDS = 20;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * OpenSSH's own client (ssh, scp) against a gitspace, through `gitspaces config-ssh`'s Host entries and `gitspaces ssh
 * --stdio` as the ProxyCommand, on the whole product (a Temporal dev server, the control plane, the runner with the
 * local sandbox provider, the gateway). OpenSSH finds ~/.ssh through the passwd entry, not $HOME, so every run names
 * its config (-F), identity (-i) and known_hosts file.
 */
describe('SSH to a gitspace with OpenSSH', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let stack: TestStack;
  let git: GitServer;
  let home: string;
  let sshConfig: string;
  let knownHosts: string;
  let adaToken: string;
  let gitspaceId: string;
  /** An ssh-agent holding ada's key, for `gitspaces ssh`, which runs ssh as a user would (no -i). */
  let agentSocket: string;
  const children = new Set<ChildProcess>();

  /** Starts a program with the test's home and ada's API credentials; `done` resolves once it has exited. */
  const start = (program: string, args: string[], env: Record<string, string> = {}) => {
    const child = spawn(program, args, {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: home,
        XDG_CONFIG_HOME: path.join(home, 'config'),
        GITSPACES_URL: stack.controlPlane.url,
        GITSPACES_TOKEN: adaToken,
        NODE_OPTIONS: '',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    const run: Run = { code: null, stdout: '', stderr: '' };
    child.stdout!.on('data', (chunk: Buffer) => (run.stdout += chunk.toString('utf8')));
    child.stderr!.on('data', (chunk: Buffer) => (run.stderr += chunk.toString('utf8')));
    const done = new Promise<Run>((resolve) =>
      child.once('close', (code) => {
        children.delete(child);
        run.code = code;
        resolve(run);
      }),
    );
    return { child, run, done };
  };
  const gitspaces = (args: string[], env: Record<string, string> = {}) =>
    start(process.execPath, ['--import', TSX, CLI, ...args], env).done;
  /** OpenSSH options every run takes: the config config-ssh wrote, the identity, nothing from ~/.ssh. */
  const sshOptions = (identity = 'ada', trusted = knownHosts) => [
    '-F',
    sshConfig,
    '-i',
    path.join(home, identity),
    '-o',
    'IdentitiesOnly=yes',
    // OpenSSH takes an option's first value: given here, it wins over the config file's.
    '-o',
    `UserKnownHostsFile=${trusted}`,
    '-o',
    'BatchMode=yes',
  ];
  const ssh = (
    args: string[],
    options: { identity?: string; knownHosts?: string; env?: Record<string, string> } = {},
  ) => start('ssh', [...sshOptions(options.identity, options.knownHosts), ...args], options.env);
  /** Waits for `condition`; `what` says what is awaited (a function: read when the wait fails). */
  const until = async (
    condition: () => boolean | Promise<boolean>,
    what: string | (() => string),
    timeoutMs = 30_000,
  ) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const keygen = (name: string) =>
    promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path.join(home, name)]);
  const fingerprintOf = async (name: string) =>
    (await promisify(execFile)('ssh-keygen', ['-lf', path.join(home, `${name}.pub`)])).stdout.split(' ')[1]!;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('hello', { 'README.md': '# hello\n' });
    stack = await startTestStack({ workflowBundle: bundle, accessTokenTtlSeconds: TOKEN_TTL_SECONDS });
    home = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-ssh-home-'));
    sshConfig = path.join(home, 'ssh_config');
    knownHosts = path.join(home, 'config', 'gitspaces', 'known_hosts');
    const ada = await stack.api('POST', '/api/v1/users', { name: 'ada' });
    expect(ada.status).toBe(201);
    adaToken = ada.body.token;
    for (const name of ['ada', 'laptop', 'stranger']) await keygen(name);
    agentSocket = path.join(home, 'agent.sock');
    start('ssh-agent', ['-D', '-a', agentSocket]);
    await until(() => existsSync(agentSocket), 'ssh-agent');
    await promisify(execFile)('ssh-add', [path.join(home, 'ada')], { env: { SSH_AUTH_SOCK: agentSocket } });
    const added = await gitspaces(['ssh-keys', 'add', path.join(home, 'ada.pub')]);
    expect(added.stderr).toBe('');
    expect(added.stdout).toContain(await fingerprintOf('ada'));
    const created = await stack.api(
      'POST',
      '/api/v1/gitspaces',
      { name: 'api', repository: { url: git.urlOf('hello') }, infrastructureId: 'local', machineId: 'local-default' },
      adaToken,
    );
    expect(created.status).toBe(201);
    gitspaceId = created.body.gitspace.id;
    const running = await waitForGitspace(stack, gitspaceId, (g) => g.state === 'running' || g.state === 'error');
    expect([running.state, running.lastError]).toEqual(['running', undefined]);
    expect(running.sshHostKey).toMatch(/^ssh-ed25519 AAAA/);
    const configured = await gitspaces(['config-ssh', '--ssh-config', sshConfig, '--yes']);
    expect(configured.code).toBe(0);
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await stack?.stop();
    await git?.stop();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("runs a command in the gitspace's workspace and ends with its exit code", async () => {
    const run = await ssh(['gitspace-api', 'cat README.md; echo "user=$(id -un)"; exit 3']).done;
    expect(run).toMatchObject({ code: 3, stdout: '# hello\nuser=gitspace\n' });
    // config-ssh trusted exactly the host key the API serves.
    const known = await readFile(knownHosts, 'utf8');
    expect(known).toBe(
      `gitspace-${gitspaceId} ${(await stack.api('GET', `/api/v1/gitspaces/${gitspaceId}`)).body.sshHostKey}\n`,
    );
  });

  it('gitspaces ssh runs the system ssh itself, trusting the host key the API gave', async () => {
    const run = await gitspaces(['ssh', 'api', '--', 'cat README.md; exit 4'], { SSH_AUTH_SOCK: agentSocket });
    expect(run).toMatchObject({ code: 4, stdout: '# hello\n' });
  });

  it('copies files both ways with scp, over SFTP and with the old protocol (scp -O)', async () => {
    const workspace = (await ssh(['gitspace-api', 'pwd']).done).stdout.trim();
    expect(workspace).not.toBe('');
    for (const mode of [[], ['-O']]) {
      const name = mode.length ? 'legacy' : 'sftp';
      const local = path.join(home, `${name}-up.txt`);
      await writeFile(local, `uploaded over ${name}\n`);
      const up = await start('scp', [...mode, ...sshOptions(), local, `gitspace-api:${workspace}/${name}.txt`]).done;
      expect(up).toMatchObject({ code: 0, stderr: '' });
      expect(await ssh(['gitspace-api', `cat ${name}.txt`]).done).toMatchObject({ stdout: `uploaded over ${name}\n` });
      const down = path.join(home, `${name}-down.txt`);
      const got = await start('scp', [...mode, ...sshOptions(), `gitspace-api:${workspace}/README.md`, down]).done;
      expect(got).toMatchObject({ code: 0, stderr: '' });
      expect(await readFile(down, 'utf8')).toBe('# hello\n');
    }
  });

  it('forwards a local port to a server inside the gitspace (ssh -N -L)', async () => {
    const { inside, local } = await freeLoopbackPorts(['inside', 'local']);
    const server = ssh([
      'gitspace-api',
      `exec node -e "require('http').createServer((q, r) => r.end('hello from inside')).listen(${inside}, '127.0.0.1', () => console.log('listening'))"`,
    ]);
    const forward = ssh(['-N', '-o', 'ExitOnForwardFailure=yes', '-L', `${local}:127.0.0.1:${inside}`, 'gitspace-api']);
    try {
      await until(
        () => server.run.stdout.includes('listening'),
        () => `the server inside the gitspace (its ssh: ${JSON.stringify(server.run)})`,
      );
      let body = '';
      await until(async () => {
        body = await fetch(`http://127.0.0.1:${local}/`).then(
          (r) => r.text(),
          () => '',
        );
        return body !== '';
      }, 'the forwarded port');
      expect(body).toBe('hello from inside');
    } finally {
      forward.child.kill('SIGTERM');
      server.child.kill('SIGTERM');
      await Promise.all([forward.done, server.done]);
    }
  });

  it('refuses a key that is not registered: 255, "Permission denied (publickey)"', async () => {
    const run = await ssh(['gitspace-api', 'true'], { identity: 'stranger' }).done;
    expect(run).toMatchObject({ code: 255, stderr: expect.stringContaining('Permission denied (publickey)') });
  });

  it('refuses a removed key from the next connection on', async () => {
    const added = await gitspaces(['ssh-keys', 'add', path.join(home, 'laptop.pub'), '--name', 'laptop']);
    expect(added.code).toBe(0);
    expect(await ssh(['gitspace-api', 'echo in'], { identity: 'laptop' }).done).toMatchObject({
      code: 0,
      stdout: 'in\n',
    });
    const removed = await gitspaces(['ssh-keys', 'remove', await fingerprintOf('laptop')]);
    expect(removed.code).toBe(0);
    const run = await ssh(['gitspace-api', 'echo in'], { identity: 'laptop' }).done;
    expect(run).toMatchObject({ code: 255, stderr: expect.stringContaining('Permission denied (publickey)') });
    // The other key still works.
    expect(await ssh(['gitspace-api', 'echo in']).done).toMatchObject({ code: 0, stdout: 'in\n' });
  });

  it("fails with the CLI's message when the API token was revoked", async () => {
    const me = (await stack.api('GET', '/api/v1/users', undefined, adaToken)).body.items[0];
    const created = await stack.api('POST', `/api/v1/users/${me.id}/tokens`, { name: 'soon-revoked' }, adaToken);
    expect(created.status).toBe(201);
    const token: string = created.body.token;
    expect(await ssh(['gitspace-api', 'echo in'], { env: { GITSPACES_TOKEN: token } }).done).toMatchObject({ code: 0 });
    expect(
      (await stack.api('DELETE', `/api/v1/users/${me.id}/tokens/${created.body.id}`, undefined, adaToken)).status,
    ).toBe(204);
    const expected = await stack.api('GET', '/api/v1/users', undefined, token);
    expect(expected.status).toBe(401);
    const run = await ssh(['gitspace-api', 'echo in'], { env: { GITSPACES_TOKEN: token } }).done;
    expect(run).toMatchObject({
      code: 255,
      stdout: '',
      stderr: expect.stringContaining(`error: ${expected.body.error.message}\n`),
    });
  });

  it('refuses a gitspace whose host key is not the one in known_hosts', async () => {
    const wrong = path.join(home, 'wrong_known_hosts');
    const strangerKey = (await readFile(path.join(home, 'stranger.pub'), 'utf8')).split(' ').slice(0, 2).join(' ');
    await writeFile(wrong, `gitspace-${gitspaceId} ${strangerKey}\n`);
    const run = await ssh(['gitspace-api', 'echo in'], { knownHosts: wrong }).done;
    expect(run).toMatchObject({
      code: 255,
      stdout: '',
      stderr: expect.stringContaining('Host key verification failed'),
    });
  });

  it(`keeps a session open past the token's lifetime (${TOKEN_TTL_SECONDS} s): the CLI renews the tunnel`, async () => {
    const seconds = TOKEN_TTL_SECONDS + 10;
    const run = await ssh(['gitspace-api', `for i in $(seq 1 ${seconds}); do echo tick $i; sleep 1; done`]).done;
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout.trim().split('\n')).toHaveLength(seconds);
  }, 120_000);

  it('ends an open session within seconds of `gitspaces stop`; ssh --start starts it again, refusing older tokens', async () => {
    const grant = await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/access`, { scope: 'ssh' }, adaToken);
    expect(grant.status).toBe(200);
    const session = ssh(['gitspace-api', 'echo ready; exec sleep 600']);
    await until(() => session.run.stdout.includes('ready'), 'the session');
    const stopped = await gitspaces(['stop', 'api']);
    expect(stopped.code).toBe(0);
    // The stop removes the gateway route before it stops the machine: the session may be over already.
    const ended = await Promise.race([session.done, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    expect(ended).toBe(session.run);
    expect(session.run).toMatchObject({
      code: 255,
      stderr: expect.stringContaining("the SSH tunnel to gitspace 'api' was closed"),
    });

    // A stopped gitspace is started only when asked.
    const refused = await gitspaces(['ssh', 'api', '--', 'echo back'], { SSH_AUTH_SOCK: agentSocket });
    expect(refused).toMatchObject({
      code: 3,
      stdout: '',
      stderr: `error: gitspace 'api' is stopped: start it with \`gitspaces start ${gitspaceId}\`, or add --start\n`,
    });
    const restarted = await gitspaces(['ssh', '--start', 'api', '--', 'echo back'], { SSH_AUTH_SOCK: agentSocket });
    expect(restarted).toMatchObject({ code: 0, stdout: 'back\n' });
    expect(restarted.stderr).toContain("gitspace 'api' is stopped; starting it\n");
    expect(await upgradeStatus(grant.body.url, { authorization: `Bearer ${grant.body.token}` })).toBe(401);
    // The host key survived the restart: the same known_hosts entry still works.
    expect(await ssh(['gitspace-api', 'echo back']).done).toMatchObject({ code: 0, stdout: 'back\n' });
  }, 180_000);
});
