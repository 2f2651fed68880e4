import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../common/logger';
import {
  HOST_UID_REGISTRY,
  agentProcessesIn,
  createLocalProvider,
  localMachinePaths,
  localVscode,
  localVscodeCommand,
  migrateLegacyMachines,
} from './provider';
import {
  SANDBOX_UID_FIRST,
  SANDBOX_UID_LAST,
  agentProgram,
  detectSandbox,
  isSandboxed,
  sandboxWarning,
  type SandboxSupport,
} from './sandbox';

const isRoot = process.getuid?.() === 0;

/** A process that looks like a machine's agent from the outside: its environment and command line say so. */
function impostor(dir: string, extraEnv: Record<string, string>) {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '/fake/agent/main.ts'], {
    env: { GITSPACE_WORKSPACE_DIR: path.join(dir, 'workspace'), GITSPACE_AGENT_PORT: '1', ...extraEnv },
    detached: true,
    stdio: 'ignore',
  });
  return child;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('local provider', () => {
  let root: string;
  let sandbox: SandboxSupport;
  beforeAll(async () => {
    const probeRoot = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-probe-'));
    sandbox = await detectSandbox(path.join(probeRoot, 'machines'));
    await rm(probeRoot, { recursive: true, force: true });
  });
  beforeEach(async () => {
    root = path.join(await mkdtemp(path.join(os.tmpdir(), 'gitspaces-local-')), 'machines');
  });
  afterEach(async () => {
    const provider = createLocalProvider({ rootDir: root, logger: silentLogger, sandbox });
    for (const machine of await provider.list(options())) await provider.delete(machine.gitspaceId, options());
    await rm(path.dirname(root), { recursive: true, force: true });
  });

  const options = () => ({ idempotencyKey: 'k', signal: AbortSignal.timeout(30_000) });
  const bootstrap = { agentSecret: 'secret-that-must-stay-out-of-environ', ide: 'terminal' as const };
  const machine = (gitspaceId: string) => ({ gitspaceId, spec: { machineType: 'local', diskSizeGb: 10 }, bootstrap });

  it('runs sandboxed on this host (bubblewrap is installed for the tests)', () => {
    expect([sandbox.mode, sandbox.reason]).toEqual([isRoot ? 'bwrap-own-user' : 'bwrap-userns', undefined]);
    expect(isSandboxed(sandbox)).toBe(true);
  });

  it('adopts an agent a crashed runner started but never recorded, instead of starting a second one', async () => {
    const provider = createLocalProvider({ rootDir: root, logger: silentLogger, sandbox });
    const created = await provider.create(machine('gs-adopt'), options());
    const files = localMachinePaths(root, 'gs-adopt');
    const [agent] = await agentProcessesIn(files.dir);
    expect(agent).toBeDefined();
    expect(created.agentUrl).toBe(`http://127.0.0.1:${agent!.port}`);

    // What a runner killed between spawning the agent and recording it leaves behind.
    const record = JSON.parse(await readFile(files.record, 'utf8'));
    await writeFile(files.record, JSON.stringify({ ...record, agent: null, starting: { instance: agent!.instance } }));
    const again = await provider.create(machine('gs-adopt'), options());
    expect(again.agentUrl).toBe(created.agentUrl);
    expect((await agentProcessesIn(files.dir)).map((a) => a.pid)).toEqual([agent!.pid]);

    await provider.delete('gs-adopt', options());
    expect(await agentProcessesIn(files.dir)).toEqual([]);
    expect(existsSync(files.dir)).toBe(false);
    expect(existsSync(files.state)).toBe(false);
    expect(await provider.describe('gs-adopt', options())).toBeNull();
  });

  it('never adopts a process that only claims to be the agent (another sandbox can fake environment and argv)', async () => {
    const provider = createLocalProvider({ rootDir: root, logger: silentLogger, sandbox });
    await provider.create(machine('gs-fake'), options());
    const files = localMachinePaths(root, 'gs-fake');
    const [agent] = await agentProcessesIn(files.dir);
    const record = JSON.parse(await readFile(files.record, 'utf8'));
    await provider.stop('gs-fake', options());

    // One impostor guesses the instance; the other knows it (as a process of this very gitspace could) but, as the
    // runner is root, does not run as the machine's own user.
    const guessing = impostor(files.dir, { GITSPACE_AGENT_INSTANCE: 'guessed' });
    const knowing = impostor(files.dir, { GITSPACE_AGENT_INSTANCE: agent!.instance! });
    try {
      await waitUntil(async () => (await agentProcessesIn(files.dir)).length === 2);
      await writeFile(
        files.record,
        JSON.stringify({ ...record, agent: null, starting: { instance: agent!.instance } }),
      );
      const started = await provider.start('gs-fake', bootstrap, options());
      expect(started.agentUrl).not.toBe('http://127.0.0.1:1');
      const now = JSON.parse(await readFile(files.record, 'utf8'));
      expect(now.agent.pid).not.toBe(guessing.pid);
      if (isRoot) expect(now.agent.pid).not.toBe(knowing.pid);
    } finally {
      guessing.kill('SIGKILL');
      knowing.kill('SIGKILL');
    }
  });

  it('runs each agent as a user of its own, in a root of its own, with no secret in its environment', async () => {
    const provider = createLocalProvider({ rootDir: root, logger: silentLogger, sandbox });
    // As under `npm start`, whose processes create only private files.
    const umask = process.umask(0o077);
    let started;
    try {
      started = await provider.create(machine('gs-one'), options());
      await provider.create(machine('gs-two'), options());
    } finally {
      process.umask(umask);
    }
    // The agent serves (it read its secret, its code and its passwd entry).
    await waitUntil(() =>
      fetch(`${started.agentUrl}/_agent/healthz`).then(
        (r) => r.ok,
        () => false,
      ),
    );
    const one = localMachinePaths(root, 'gs-one');
    const two = localMachinePaths(root, 'gs-two');
    const [agentOne] = await agentProcessesIn(one.dir);
    const [agentTwo] = await agentProcessesIn(two.dir);

    // Compiled JavaScript, run by node itself: no TypeScript compiler loads in every agent.
    const argv = (await readFile(`/proc/${agentOne!.pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
    expect(argv).toEqual([realpathSync(process.execPath), expect.stringMatching(/\/agent\/main\.js$/)]);
    expect(argv[1]).toBe(agentProgram().command[1]);

    const environ = await readFile(`/proc/${agentOne!.pid}/environ`, 'utf8');
    expect(environ).not.toContain(bootstrap.agentSecret);
    expect(environ).not.toContain('GITSPACE_AGENT_SECRET=');
    const status = await readFile(`/proc/${agentOne!.pid}/status`, 'utf8');
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(status).toMatch(/^CapEff:\s+0+$/m);

    if (isRoot) {
      expect(agentOne!.uid).toBeGreaterThanOrEqual(SANDBOX_UID_FIRST);
      expect(agentOne!.uid).toBeLessThanOrEqual(SANDBOX_UID_LAST);
      expect(agentTwo!.uid).not.toBe(agentOne!.uid);
      expect(await stat(one.dir)).toMatchObject({ uid: agentOne!.uid, gid: agentOne!.uid });
      expect(await stat(one.home)).toMatchObject({ uid: agentOne!.uid });
    }
    expect((await stat(one.dir)).mode & 0o777).toBe(0o700);
    expect((await stat(one.state)).mode & 0o777).toBe(0o700);
    expect((await stat(one.record)).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(one.state, 'etc', 'passwd'))).mode & 0o777).toBe(0o644);

    // The agent's view of the filesystem: its own machine, no runner state, no other machine.
    const seen = (p: string) => existsSync(path.join(`/proc/${agentOne!.pid}/root`, p));
    expect(seen(one.home)).toBe(true);
    expect(seen(one.state)).toBe(false);
    expect(seen(two.dir)).toBe(false);
    expect(seen(path.join(os.homedir()))).toBe(false);
    // A new pid namespace: the agent is not pid 1 there, and sees none of the host's processes.
    expect(await readFile(`/proc/${agentOne!.pid}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+\d+$/m);

    await provider.delete('gs-one', options());
    await provider.delete('gs-two', options());
    if (isRoot) {
      // Their user ids are free again.
      for (const uid of [agentOne!.uid, agentTwo!.uid])
        expect(existsSync(path.join(HOST_UID_REGISTRY, String(uid)))).toBe(false);
    }
  });

  it('ends at a stop everything the gitspace runs, also what left the agent’s process group', async () => {
    const provider = createLocalProvider({ rootDir: root, logger: silentLogger, sandbox });
    await provider.create(machine('gs-strays'), options());
    const [agent] = await agentProcessesIn(localMachinePaths(root, 'gs-strays').dir);
    // As a server started over SSH is: in the sandbox, as the gitspace's user, in a session of its own.
    const marker = `${30_000 + Math.floor(Math.random() * 1000)}`;
    const enter = isRoot
      ? ['nsenter', `--target=${agent!.pid}`, '--pid', '--mount', `--setuid=${agent!.uid}`, `--setgid=${agent!.uid}`]
      : ['nsenter', `--target=${agent!.pid}`, '--pid', '--mount', '--user', '--preserve-credentials'];
    await new Promise<void>((resolve, reject) =>
      spawn(enter[0]!, [...enter.slice(1), '--', 'setsid', '-f', 'sleep', marker], { stdio: 'ignore' })
        .once('error', reject)
        .once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`nsenter exited ${code}`)))),
    );
    const strays = async () => {
      const found: number[] = [];
      for (const entry of await readdir('/proc')) {
        const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
        if (cmdline === `sleep\0${marker}\0`) found.push(Number(entry));
      }
      return found;
    };
    await waitUntil(async () => (await strays()).length === 1);
    await provider.stop('gs-strays', options());
    expect(await strays()).toEqual([]);
    await provider.delete('gs-strays', options());
  });

  it('stops the agent but keeps the workspace; stopping or deleting what is gone succeeds', async () => {
    const provider = createLocalProvider({ rootDir: root, logger: silentLogger, sandbox });
    await provider.create(machine('gs-stop'), options());
    const files = localMachinePaths(root, 'gs-stop');
    await provider.stop('gs-stop', options());
    expect(await provider.describe('gs-stop', options())).toMatchObject({ status: 'stopped' });
    expect(await agentProcessesIn(files.dir)).toEqual([]);
    expect(existsSync(files.dir)).toBe(true);
    await provider.stop('gs-stop', options());
    await provider.delete('gs-stop', options());
    await provider.delete('gs-stop', options());
    await expect(provider.start('gs-stop', bootstrap, options())).rejects.toThrow(
      "no machine exists for gitspace 'gs-stop'",
    );
  });

  it('moves a machine an older version kept in the data dir out of it, stopping its unsandboxed agent', async () => {
    const legacyRoot = path.join(path.dirname(root), 'data', 'machines');
    const legacy = path.join(legacyRoot, 'gs-old');
    await mkdir(path.join(legacy, 'workspace'), { recursive: true });
    await writeFile(path.join(legacy, 'workspace', 'notes.txt'), 'keep me');
    const old = impostor(legacy, {});
    try {
      await waitUntil(async () => (await agentProcessesIn(legacy)).length === 1);
      await writeFile(
        path.join(legacy, 'machine.json'),
        JSON.stringify({ gitspaceId: 'gs-old', ide: 'terminal', createdAt: '2026-01-01T00:00:00Z', agent: null }),
      );
      expect(await migrateLegacyMachines(legacyRoot, root, silentLogger)).toEqual(['gs-old']);
      expect(await agentProcessesIn(legacy)).toEqual([]);
      expect(await readdir(legacyRoot)).toEqual([]);

      const provider = createLocalProvider({ rootDir: root, logger: silentLogger, sandbox });
      expect(await provider.describe('gs-old', options())).toMatchObject({ status: 'stopped' });
      await provider.start('gs-old', bootstrap, options());
      const files = localMachinePaths(root, 'gs-old');
      expect(await readFile(path.join(files.workspace, 'notes.txt'), 'utf8')).toBe('keep me');
      const [agent] = await agentProcessesIn(files.dir);
      if (isRoot) expect((await stat(path.join(files.workspace, 'notes.txt'))).uid).toBe(agent!.uid);
    } finally {
      old.kill('SIGKILL');
    }
  });

  it('without bubblewrap still runs gitspaces, says loudly what is not isolated, and uses own users as root', async () => {
    // The runner's host without bubblewrap (nor setpriv): nothing of the sort on its PATH. Without a mount
    // namespace, a gitspace's user must be able to pass through the directories above its machine.
    await chmod(path.dirname(root), 0o711);
    const script = `require('./sandbox').detectSandbox(process.argv[1]).then((s) => console.log(JSON.stringify(s)))`;
    const detected = await new Promise<string>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--import', require.resolve('tsx'), '-e', script, path.join(path.dirname(root), 'probe')],
        { cwd: __dirname, env: { PATH: path.join(path.dirname(root), 'empty') }, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.once('error', reject);
      child.once('close', () => resolve(out));
    });
    const support = JSON.parse(detected) as SandboxSupport;
    expect(support).toMatchObject({
      mode: isRoot ? 'own-user' : 'none',
      reason: expect.stringContaining('bubblewrap (bwrap) is not installed'),
    });
    const warning = sandboxWarning(support)!.join('\n');
    expect(warning).toContain('WARNING: local gitspaces are NOT sandboxed (bubblewrap (bwrap) is not installed');
    expect(warning).toContain('apt-get install bubblewrap');

    for (const fallback of [support, { mode: 'none' } as SandboxSupport]) {
      const provider = createLocalProvider({ rootDir: root, logger: silentLogger, sandbox: fallback });
      const started = await provider.create(machine(`gs-${fallback.mode}`), options());
      await waitUntil(() =>
        fetch(`${started.agentUrl}/_agent/healthz`).then(
          (r) => r.ok,
          () => false,
        ),
      );
      const [agent] = await agentProcessesIn(localMachinePaths(root, `gs-${fallback.mode}`).dir);
      expect(await readFile(`/proc/${agent!.pid}/environ`, 'utf8')).not.toContain(bootstrap.agentSecret);
      if (fallback.mode === 'own-user') expect(agent!.uid).toBeGreaterThanOrEqual(SANDBOX_UID_FIRST);
      else expect(agent!.uid).toBe(process.getuid!());
      await provider.delete(`gs-${fallback.mode}`, options());
    }
  });

  (isRoot ? it : it.skip)('as a runner that is not root: a sandbox in a user namespace', async () => {
    // The same provider, run by an unprivileged user (nobody) that owns the machines root.
    const base = path.dirname(root);
    await chmod(base, 0o711);
    await mkdir(root, { mode: 0o700 });
    await chown(root, 65534, 65534);
    const script = `
      const { createLocalProvider, agentProcessesIn, localMachinePaths } = require('./provider');
      const { createLogger } = require('../../common/logger');
      (async () => {
        const root = process.argv[1];
        const provider = createLocalProvider({ rootDir: root, logger: createLogger('t', 'silent') });
        const options = { idempotencyKey: 'k', signal: AbortSignal.timeout(30000) };
        const bootstrap = { agentSecret: 'secret-of-nobody', ide: 'terminal' };
        const m = await provider.create({ gitspaceId: 'gs-userns', spec: { machineType: 'local', diskSizeGb: 1 }, bootstrap }, options);
        let healthy = false;
        for (let i = 0; i < 100 && !healthy; i++) {
          healthy = await fetch(m.agentUrl + '/_agent/healthz').then((r) => r.ok, () => false);
          if (!healthy) await new Promise((r) => setTimeout(r, 100));
        }
        const [agent] = await agentProcessesIn(localMachinePaths(root, 'gs-userns').dir);
        const fs = require('node:fs');
        const environ = fs.readFileSync('/proc/' + agent.pid + '/environ', 'utf8');
        const status = fs.readFileSync('/proc/' + agent.pid + '/status', 'utf8');
        const sees = (p) => fs.existsSync('/proc/' + agent.pid + '/root' + p);
        console.log(JSON.stringify({
          healthy, uid: agent.uid, secretInEnviron: environ.includes('secret-of-nobody'),
          nspid: /^NSpid:\\s+\\d+\\s+\\d+$/m.test(status),
          seesState: sees(localMachinePaths(root, 'gs-userns').state), seesHome: sees(localMachinePaths(root, 'gs-userns').home),
        }));
        await provider.delete('gs-userns', options);
      })();`;
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          '--',
          process.execPath,
          '--import',
          require.resolve('tsx'),
        ].concat(['-e', script, root]),
        { cwd: __dirname, env: { PATH: process.env.PATH, HOME: base }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.once('error', reject);
      child.once('close', () => resolve(out));
    });
    const line = output.split('\n').find((l) => l.startsWith('{'));
    expect([line && JSON.parse(line), output]).toEqual([
      { healthy: true, uid: 65534, secretInEnviron: false, nspid: true, seesState: false, seesHome: true },
      output,
    ]);
  });
});

