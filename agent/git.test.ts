import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger, silentLogger, type Logger } from '../common/logger';
import { startGitServer, type GitServer } from '../test/support/git-server';
import { serveAgent, type ServedAgent } from '../test/support/agent';
import { startGitHttpServer, type GitHttpServer } from '../test/support/git-http-server';
import {
  CLONE_FAILED_REASON,
  CloneFailedError,
  RepositoryAddressRefusedError,
  cloneRepository,
  gitCredentialsFile,
  type CloneOptions,
} from './git';
import type { HostLookup, RepositoryNetworks } from './repository-address';

const run = promisify(execFile);
const TOKEN = 'ghp_gitspacesTestToken0123456789abcdef';

let root: string;
let counter = 0;
/** A fresh workspace path and gitspace home for each clone. */
const fresh = () => {
  counter += 1;
  return { workspace: path.join(root, `ws-${counter}`, 'workspace'), home: path.join(root, `home-${counter}`) };
};
const options = (home: string, networks: RepositoryNetworks, extra: Partial<CloneOptions> = {}): CloneOptions => ({
  networks,
  credentialsFile: gitCredentialsFile(home, 'gs-test'),
  logger: silentLogger,
  ...extra,
});
/** Resolves the given names to fixed addresses; anything else does not resolve. No DNS query leaves the test. */
const lookupOf =
  (names: Record<string, string[]>, calls: string[] = []): HostLookup =>
  async (hostname) => {
    calls.push(hostname);
    const addresses = names[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

/** A loopback listener that counts connections: a refused address must never be dialled. */
async function listener(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * Puts stand-ins for `git` and `ssh` first on PATH that record their arguments and fail, so the tests of addresses
 * that must never be dialled (metadata, private networks) cannot dial them whatever the code under test does.
 */
async function withStandIns<T>(
  names: ('git' | 'ssh')[],
  body: (calls: () => Promise<string[]>) => Promise<T>,
): Promise<T> {
  const bin = await mkdtemp(path.join(root, 'bin-'));
  const log = path.join(bin, 'calls.log');
  for (const name of names) {
    await writeFile(path.join(bin, name), `#!/bin/sh\necho "${name} $*" >> '${log}'\nexit 128\n`);
    await chmod(path.join(bin, name), 0o755);
  }
  const savedPath = process.env.PATH;
  process.env.PATH = `${bin}:${savedPath}`;
  try {
    return await body(async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean));
  } finally {
    process.env.PATH = savedPath;
  }
}

async function refusal(url: string, networks: RepositoryNetworks, lookup?: HostLookup): Promise<unknown> {
  const { workspace, home } = fresh();
  return cloneRepository({ url }, workspace, options(home, networks, lookup ? { lookup } : {})).then(
    () => new Error(`cloned ${url}`),
    (error: unknown) => error,
  );
}

/** The base64 characters that depend only on `secret`, when it is encoded after `offset` bytes of something else. */
function base64Inside(secret: string, offset: number): string {
  const bytes = Buffer.byteLength(secret);
  const encoded = Buffer.concat([Buffer.alloc(offset), Buffer.from(secret)]).toString('base64');
  return encoded.slice(Math.ceil((8 * offset) / 6), Math.floor((8 * (offset + bytes)) / 6));
}

let git: GitServer;
/** One smart-HTTP server for the file, whose repositories need the token. */
let server: GitHttpServer;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-clone-'));
  git = await startGitServer();
  await git.createRepository('hello', { 'README.md': '# hello\n' });
  server = await startGitHttpServer({ token: TOKEN });
  await server.createRepository('hello', { 'README.md': '# over http\n' });
  await server.createRepository('private', { 'README.md': '# private\n' });
  await server.createRepository('app', { 'README.md': '# app\n' });
});
afterAll(async () => {
  await git.stop();
  await server.stop();
  await rm(root, { recursive: true, force: true });
});

