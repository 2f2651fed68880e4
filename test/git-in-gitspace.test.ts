import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { gitCredentialsFile } from '../agent/git';
import { localMachinePaths, localMachinesRoot } from '../providers/local/provider';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitHttpServer, type GitHttpServer } from './support/git-http-server';
import { startGitServer, type GitServer } from './support/git-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';
import { Terminal } from './support/terminal';

/** The identity the owner gives git in the gitspace: a fresh gitspace has none (see the first commit below). */
const IDENTITY =
  'GIT_AUTHOR_NAME=Alice GIT_AUTHOR_EMAIL=alice@example.test GIT_COMMITTER_NAME=Alice GIT_COMMITTER_EMAIL=alice@example.test';

/**
 * `git pull` and `git push` inside a gitspace (issue 15, part 4), as its owner does them: in the browser terminal
 * reached through the gateway, in the local sandbox, against a git server that wants the repository token for every
 * request. The token was given once, at creation; it must keep working after the clone and across a stop and start,
 * and stay out of everything the gitspace's processes or its git configuration show.
 */
describe('git pull and push inside a gitspace', () => {
  const token = `ghp_${Math.random().toString(36).slice(2)}${Date.now()}`;
  let bundle: WorkflowBundleWithSourceMap;
  let stack: TestStack;
  let git: GitHttpServer;
  let publicGit: GitServer;
  let bare: string;
  let hostWork: string;
  let alice: { token: string; gitspaceId: string };
  let bob: { token: string; gitspaceId: string };
  let terminal: Terminal;

  const member = async (name: string, repository: Record<string, string>) => {
    const user = await stack.api('POST', '/api/v1/users', { name });
    expect(user.status).toBe(201);
    const created = await stack.api(
      'POST',
      '/api/v1/gitspaces',
      { name, repository, infrastructureId: 'local', machineId: 'local-default', ide: 'terminal' },
      user.body.token,
    );
    expect(created.status).toBe(201);
    return { token: user.body.token as string, gitspaceId: created.body.gitspace.id as string };
  };
  const running = async (gitspaceId: string) => {
    const g = await waitForGitspace(stack, gitspaceId, (x) => x.state === 'running' || x.state === 'error');
    expect([g.state, g.lastError]).toEqual(['running', undefined]);
  };
  /** git on the runner's host, in a clone of the server's bare repository (another developer's machine). */
  const hostGit = (...args: string[]) =>
    execFileSync('git', args, {
      cwd: hostWork,
      encoding: 'utf8',
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: 'Bea',
        GIT_AUTHOR_EMAIL: 'bea@example.test',
        GIT_COMMITTER_NAME: 'Bea',
        GIT_COMMITTER_EMAIL: 'bea@example.test',
      },
    });
  const authorisedPushes = () =>
    git.requests.filter((r) => r.method === 'POST' && r.path === '/project/git-receive-pack' && r.authorized).length;
  const machineOf = (id: string) => localMachinePaths(localMachinesRoot(stack.dataDir), id);
  /** Commits what is staged in the gitspace, pushes it, and checks the push was authorised and another clone has it. */
  const commitAndPush = async (message: string, file: string, content: string) => {
    expect(await terminal.run(`${IDENTITY} git commit --quiet -m "${message}"; echo exit=$?`)).toBe('exit=0');
    const before = authorisedPushes();
    expect(await terminal.run('git push --quiet origin HEAD:main; echo exit=$?')).toBe('exit=0');
    expect(authorisedPushes()).toBeGreaterThan(before);
    hostGit('pull', '--quiet', '--ff-only', 'origin', 'main');
    expect(await readFile(path.join(hostWork, file), 'utf8')).toBe(content);
  };

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitHttpServer({ token });
    bare = await git.createRepository('project', { 'README.md': '# project\n' });
    publicGit = await startGitServer();
    await publicGit.createRepository('bobs', { 'README.md': '# bob\n' });
    hostWork = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-host-clone-'));
    execFileSync('git', ['clone', '--quiet', bare, hostWork]);
    stack = await startTestStack({ workflowBundle: bundle });
    alice = await member('alice', { url: git.urlOf('project'), token });
    bob = await member('bob', { url: publicGit.urlOf('bobs') });
    await running(alice.gitspaceId);
    await running(bob.gitspaceId);
    terminal = await Terminal.open(stack, alice.gitspaceId, alice.token);
  }, 180_000);
  afterAll(async () => {
    terminal?.close();
    await stack?.stop();
    await git?.stop();
    await publicGit?.stop();
    await rm(hostWork, { recursive: true, force: true });
  }, 60_000);

  it('git pull gets a commit pushed to the server after the clone', async () => {
    expect(await terminal.run('cat README.md')).toBe('# project');
    hostGit('commit', '--quiet', '--allow-empty', '-m', 'after the clone');
    execFileSync('sh', ['-c', 'echo "pushed later" > LATER.md'], { cwd: hostWork });
    hostGit('add', 'LATER.md');
    hostGit('commit', '--quiet', '-m', 'a file after the clone');
    hostGit('push', '--quiet', 'origin', 'HEAD:main');
    const pulled = await terminal.run('git pull --ff-only');
    expect(pulled).not.toMatch(/fatal|error|Authentication|Username/i);
    expect(await terminal.run('cat LATER.md')).toBe('pushed later');
  });

  it('a commit pushed with git push origin HEAD:main lands on the server, authorised by the token', async () => {
    // A fresh gitspace has no commit identity of its own: git refuses to guess one.
    await terminal.run('echo from-the-gitspace > FROM_GITSPACE.md && git add FROM_GITSPACE.md');
    expect(await terminal.run('git commit --quiet -m "from the gitspace"; echo exit=$?')).toMatch(
      /Please tell me who you are[\s\S]*exit=128/,
    );
    await commitAndPush('from the gitspace', 'FROM_GITSPACE.md', 'from-the-gitspace\n');
    expect(hostGit('log', '-1', '--format=%an <%ae> %s').trim()).toBe('Alice <alice@example.test> from the gitspace');
  });

  it('the token is in none of the environment, the command lines, .git/config or git config --list', async () => {
    const shown = [
      await terminal.run('env'),
      await terminal.run("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done"),
      await terminal.run("for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f 2>/dev/null; done"),
      await terminal.run('cat .git/config'),
      await terminal.run('git config --list --show-origin'),
    ];
    // The negative control: the terminal does show what these commands print.
    expect(shown[0]).toMatch(/^HOME=/m);
    expect(shown[1]).toMatch(/bash/);
    expect(shown[2]).toMatch(/^GITSPACE_ID=/m);
    expect(shown[3]).toContain('[remote "origin"]');
    expect(shown[4]).toMatch(/credential\.helper=store --file=/);
    for (const text of shown) expect(text).not.toContain(token);
    // It is kept in one file of the gitspace's own home, for git's credential helper, readable by its user alone.
    const file = gitCredentialsFile(machineOf(alice.gitspaceId).home, alice.gitspaceId);
    expect(await readFile(file, 'utf8')).toContain(token);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("another member's gitspace cannot read the credentials file", async () => {
    const file = gitCredentialsFile(machineOf(alice.gitspaceId).home, alice.gitspaceId);
    const bobs = await Terminal.open(stack, bob.gitspaceId, bob.token);
    try {
      const shown = await bobs.run(`cat ${file}; ls -la ${path.dirname(file)}`);
      expect(shown).toMatch(/No such file or directory|Permission denied/);
      expect(shown).not.toContain(token);
      expect(await bobs.run('cat README.md')).toBe('# bob');
    } finally {
      bobs.close();
    }
  });

  it('push still works after the gitspace is stopped and started again', async () => {
    terminal.close();
    for (const [action, state] of [
      ['stop', 'stopped'],
      ['start', 'running'],
    ]) {
      const route = `/api/v1/gitspaces/${alice.gitspaceId}/actions`;
      expect((await stack.api('POST', route, { action }, alice.token)).status).toBe(202);
      await waitForGitspace(stack, alice.gitspaceId, (g) => g.state === state || g.state === 'error');
    }
    await running(alice.gitspaceId);
    terminal = await Terminal.open(stack, alice.gitspaceId, alice.token);
    await terminal.run('echo again > AGAIN.md && git add AGAIN.md');
    await commitAndPush('after a restart', 'AGAIN.md', 'again\n');
  });
});