describe('the runner setting GITSPACES_LOCAL_VSCODE_COMMAND', () => {
  it('names its executable by absolute path, found on the PATH when given by name; a missing one is refused', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-vscode-command-'));
    try {
      await writeFile(path.join(dir, 'code-server'), '#!/bin/sh\n', { mode: 0o755 });
      await writeFile(path.join(dir, 'not-executable'), '', { mode: 0o644 });
      expect(localVscodeCommand('code-server --bind-addr 127.0.0.1:{port}  {workspace}', `/nowhere:${dir}`)).toBe(
        `${dir}/code-server --bind-addr 127.0.0.1:{port} {workspace}`,
      );
      expect(localVscodeCommand(`${dir}/code-server {port}`, '')).toBe(`${dir}/code-server {port}`);
      expect(() => localVscodeCommand('code-server {port}', '/nowhere')).toThrow(
        /'code-server' is not an executable file on the PATH/,
      );
      expect(() => localVscodeCommand(`${dir}/not-executable {port}`, '')).toThrow(/is not an executable file/);
      expect(() => localVscodeCommand(`./code-server {port}`, dir)).toThrow(/is not an executable file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the directory a local VS Code command makes readable in every gitspace (attacks)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-vscode-dir-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const executable = async (file: string) => {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, '#!/bin/sh\n', { mode: 0o755 });
    return `${file} --bind-addr 127.0.0.1:{port} {workspace}`;
  };

  it('is the executable’s own directory, as named and real, when it holds nothing of the runner', async () => {
    const real = path.join(dir, 'code-server-4', 'bin', 'code-server');
    await executable(real);
    await mkdir(path.join(dir, 'bin'));
    await symlink(real, path.join(dir, 'bin', 'code-server'));
    const command = `${dir}/bin/code-server {port}`;
    expect(localVscode(command, [path.join(dir, 'data')])).toEqual({
      command,
      readOnlyPaths: [path.join(dir, 'bin'), path.dirname(real)],
    });
  });

  it('is refused when it holds the data dir, the machines dir or the home of the runner', async () => {
    const command = await executable(path.join(dir, 'code-server'));
    for (const held of ['data', 'data-machines', 'home/runner']) {
      expect(() => localVscode(command, [path.join(dir, held)])).toThrow(
        `every local gitspace would read ${dir}, which holds ${path.join(dir, held)}`,
      );
    }
  });

  it('is refused when only its real directory holds them (a symlink from a clean directory)', async () => {
    const real = path.join(dir, 'runner', 'code-server');
    await executable(real);
    await mkdir(path.join(dir, 'clean'));
    await symlink(real, path.join(dir, 'clean', 'code-server'));
    expect(() => localVscode(`${dir}/clean/code-server {port}`, [path.join(dir, 'runner', '.gitspaces')])).toThrow(
      `would read ${path.join(dir, 'runner')}, which holds ${path.join(dir, 'runner', '.gitspaces')}`,
    );
  });

  it('is refused when it would lie over what the sandbox makes its own (/tmp), or show the whole host (/)', async () => {
    // A file directly in /tmp: its directory is the host's /tmp, laid over the sandbox's private one.
    const inTmp = path.join('/tmp', `${path.basename(dir)}-code-server`);
    try {
      expect(() => localVscode(`${inTmp} {port}`, [])).toThrow(/ENOENT/);
      await writeFile(inTmp, '#!/bin/sh\n', { mode: 0o755 });
      expect(() => localVscode(`${inTmp} {port}`, [])).toThrow('would read /tmp, which holds /tmp');
    } finally {
      await rm(inTmp, { force: true });
    }
    // Whatever sits directly in / (here /usr stands for such a file), named or reached through a symlink.
    expect(() => localVscode('/usr {port}', [])).toThrow('would read /, which holds /etc');
    await symlink('/usr', path.join(dir, 'code-server'));
    expect(() => localVscode(`${dir}/code-server {port}`, [])).toThrow('would read /, which holds /etc');
  });
});