describe('repository URLs are checked where the clone runs (issue 10, finding 5)', () => {
  const NEVER = /link-local or metadata address, which is never allowed/;
  const ALL_ALLOWED: RepositoryNetworks = { allowLoopback: true, allowPrivate: true };

  it('refuses the metadata service, in every spelling, whatever the infrastructure allows, without dialling it', async () => {
    await withStandIns(['git', 'ssh'], async (calls) => {
      const metadataName = lookupOf({ 'metadata.google.internal': ['169.254.169.254'] });
      for (const [url, lookup] of [
        ['http://169.254.169.254/latest/meta-data/', undefined],
        ['http://metadata.google.internal/computeMetadata/v1/', metadataName],
        ['http://0xa9fea9fe/latest/meta-data/', undefined],
        ['http://2852039166/latest/meta-data/', undefined],
        ['git://0xa9fea9fe/x', undefined],
        ['ssh://git@169.254.169.254/x', undefined],
        ['http://[::ffff:169.254.169.254]/latest/meta-data/', undefined],
        ['http://[fd00:ec2::254]/latest/meta-data/', undefined],
        ['http://[fe80::1]/x', undefined],
      ] as const) {
        const error = await refusal(url, ALL_ALLOWED, lookup);
        expect(error).toBeInstanceOf(RepositoryAddressRefusedError);
        expect((error as RepositoryAddressRefusedError).rule).toBe('link-local');
        expect((error as Error).message).toMatch(NEVER);
        // The rule, not the repository: the message becomes a Temporal failure message, which is not encrypted.
        expect((error as Error).message).not.toContain(url);
      }
      expect(await calls()).toEqual([]);
    });
  });

  it('refuses a host whose answers include a metadata address next to a public one', async () => {
    await withStandIns(['git'], async (calls) => {
      const lookup = lookupOf({ 'git.example.test': ['203.0.113.9', '169.254.169.254'] });
      const error = await refusal('https://git.example.test/org/repo.git', ALL_ALLOWED, lookup);
      expect((error as Error).message).toMatch(NEVER);
      expect(await calls()).toEqual([]);
    });
  });

  it('refuses loopback in every spelling unless the infrastructure allows it, and never connects', async () => {
    const target = await listener();
    try {
      const p = target.port;
      for (const url of [
        `http://127.0.0.1:${p}/`,
        `http://0x7f000001:${p}/`,
        `http://2130706433:${p}/`,
        `http://127.1:${p}/`,
        `http://017700000001:${p}/`,
        `http://[::ffff:127.0.0.1]:${p}/`,
        `http://[::1]:${p}/`,
        `git://0x7f000001:${p}/hello`,
        `git://2130706433:${p}/hello`,
        `ssh://git@127.1:${p}/hello`,
        `git://localhost:${p}/hello`,
      ]) {
        const error = await refusal(url, { allowPrivate: true });
        expect(error).toBeInstanceOf(RepositoryAddressRefusedError);
        expect((error as RepositoryAddressRefusedError).rule).toBe('loopback');
        expect((error as Error).message).toMatch(
          /resolves to a loopback address, which this infrastructure does not allow \(config\.repositoryNetworks\.allowLoopback\)/,
        );
      }
      expect(target.connections()).toBe(0);
    } finally {
      await target.close();
    }
  });

  it('refuses "this host" (0.0.0.0, ::), which reaches loopback, even where loopback is allowed', async () => {
    const target = await listener();
    try {
      for (const url of [`http://0.0.0.0:${target.port}/`, `git://0:${target.port}/x`, `http://[::]:${target.port}/`]) {
        const error = await refusal(url, ALL_ALLOWED);
        expect((error as RepositoryAddressRefusedError).rule).toBe('unroutable');
        expect((error as Error).message).toMatch(/unspecified, multicast or reserved address, which is never allowed/);
      }
      expect(target.connections()).toBe(0);
    } finally {
      await target.close();
    }
  });

  it('refuses private networks unless the infrastructure allows them, without dialling them', async () => {
    await withStandIns(['git', 'ssh'], async (calls) => {
      const lookup = lookupOf({ 'git.corp.test': ['10.1.2.3'] });
      for (const url of [
        'http://10.0.0.1/org/repo.git',
        'https://192.168.1.10/org/repo.git',
        'git://172.16.0.5/repo',
        'ssh://git@100.64.0.1/repo',
        'http://[fd12::1]/repo',
        'http://[::ffff:10.0.0.1]/repo',
        'https://git.corp.test/org/repo.git',
      ]) {
        const error = await refusal(url, { allowLoopback: true }, lookup);
        expect((error as RepositoryAddressRefusedError).rule).toBe('private');
        expect((error as Error).message).toMatch(
          /resolves to a private address, which this infrastructure does not allow \(config\.repositoryNetworks\.allowPrivate\)/,
        );
      }
      expect(await calls()).toEqual([]);

      // Allowed: the check lets the clone go on (to the stand-in git, which dials nothing).
      const allowed = await refusal('https://git.corp.test/org/repo.git', { allowPrivate: true }, lookup);
      expect(allowed).toBeInstanceOf(CloneFailedError);
      expect(allowed).not.toBeInstanceOf(RepositoryAddressRefusedError);
      expect(await calls()).toHaveLength(1);
    });
  });

  it('refuses URLs git could read otherwise than the check did', async () => {
    for (const url of [
      'file:///etc/passwd',
      'ext::sh -c id',
      'git://-oProxyCommand=id/x',
      'ssh://-oProxyCommand=id@h/x',
    ]) {
      const error = await refusal(url, ALL_ALLOWED);
      expect((error as RepositoryAddressRefusedError).rule).toBe('invalid');
    }
  });

  it('clones from loopback when the infrastructure allows it', async () => {
    const { workspace, home } = fresh();
    const url = git.urlOf('hello').replace('127.0.0.1', 'localhost');
    expect(await cloneRepository({ url }, workspace, options(home, { allowLoopback: true }))).toBe('cloned');
    expect(await readFile(path.join(workspace, 'README.md'), 'utf8')).toBe('# hello\n');
  });

  it('resolves once and connects to the address it checked (git://): a second answer cannot rebind it', async () => {
    const calls: string[] = [];
    let answers = 0;
    // The first answer is checked; any later one would lead to the metadata service.
    const rebinding: HostLookup = async (hostname) => {
      calls.push(hostname);
      answers += 1;
      return [{ address: answers === 1 ? '127.0.0.1' : '169.254.169.254', family: 4 }];
    };
    const { workspace, home } = fresh();
    const url = git.urlOf('hello').replace('127.0.0.1', 'repo.rebind.test');
    await cloneRepository({ url }, workspace, options(home, { allowLoopback: true }, { lookup: rebinding }));
    expect(calls).toEqual(['repo.rebind.test']);
    // The name resolves nowhere else: the clone worked only because git was sent to the checked address.
    expect(await readFile(path.join(workspace, 'README.md'), 'utf8')).toBe('# hello\n');
  });

  it('connects ssh to the checked address and checks the host key under the name', async () => {
    await withStandIns(['ssh'], async (calls) => {
      const lookup = lookupOf({ 'git.example.test': ['203.0.113.7'] });
      const error = await refusal('ssh://git@git.example.test:2222/org/repo.git', {}, lookup);
      expect(error).toBeInstanceOf(CloneFailedError);
      const [call] = await calls();
      expect(call).toContain('-o HostName=203.0.113.7 -o HostKeyAlias=git.example.test');
      expect(call).toContain('-p 2222 git@git.example.test');
    });
  });
});

