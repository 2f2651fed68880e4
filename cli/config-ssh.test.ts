import { lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startStubServer, testCli, type StubServer } from '../test/support/cli-stub';
import {
  BLOCK_END,
  BLOCK_START,
  configSshCommand,
  lineDiff,
  replaceBlock,
  sshConfigBlock,
  sshHosts,
} from './commands/config-ssh';
import { proxyCommand, selfCommand, shellQuote, sshArguments } from './commands/ssh';
import { UsageError } from './errors';
import type { Gitspace } from './types';

const gitspace = (id: string, name: string, sshHostKey: string | null = `ssh-ed25519 AAAA${id}`) =>
  ({
    id,
    name,
    state: 'running',
    owner: 'usr-ada',
    repository: { url: 'git://h/r', hasToken: false },
    infrastructureId: 'local',
    machineId: 'local-default',
    ide: 'terminal',
    createdAt: '2026-12-02T09:15:03Z',
    updatedAt: '2026-12-02T09:15:03Z',
    sshHostKey,
  }) as Gitspace & { sshHostKey: string | null };

const USER_CONTENT = 'Host github.com\n  User git\n  IdentityFile ~/.ssh/github\n';

describe('gitspaces config-ssh', () => {
  let stub: StubServer;
  let dir: string;
  let configFile: string;
  let gitspaces: ReturnType<typeof gitspace>[];

  beforeEach(async () => {
    stub = await startStubServer();
    dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-config-ssh-test-'));
    configFile = path.join(dir, 'ssh', 'config');
    gitspaces = [gitspace('gs-aaaaaaaaaaaa', 'api'), gitspace('gs-bbbbbbbbbbbb', 'Web App')];
    stub.answer = (request) =>
      request.path.startsWith('/api/v1/gitspaces?')
        ? { status: 200, body: { items: gitspaces } }
        : { status: 404, body: { error: { code: 'not_found', message: 'no such route' } } };
  });
  afterEach(async () => {
    await stub.close();
    await rm(dir, { recursive: true, force: true });
  });
  const cli = (terminal = false) => testCli({ url: stub.url, configDir: path.join(dir, 'gitspaces'), terminal });
  const run = async (options: { yes?: boolean; dryRun?: boolean } = { yes: true }) => {
    const test = cli();
    await configSshCommand(test.context, { sshConfig: configFile, ...options });
    return test;
  };
  const knownHostsFile = () => path.join(dir, 'gitspaces', 'known_hosts');

  it('writes one Host per gitspace in its marked block, and their host keys to a known_hosts file (0600)', async () => {
    await run();
    const config = await readFile(configFile, 'utf8');
    const knownHosts = knownHostsFile();
    expect(config.split('\n')).toEqual([
      BLOCK_START,
      `# Written by \`gitspaces config-ssh\` for ${stub.url}; run it again after creating or renaming a gitspace.`,
      '# Changes made inside this block are lost then.',
      'Host gitspace-api',
      '  User gitspace',
      `  ProxyCommand ${proxyCommand(selfCommand(), 'gs-aaaaaaaaaaaa')}`,
      '  HostKeyAlias gitspace-gs-aaaaaaaaaaaa',
      `  UserKnownHostsFile ${knownHosts}`,
      '  StrictHostKeyChecking yes',
      '  ServerAliveInterval 30',
      'Host gitspace-web-app',
      '  User gitspace',
      `  ProxyCommand ${proxyCommand(selfCommand(), 'gs-bbbbbbbbbbbb')}`,
      '  HostKeyAlias gitspace-gs-bbbbbbbbbbbb',
      `  UserKnownHostsFile ${knownHosts}`,
      '  StrictHostKeyChecking yes',
      '  ServerAliveInterval 30',
      BLOCK_END,
      '',
    ]);
    expect(proxyCommand(selfCommand(), 'gs-aaaaaaaaaaaa')).toMatch(/ ssh --stdio gs-aaaaaaaaaaaa$/);
    expect(await readFile(knownHosts, 'utf8')).toBe(
      'gitspace-gs-aaaaaaaaaaaa ssh-ed25519 AAAAgs-aaaaaaaaaaaa\ngitspace-gs-bbbbbbbbbbbb ssh-ed25519 AAAAgs-bbbbbbbbbbbb\n',
    );
    expect((await stat(knownHosts)).mode & 0o777).toBe(0o600);
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(configFile))).mode & 0o777).toBe(0o700);
  });

  it('keeps everything outside its block, and a second run changes nothing', async () => {
    await mkdir(path.dirname(configFile));
    await writeFile(configFile, USER_CONTENT, { mode: 0o644 });
    await run();
    const first = await readFile(configFile, 'utf8');
    expect(first.startsWith(`${USER_CONTENT}\n${BLOCK_START}\n`)).toBe(true);
    // The file's own mode is kept.
    expect((await stat(configFile)).mode & 0o777).toBe(0o644);
    // More content after the block, added by hand, stays too.
    await writeFile(configFile, `${first}Host *\n  ServerAliveCountMax 3\n`);
    const before = await readFile(configFile, 'utf8');
    const again = await run();
    expect(await readFile(configFile, 'utf8')).toBe(before);
    expect(again.out()).toBe(`${configFile} is up to date (2 gitspaces)\n`);
    // A renamed gitspace changes its Host line only, in place.
    gitspaces[0] = gitspace('gs-aaaaaaaaaaaa', 'backend');
    const renamed = await run();
    const after = await readFile(configFile, 'utf8');
    expect(after).toBe(before.replace('Host gitspace-api\n', 'Host gitspace-backend\n'));
    expect(renamed.out()).toContain('- Host gitspace-api\n+ Host gitspace-backend\n');
  });

  it('with --dry-run shows the change and writes nothing', async () => {
    const test = await run({ dryRun: true });
    expect(test.out()).toContain(`--- ${configFile}\n+++ ${configFile}\n+ ${BLOCK_START}\n`);
    expect(test.err()).toContain('dry run: nothing written');
    await expect(stat(configFile)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(knownHostsFile())).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('asks before writing; without a terminal it wants --yes and leaves the file alone', async () => {
    const test = cli();
    const writing = configSshCommand(test.context, { sshConfig: configFile });
    await expect(writing).rejects.toThrow(UsageError);
    await expect(writing).rejects.toThrow(/not writing .* without confirmation: add --yes/);
    await expect(stat(configFile)).rejects.toMatchObject({ code: 'ENOENT' });

    const person = cli(true);
    const asked = configSshCommand(person.context, { sshConfig: configFile });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(person.err()).toContain(`Write ${configFile} and ${knownHostsFile()}? [y/N] `);
    person.stdin.write('y\n');
    await asked;
    expect(await readFile(configFile, 'utf8')).toContain('Host gitspace-api\n');
  });

  it('writes through a symbolic link, keeping the link', async () => {
    const real = path.join(dir, 'dotfiles-ssh-config');
    await writeFile(real, USER_CONTENT);
    await mkdir(path.dirname(configFile));
    await symlink(real, configFile);
    await run();
    expect((await lstat(configFile)).isSymbolicLink()).toBe(true);
    const written = await readFile(real, 'utf8');
    expect(written.startsWith(`${USER_CONTENT}\n${BLOCK_START}\n`)).toBe(true);
    expect(written).toContain('Host gitspace-web-app\n');
  });

  it('writes through a link to a file not made yet, making that file (0600) and keeping the link', async () => {
    await mkdir(path.dirname(configFile));
    await symlink('../dotfiles/ssh_config', configFile);
    await mkdir(path.join(dir, 'dotfiles'));
    await run();
    expect((await lstat(configFile)).isSymbolicLink()).toBe(true);
    const real = path.join(dir, 'dotfiles', 'ssh_config');
    expect(await readFile(real, 'utf8')).toContain('Host gitspace-api\n');
    expect((await stat(real)).mode & 0o777).toBe(0o600);
  });

  it('writes nothing when the API gives an id or a host key that would add lines to the config', async () => {
    for (const unsafe of [
      gitspace('gs-a\nHost *\n  ProxyCommand sh -c evil', 'api'),
      gitspace('gs a', 'api'),
      gitspace('gs-aaaaaaaaaaaa', 'api', 'ssh-ed25519 AAAA\n@cert-authority * ssh-ed25519 AAAAevil'),
    ]) {
      gitspaces = [unsafe];
      await expect(run()).rejects.toMatchObject({ code: 'unsafe_answer', exitCode: 3 });
    }
    await expect(stat(configFile)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(knownHostsFile())).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a config whose block has lost its start or end line, rather than guess where it was', () => {
    expect(() =>
      replaceBlock(`${BLOCK_START}\nHost gitspace-api\nHost mine\n`, [BLOCK_START, BLOCK_END], 'cfg'),
    ).toThrow("cfg has the gitspaces block's start line but not its end line; mend it by hand");
    expect(() => replaceBlock(`Host mine\nHost gitspace-api\n${BLOCK_END}\n`, [BLOCK_START, BLOCK_END], 'cfg')).toThrow(
      "cfg has the gitspaces block's end line but not its start line; mend it by hand",
    );
  });
});

