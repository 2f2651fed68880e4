import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitServer, type GitServer } from './support/git-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';

const CLI = path.join(__dirname, '..', 'cli', 'main.ts');
const TSX = pathToFileURL(require.resolve('tsx')).href;

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A TCP relay in front of the API whose connections the test can cut, as a flaky network would. */
async function startRelay(targetPort: number) {
  const open = new Set<net.Socket>();
  /** What clients sent, chunk by chunk: a keep-alive connection carries several requests. */
  const sent: string[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    client.on('data', (chunk: Buffer) => sent.push(chunk.toString('latin1')));
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    for (const socket of [client, upstream]) socket.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    sent,
    cut: () => open.forEach((socket) => socket.destroy()),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The `gitspaces` command line as a user runs it: a child process of its own (`tsx cli/main.ts`), with its own home
 * and config directory, against the whole product on real parts (a Temporal dev server, the control plane, the runner
 * for the local infrastructure, the gateway) and a real git server on loopback.
 */
describe('the gitspaces CLI', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let stack: TestStack;
  let git: GitServer;
  let home: string;
  let apiUrl: string;
  const tokens: Record<'ada' | 'bob', string> = { ada: '', bob: '' };
  const children = new Set<ChildProcess>();

  /**
   * Starts the CLI; `done` resolves with its exit code and output once it has exited. On a `terminal` (a pseudo-terminal
   * from util-linux `script`) stdout and stderr arrive together on stdout, and stdin stays open for `type`.
   */
  const startCli = (
    args: string[],
    options: { env?: Record<string, string>; input?: string; terminal?: boolean } = {},
  ) => {
    const command = [process.execPath, '--import', TSX, CLI, ...args];
    const quoted = command.map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(' ');
    const [program, ...programArgs] = options.terminal ? ['script', '-qec', quoted, '/dev/null'] : command;
    const child = spawn(program!, programArgs, {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: home,
        XDG_CONFIG_HOME: path.join(home, 'config'),
        NODE_OPTIONS: '',
        ...options.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(child);
    const run: CliRun = { code: null, stdout: '', stderr: '' };
    child.stdout.on('data', (chunk: Buffer) => (run.stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (run.stderr += chunk.toString('utf8')));
    if (!options.terminal) child.stdin.end(options.input ?? '');
    const done = new Promise<CliRun>((resolve) =>
      child.once('close', (code) => {
        children.delete(child);
        run.code = code;
        resolve(run);
      }),
    );
    return { child, run, done };
  };
  const cli = (args: string[], options: { env?: Record<string, string>; input?: string } = {}) =>
    startCli(args, options).done;
  /** As ada, by environment (no stored credentials needed). */
  const asAda = () => ({ GITSPACES_URL: apiUrl, GITSPACES_TOKEN: tokens.ada });
  const until = async (condition: () => boolean, what: string, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const gitspaceNamed = async (name: string, token = tokens.ada) => {
    const { body } = await stack.api('GET', '/api/v1/gitspaces', undefined, token);
    return (body.items as any[]).find((g) => g.name === name && g.state !== 'deleted');
  };

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('hello', { 'README.md': '# hello\n' });
    stack = await startTestStack({ workflowBundle: bundle });
    apiUrl = stack.controlPlane.url;
    for (const name of ['ada', 'bob'] as const) {
      const created = await stack.api('POST', '/api/v1/users', { name });
      expect(created.status).toBe(201);
      tokens[name] = created.body.token;
    }
    home = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-cli-home-'));
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await stack?.stop();
    await git?.stop();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('logs in with a token it checked, kept 0600 in a 0700 directory', async () => {
    const login = await cli(['login', '--url', `${apiUrl}/api/v1`, '--token-stdin'], { input: `${tokens.ada}\n` });
    expect(login.stderr).toBe('');
    expect(login.code).toBe(0);
    const file = path.join(home, 'config', 'gitspaces', 'credentials.json');
    expect(login.stdout).toBe(`logged in to ${apiUrl} as ada (member); credentials in ${file}\n`);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ url: apiUrl, token: tokens.ada });

    const list = await cli(['list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toBe('no gitspaces\n');
  });

  it('refuses a credentials file others can read, saying how to fix it', async () => {
    const file = path.join(home, 'config', 'gitspaces', 'credentials.json');
    await chmod(file, 0o644);
    try {
      const list = await cli(['list']);
      expect(list.code).toBe(3);
      expect(list.stderr).toContain(`error: ${file} can be read by others (mode 0644), so its token is not used`);
      expect(list.stdout).toBe('');
    } finally {
      await chmod(file, 0o600);
    }
    expect((await cli(['list'])).code).toBe(0);
  });

  it("refuses a bad token with the API's message and exit 3, storing nothing", async () => {
    const expected = await stack.api('GET', '/api/v1/users', undefined, 'gs_not-a-real-token');
    expect(expected.status).toBe(401);
    const elsewhere = path.join(home, 'other-config');
    const login = await cli(['login', '--url', apiUrl, '--token-stdin'], {
      input: 'gs_not-a-real-token',
      env: { XDG_CONFIG_HOME: elsewhere },
    });
    expect(login.code).toBe(3);
    expect(login.stderr).toBe(`error: ${expected.body.error.message}\n`);
    await expect(stat(path.join(elsewhere, 'gitspaces', 'credentials.json'))).rejects.toThrow('ENOENT');

    const list = await cli(['list', '--json'], { env: { GITSPACES_TOKEN: 'gs_not-a-real-token' } });
    expect(list.code).toBe(3);
    expect(JSON.parse(list.stdout)).toEqual({
      error: { code: expected.body.error.code, message: expected.body.error.message, status: 401 },
    });
  });

  it("shows the API's field errors for bad input and creates nothing", async () => {
    const create = await cli(['create', 'ftp://git.example.com/org/repo.git', '--name', 'bad']);
    expect(create.code).toBe(3);
    const lines = create.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^error: /);
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}repository\.url: scheme 'ftp' is not supported/));
    const list = await cli(['list', '--all', '--json']);
    expect(JSON.parse(list.stdout).items).toEqual([]);
  });

  it('refuses a wrong command line with exit 2 before calling the API', async () => {
    const missing = await cli(['create']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("error: missing required argument 'repo-url'");
    const ide = await cli(['create', git.urlOf('hello'), '--ide', 'emacs']);
    expect(ide.code).toBe(2);
    expect(ide.stderr).toContain('Allowed choices are vscode-web, terminal, ssh');
    const states = await cli(['list', '--state', 'running,asleep']);
    expect(states.code).toBe(2);
    expect(states.stderr).toContain("unknown state 'asleep'");
  });

  it('creates a gitspace and follows its start to running, one progress line per step', async () => {
    const create = await cli(['create', git.urlOf('hello'), '--name', 'api']);
    expect(create.stderr).not.toContain('error');
    expect(create.code).toBe(0);
    const gitspace = await gitspaceNamed('api');
    expect(gitspace.state).toBe('running');
    expect(create.stdout).toBe(`gitspace 'api' is running: ${gitspace.url} (${gitspace.id})\n`);
    const progress = create.stderr.trimEnd().split('\n');
    expect(progress[0]).toMatch(/^\[ +\d+s\] start 'api': requested$/);
    for (const step of ['ensure the machine exists and runs', 'prepare the workspace', 'register the gateway route']) {
      expect(progress).toContainEqual(expect.stringMatching(new RegExp(`^\\[ +\\d+s\\] start 'api': ${step}$`)));
    }
  });

  it('lists and shows gitspaces, for people and with --json', async () => {
    const gitspace = await gitspaceNamed('api');
    const list = await cli(['list']);
    expect(list.stdout.split('\n').slice(0, 2)).toEqual([
      expect.stringMatching(/^NAME +STATE +IDE +REPOSITORY +ID$/),
      expect.stringMatching(new RegExp(`^api +running +terminal +${git.urlOf('hello')} +${gitspace.id}$`)),
    ]);
    const listed = JSON.parse((await cli(['list', '--json', '--state', 'running'])).stdout);
    expect(listed.items.map((g: any) => [g.name, g.state])).toEqual([['api', 'running']]);
    expect(JSON.parse((await cli(['--json', 'list', '--state', 'stopped,error'])).stdout).items).toEqual([]);

    const shown = await cli(['show', 'api', '--json']);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      id: gitspace.id,
      name: 'api',
      state: 'running',
      url: gitspace.url,
    });
    const byId = await cli(['show', gitspace.id]);
    expect(byId.stdout).toMatch(/^state: +running$/m);
    expect(byId.stdout).toContain(`${gitspace.url}\n`);
    expect(byId.stdout).toMatch(/^operation: +start succeeded /m);
  });

  it('opens a running gitspace: a fresh link printed, and handed to xdg-open where there is a display', async () => {
    const printed = await cli(['open', 'api', '--print']);
    expect(printed.code).toBe(0);
    const link = printed.stdout.trim();
    expect(link).toMatch(/\?token=/);
    const exchange = await fetch(link, { redirect: 'manual' });
    expect([302, 303]).toContain(exchange.status);

    const bin = await mkdtemp(path.join(home, 'bin-'));
    const opened = path.join(bin, 'opened');
    await writeFile(path.join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`, { mode: 0o755 });
    const open = await cli(['open', 'api'], { env: { DISPLAY: ':99', PATH: `${bin}:${process.env.PATH}` } });
    expect(open.code).toBe(0);
    expect(open.stderr).toContain("opened gitspace 'api' in your browser");
    await until(() => open.stdout.trim() !== '', 'the printed link');
    const deadline = Date.now() + 10_000;
    let handed = '';
    while (!handed && Date.now() < deadline) {
      handed = await readFile(opened, 'utf8').catch(() => '');
      if (!handed) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(handed).toBe(open.stdout.trim());
  });

  it('exits 1 with the step and message when a start fails, and retry runs it again', async () => {
    // No repository 'later' yet: the clone fails at prepareWorkspace.
    const create = await cli(['create', git.urlOf('later'), '--json']);
    expect(create.code).toBe(1);
    const error = JSON.parse(create.stdout).error;
    expect(error).toMatchObject({ code: 'lifecycle_failed', action: 'start', step: 'prepareWorkspace' });
    const gitspace = await gitspaceNamed('later');
    expect(gitspace.state).toBe('error');
    expect(create.stderr).toContain(
      `error: start of gitspace 'later' failed at 'prepare the workspace': ${gitspace.lastError.message}\n` +
        '  step: prepare the workspace (prepareWorkspace)\n',
    );
    expect(gitspace.lastError.message).toMatch(/could not be reached or cloned/);

    await git.createRepository('later', { 'README.md': '# later\n' });
    const retry = await cli(['retry', 'later']);
    expect(retry.code).toBe(0);
    expect(retry.stderr).toMatch(/start 'later': prepare the workspace\n/);
    expect(retry.stdout).toMatch(/^gitspace 'later' is running: /);
  });

  it('stops and starts, and Ctrl-C stops waiting (exit 130) while the operation goes on', async () => {
    const stop = await cli(['stop', 'api']);
    expect(stop.code).toBe(0);
    expect(stop.stderr).toMatch(/stop 'api': stop the machine\n/);
    expect(stop.stdout).toMatch(/^gitspace 'api' is stopped \(gs-/);

    const start = startCli(['start', 'api']);
    await until(() => /start 'api': /.test(start.run.stderr), 'the first progress line');
    start.child.kill('SIGINT');
    const interrupted = await start.done;
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toContain("error: stopped waiting; the start of 'api' goes on");
    const gitspace = await gitspaceNamed('api');
    await waitForGitspace(stack, gitspace.id, (g) => g.state === 'running');
  });

  it('shows the events with time, actor, step or state, and message', async () => {
    const logs = await cli(['logs', 'api']);
    expect(logs.code).toBe(0);
    const lines = logs.stdout.trimEnd().split('\n');
    const time = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ';
    expect(lines[0]).toMatch(new RegExp(`^${time}  ada +created +gitspace 'api' created$`));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${time}  ada +step +prepare the workspace$`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${time}  ada +running +gitspace running$`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${time}  ada +stopping +stop requested$`)));

    const failed = (await cli(['logs', 'later'])).stdout;
    expect(failed).toMatch(
      new RegExp(`${time}  ada +error +start failed at 'prepare the workspace': .*\\n {22}cause: \\w+`),
    );
  });

  it('follows the events across a dropped connection (Last-Event-ID), until the gitspace is deleted', async () => {
    const gitspace = await gitspaceNamed('api');
    const before = (await stack.api('GET', `/api/v1/gitspaces/${gitspace.id}/events`)).body.items.length;
    const relay = await startRelay(Number(new URL(apiUrl).port));
    try {
      const follow = startCli(['logs', 'api', '--follow', '--json'], {
        env: { GITSPACES_URL: relay.url, GITSPACES_TOKEN: tokens.ada },
      });
      await until(() => follow.run.stdout.split('\n').filter(Boolean).length >= before, 'the backlog');
      relay.cut();
      // Deleted while the stream is down: its events come with the resumed stream.
      const deletion = await cli(['delete', 'api', '--yes']);
      expect(deletion.code).toBe(0);
      expect(deletion.stdout).toBe(`gitspace 'api' is deleted (${gitspace.id})\n`);
      const followed = await follow.done;
      expect(followed.code).toBe(0);
      expect(followed.stderr).toMatch(/the event stream dropped \(.*\); resuming/);
      const events = followed.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line));
      const all = (await stack.api('GET', `/api/v1/gitspaces/${gitspace.id}/events`)).body.items;
      expect(events.map((e: any) => e.seq)).toEqual(all.map((e: any) => e.seq));
      expect(events.at(-1)).toMatchObject({ type: 'state', state: 'deleted' });
      const resumed = relay.sent.filter((chunk) => chunk.startsWith(`GET /api/v1/gitspaces/${gitspace.id}/events `));
      expect(resumed.length).toBeGreaterThanOrEqual(2);
      expect(resumed.at(-1)).toMatch(new RegExp(`\\r\\nlast-event-id: ${before}\\r\\n`, 'i'));
    } finally {
      await relay.close();
    }
  });

  it('stops following on the timeout it is given', async () => {
    const started = Date.now();
    const follow = await cli(['logs', 'later', '--follow', '--timeout', '2']);
    expect(follow.code).toBe(0);
    expect(follow.stdout).toMatch(/running +gitspace running\n$/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
  });

  it('on a terminal, rewrites one progress line in place and asks before deleting', async () => {
    const stop = await startCli(['stop', 'later'], { terminal: true }).done;
    expect(stop.code).toBe(0);
    // Each rendering starts by going back to the line's start and clearing it.
    const renderings = stop.stdout.split('\r\x1b[2K');
    expect(renderings).toContainEqual(expect.stringMatching(/^[⠋-⠿] stop 'later': requested · 0s$/));
    expect(renderings).toContainEqual(expect.stringMatching(/^[⠋-⠿] stop 'later': stop the machine · \d+s$/));
    expect(renderings.at(-1)).toMatch(/^gitspace 'later' is stopped \(gs-\w+\)\r\n$/);
    expect(stop.stdout).not.toMatch(/\[ +\d+s\]/);

    const asked = startCli(['delete', 'later'], { terminal: true });
    await until(() => asked.run.stdout.includes('[y/N]'), 'the question');
    expect(asked.run.stdout).toMatch(/Delete gitspace 'later' \(gs-\w+\)\? Its machine and disks are removed/);
    asked.child.stdin!.end('n\n');
    const declined = await asked.done;
    expect(declined.code).toBe(2);
    expect(declined.stdout).toContain("error: gitspace 'later' was not deleted");
    expect((await gitspaceNamed('later')).state).toBe('stopped');
  });

  it('deletes only with --yes when no one is at a terminal to confirm', async () => {
    const refused = await cli(['delete', 'later']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe("error: not deleting gitspace 'later' without confirmation: add --yes\n");
    expect((await gitspaceNamed('later')).state).toBe('stopped');
    const deleted = await cli(['delete', 'later', '--yes', '--json']);
    expect(deleted.code).toBe(0);
    expect(JSON.parse(deleted.stdout).gitspace).toMatchObject({ name: 'later', state: 'deleted' });
  });

  it('says which gitspaces share an ambiguous name, and that an unknown one does not exist', async () => {
    for (const owner of ['ada', 'bob'] as const) {
      const body = {
        name: 'twin',
        repository: { url: git.urlOf('hello') },
        infrastructureId: 'local',
        machineId: 'local-default',
        start: false,
      };
      expect((await stack.api('POST', '/api/v1/gitspaces', body, tokens[owner])).status).toBe(201);
    }
    const asAdmin = { GITSPACES_URL: apiUrl, GITSPACES_TOKEN: stack.controlPlane.adminToken };
    const ambiguous = await cli(['show', 'twin'], { env: asAdmin });
    expect(ambiguous.code).toBe(2);
    const ids = [(await gitspaceNamed('twin', tokens.ada)).id, (await gitspaceNamed('twin', tokens.bob)).id];
    expect(ambiguous.stderr).toMatch(/^error: 2 gitspaces are named 'twin': .*; name one by its id\n$/);
    for (const id of ids) expect(ambiguous.stderr).toContain(id);
    // Ada sees only her own: the name is hers alone.
    const own = await cli(['show', 'twin', '--json'], { env: asAda() });
    expect(JSON.parse(own.stdout).id).toBe(ids[0]);

    const unknown = await cli(['show', 'nothing-here']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain("error: no gitspace has the name or id 'nothing-here'");
  });
});