describe('over http(s): pinned, no redirects, one answer for every failure', () => {
  it('connects to the checked address for a host name that resolves nowhere else (http.curloptResolve)', async () => {
    const { workspace, home } = fresh();
    const url = server.urlOf('hello').replace('127.0.0.1', 'repo.pinned.test');
    const lookup = lookupOf({ 'repo.pinned.test': ['127.0.0.1'] });
    await cloneRepository({ url, token: TOKEN }, workspace, options(home, { allowLoopback: true }, { lookup }));
    expect(await readFile(path.join(workspace, 'README.md'), 'utf8')).toBe('# over http\n');
  });

  it('follows no redirect: a repository that redirects elsewhere is not cloned, the target never dialled', async () => {
    const elsewhere = await listener();
    try {
      server.redirect('moved', `http://127.0.0.1:${elsewhere.port}/hello`);
      const error = await refusal(server.urlOf('moved'), { allowLoopback: true });
      expect(error).toBeInstanceOf(CloneFailedError);
      expect((error as Error).message).toBe(`could not clone the repository: ${CLONE_FAILED_REASON}`);
      expect(elsewhere.connections()).toBe(0);
    } finally {
      await elsewhere.close();
    }
  });

  it('tells a member the same thing whether the host refused, asked for credentials or had no repository', async () => {
    const closed = await listener();
    await closed.close(); // a loopback port nobody listens on: connection refused
    const lines: string[] = [];
    const logger: Logger = createLogger('agent', 'info', (line) => {
      lines.push(line);
      return true;
    });
    const attempts = {
      refused: `http://127.0.0.1:${closed.port}/hello`,
      refusedGit: `git://127.0.0.1:${closed.port}/hello`,
      unauthorized: server.urlOf('hello'), // no token
      wrongToken: server.urlOf('hello'),
      missing: server.urlOf('no-such-repository'),
      missingGit: git.urlOf('no-such-repository'),
      unresolvable: 'https://repo.does-not-resolve.test/org/repo.git',
    };
    const messages: Record<string, string> = {};
    for (const [what, url] of Object.entries(attempts)) {
      const { workspace, home } = fresh();
      const token = what === 'wrongToken' ? 'not-the-token' : what === 'missing' ? TOKEN : undefined;
      const error = await cloneRepository(
        { url, ...(token ? { token } : {}) },
        workspace,
        options(home, { allowLoopback: true }, { logger, lookup: lookupOf({}) }),
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CloneFailedError);
      expect(error).not.toBeInstanceOf(RepositoryAddressRefusedError);
      messages[what] = (error as Error).message.replace(url, '<url>');
    }
    expect(new Set(Object.values(messages))).toEqual(
      new Set([`could not clone the repository: ${CLONE_FAILED_REASON}`]),
    );
    // The operator still learns what happened, from the agent's log.
    const log = lines.join('');
    expect(log).toMatch(/Connection refused|Couldn't connect/i);
    expect(log).toMatch(/Authentication failed|401|could not read Username/i);
    expect(log).toMatch(/not found|does not appear to be a git repository|404/i);
  });
});

describe('git credentials through a credential helper (issue 10, finding 6)', () => {
  /** Every place a process on this machine exposes to others: each readable /proc/<pid>/environ and cmdline. */
  async function processExposures(): Promise<{ pid: string; environ: string; cmdline: string }[]> {
    const out = [];
    for (const pid of (await readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
      const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => '');
      out.push({ pid, environ, cmdline });
    }
    return out;
  }

  it('keeps the token out of every process environment and command line during the clone', async () => {
    // The token as is, and inside base64 after any prefix (`Authorization: Basic` of `<user>:<token>`).
    const forms = [TOKEN, ...[0, 1, 2].map((offset) => base64Inside(TOKEN, offset))];
    const seen: { pid: string; where: string; process: string }[] = [];
    let gitProcesses = 0;
    let scanned = false;
    // The clone's fetch waits here while every process on the machine is looked at.
    server.hold = async (request) => {
      if (scanned || request.method !== 'POST') return;
      scanned = true;
      for (const { pid, environ, cmdline } of await processExposures()) {
        if (/git-remote-https?|\bclone\b/.test(cmdline.replace(/\0/g, ' ')) && cmdline.includes('private')) {
          gitProcesses += 1;
        }
        for (const [where, text] of [
          ['environ', environ],
          ['cmdline', cmdline],
        ] as const) {
          if (forms.some((form) => text.includes(form))) {
            seen.push({ pid, where, process: cmdline.replace(/\0/g, ' ') });
          }
        }
      }
    };
    try {
      const { workspace, home } = fresh();
      await cloneRepository(
        { url: server.urlOf('private'), token: TOKEN },
        workspace,
        options(home, { allowLoopback: true }),
      );
      expect(scanned).toBe(true);
      expect(gitProcesses).toBeGreaterThan(0); // the scan did see the clone running
      expect(seen).toEqual([]);
      expect(await readFile(path.join(workspace, 'README.md'), 'utf8')).toBe('# private\n');
    } finally {
      server.hold = undefined;
    }
  });

  it('leaves a workspace where the owner can fetch and push, with the token only in a 0600 file of their own', async () => {
    const { workspace, home } = fresh();
    await cloneRepository(
      { url: server.urlOf('private'), token: TOKEN },
      workspace,
      options(home, { allowLoopback: true }),
    );

    const credentials = gitCredentialsFile(home, 'gs-test');
    expect((await stat(credentials)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(credentials))).mode & 0o777).toBe(0o700);
    const gitConfig = await readFile(path.join(workspace, '.git', 'config'), 'utf8');
    expect(gitConfig).not.toContain(TOKEN);
    expect(gitConfig).toContain(credentials);

    // The owner's shell: their own HOME, no token anywhere in the environment, no prompt.
    const owner = {
      cwd: workspace,
      env: {
        PATH: process.env.PATH,
        HOME: home,
        GIT_TERMINAL_PROMPT: '0',
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_AUTHOR_NAME: 'owner',
        GIT_AUTHOR_EMAIL: 'owner@example.test',
        GIT_COMMITTER_NAME: 'owner',
        GIT_COMMITTER_EMAIL: 'owner@example.test',
      },
    };
    await run('git', ['fetch', 'origin'], owner);
    await writeFile(path.join(workspace, 'change.txt'), 'from the gitspace\n');
    await run('git', ['add', 'change.txt'], owner);
    await run('git', ['commit', '--quiet', '-m', 'change'], owner);
    await run('git', ['push', '--quiet', 'origin', 'HEAD:main'], owner);

    // The push arrived: another clone has the commit.
    const other = fresh();
    await cloneRepository(
      { url: server.urlOf('private'), token: TOKEN },
      other.workspace,
      options(other.home, { allowLoopback: true }),
    );
    expect(await readFile(path.join(other.workspace, 'change.txt'), 'utf8')).toBe('from the gitspace\n');
  });
});