describe('ssh config hosts', () => {
  it('gives gitspaces whose names clash the first characters of their id; any clash left the whole id', () => {
    const hosts = sshHosts([
      gitspace('gs-k3v9x2m7q1wz', 'API'),
      gitspace('gs-p8d4a1c9e2rr', 'api'),
      gitspace('gs-z9z9z9z9z9z9', 'web.app'),
      gitspace('gs-y1y1y1y1y1y1', 'web-app'),
      gitspace('gs-q0q0q0q0q0q0', 'tools'),
    ]);
    expect(hosts.map(({ host, gitspace: g }) => `${host} ${g.id}`)).toEqual([
      'gitspace-api-k3v9x2 gs-k3v9x2m7q1wz',
      'gitspace-api-p8d4a1 gs-p8d4a1c9e2rr',
      'gitspace-tools gs-q0q0q0q0q0q0',
      'gitspace-web-app-y1y1y1 gs-y1y1y1y1y1y1',
      'gitspace-web-app-z9z9z9 gs-z9z9z9z9z9z9',
    ]);
    const stubborn = sshHosts([
      gitspace('gs-abcdef000001', 'x'),
      gitspace('gs-abcdef000002', 'x'),
      gitspace('gs-other0000000', 'x-abcdef'),
    ]);
    expect(stubborn.map(({ host }) => host)).toEqual([
      'gitspace-gs-abcdef000001',
      'gitspace-gs-abcdef000002',
      'gitspace-gs-other0000000',
    ]);
  });

  it('quotes the ProxyCommand for the shell and doubles % for OpenSSH', () => {
    expect(shellQuote(['/usr/bin/node', '--import', 'file:///a b/loader.mjs', "it's"])).toBe(
      `/usr/bin/node --import 'file:///a b/loader.mjs' 'it'\\''s'`,
    );
    expect(proxyCommand(['/opt/100%/node', 'main.js'], 'gs-a')).toBe("'/opt/100%%/node' main.js ssh --stdio gs-a");
  });

  it('runs ssh through itself, trusting only the host key it wrote, with the command after --', () => {
    expect(
      sshArguments({ self: ['node', 'main.js'], gitspaceId: 'gs-a', knownHosts: '/tmp/kh', command: ['ls', '-la'] }),
    ).toEqual([
      '-o',
      'ProxyCommand=node main.js ssh --stdio gs-a',
      '-o',
      'HostKeyAlias=gitspace-gs-a',
      '-o',
      'UserKnownHostsFile=/tmp/kh',
      '-o',
      'StrictHostKeyChecking=yes',
      'gitspace@gitspace-gs-a',
      '--',
      'ls',
      '-la',
    ]);
  });

  it('shows a change as removed and added lines around the kept ones', () => {
    expect(lineDiff(['a', 'b', 'c'], ['a', 'x', 'c', 'd'], 'f')).toEqual([
      '--- f',
      '+++ f',
      '  a',
      '- b',
      '+ x',
      '  c',
      '+ d',
    ]);
  });

  it('writes a block with no Host when there are no gitspaces', () => {
    expect(sshConfigBlock({ hosts: [], self: ['g'], knownHostsFile: '/k', apiUrl: 'http://api' })).toHaveLength(4);
  });
});