describe("through the agent's POST /_agent/workspace, as the runner calls it", () => {
  const SECRET = 'agent-secret-for-the-clone-tests';
  let agentUrl: string;
  let home: string;
  let workspace: string;
  let agent: ServedAgent;
  beforeAll(async () => {
    ({ workspace, home } = fresh());
    agent = await serveAgent({
      gitspaceId: 'gs-agent',
      secret: SECRET,
      workspaceDir: workspace,
      homeDir: home,
      ide: 'terminal',
      logger: silentLogger,
      ideHost: { shell: '/bin/sh', env: { PATH: '/usr/bin:/bin' } },
    });
    agentUrl = agent.url;
  });
  afterAll(() => agent.close());

  const prepare = async (body: unknown) => {
    const response = await fetch(`${agentUrl}/_agent/workspace`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as any };
  };

  it('refuses the metadata service whatever the infrastructure allows, and loopback when it says nothing', async () => {
    await withStandIns(['git'], async (calls) => {
      const metadata = await prepare({
        repository: { url: 'http://169.254.169.254/latest/meta-data/' },
        repositoryNetworks: { allowLoopback: true, allowPrivate: true },
      });
      expect(metadata.status).toBe(422);
      expect(metadata.body.error).toEqual({
        code: 'RepositoryAddressRefusedError',
        message:
          'could not clone the repository: the repository host resolves to a ' +
          'link-local or metadata address, which is never allowed',
      });
      const loopback = await prepare({ repository: { url: server.urlOf('app'), token: TOKEN } });
      expect(loopback.status).toBe(422);
      expect(loopback.body.error.message).toMatch(/loopback address, which this infrastructure does not allow/);
      expect(await calls()).toEqual([]);
    });
  });

  it('answers 400 to a networks rule it does not know', async () => {
    const response = await prepare({
      repository: { url: server.urlOf('app') },
      repositoryNetworks: { allowAll: true },
    });
    expect(response.status).toBe(400);
  });

  it('clones with the token where the infrastructure allows loopback; fetch works afterwards', async () => {
    const response = await prepare({
      repository: { url: server.urlOf('app'), token: TOKEN },
      repositoryNetworks: { allowLoopback: true },
    });
    expect(response).toEqual({ status: 200, body: { clone: 'cloned', ranCommands: [] } });
    expect(await readFile(gitCredentialsFile(home, 'gs-agent'), 'utf8')).toContain(TOKEN);
    await run('git', ['fetch', 'origin'], {
      cwd: workspace,
      env: { PATH: process.env.PATH, HOME: home, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1' },
    });
  });
});
