import { spawn } from 'node:child_process';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../common/logger';
import {
  checkRepositoryEndpoint,
  type AddressRule,
  type HostLookup,
  type RepositoryEndpoint,
  type RepositoryNetworks,
} from './repository-address';

export { ALLOWED_REPOSITORY_SCHEMES } from './repository-address';

export interface RepositorySource {
  url: string;
  branch?: string;
  token?: string;
}

/**
 * What a member reads for every clone that failed after its address was allowed: whether the host refused the
 * connection, asked for credentials, had no such repository or never answered is told only to the agent's log, so
 * the message cannot be used to map what answers where.
 */
export const CLONE_FAILED_REASON =
  'the repository could not be reached or cloned; check its URL, its branch and the token (if it needs one)';

/**
 * Thrown when the repository could not be cloned; the message says why in general terms, never what answered, and
 * does not name the repository: it becomes a Temporal failure message, which the payload codec does not encrypt.
 */
export class CloneFailedError extends Error {
  constructor(
    readonly repositoryUrl: string,
    readonly reason: string = CLONE_FAILED_REASON,
  ) {
    super(`could not clone the repository: ${reason}`);
    this.name = 'CloneFailedError';
  }
}

/** Thrown when the repository URL, or an address its host resolves to, is one the agent never clones from. */
export class RepositoryAddressRefusedError extends CloneFailedError {
  constructor(
    repositoryUrl: string,
    readonly rule: Exclude<AddressRule, 'unreachable'>,
    reason: string,
  ) {
    super(repositoryUrl, reason);
    this.name = 'RepositoryAddressRefusedError';
  }
}

export interface CloneOptions {
  /** Which internal networks the infrastructure lets repositories live on (link-local and metadata: never). */
  networks: RepositoryNetworks;
  /**
   * Where the repository token is kept for git's `store` credential helper (the gitspace's own home, see
   * gitCredentialsFile); the clone's `.git/config` names this file, so fetch and push keep working.
   */
  credentialsFile: string;
  /** Gets git's own words about a failed clone, which the member is not shown. */
  logger: Logger;
  /** How host names are resolved (dns.lookup unless a test says otherwise). */
  lookup?: HostLookup;
}

/** The credentials file of a gitspace, in its home: one per gitspace, since several may share a home. */
export function gitCredentialsFile(homeDir: string, gitspaceId: string): string {
  return path.join(homeDir, '.config', 'gitspaces', `git-credentials-${gitspaceId.replace(/[^A-Za-z0-9._-]/g, '_')}`);
}

/**
 * Clones into `workspaceDir` unless it already holds a checkout. The repository's host is resolved once and checked
 * (agent/repository-address.ts), and git connects only to the addresses checked. The clone goes to a sibling
 * directory first and is renamed into place, so a clone interrupted half way is never mistaken for a finished one.
 */
export async function cloneRepository(
  source: RepositorySource,
  workspaceDir: string,
  options: CloneOptions,
): Promise<'cloned' | 'present'> {
  if (await exists(path.join(workspaceDir, '.git'))) return 'present';
  const check = await checkRepositoryEndpoint(source.url, options.networks, options.lookup);
  if (!check.ok) {
    if (check.rule === 'unreachable') {
      options.logger.warn('repository host does not resolve', {
        repository: repositoryOrigin(source.url),
        detail: withoutRepositoryPath(check.detail, source.url),
      });
      throw new CloneFailedError(source.url);
    }
    throw new RepositoryAddressRefusedError(source.url, check.rule, check.reason);
  }
  const endpoint = check.endpoint;
  const connection = pinnedConnection(endpoint);
  const partial = `${workspaceDir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(path.dirname(workspaceDir), { recursive: true });

  const config = [...connection.config];
  // The token reaches git only through its credential helper, from a file of the gitspace's own (never through an
  // environment variable or an argument, which other processes on the machine can read in /proc).
  const token = isHttp(endpoint) ? source.token : undefined;
  const helper = token ? credentialHelper(options.credentialsFile) : undefined;
  if (token && helper) {
    await writeCredentials(options.credentialsFile, endpoint, token);
    // An empty value first: no helper configured elsewhere on the machine answers for this clone.
    config.push('credential.helper=', `credential.helper=${helper}`);
  }
  const args = [...config.flatMap((c) => ['-c', c]), 'clone', '--quiet'];
  if (source.branch) args.push('--branch', source.branch);
  // `--` ends option parsing: a URL can never be read as an option such as --upload-pack.
  args.push('--', connection.url, partial);
  const result = await runGit(args, path.dirname(workspaceDir), connection.sshCommand);
  if (result.code !== 0) {
    await rm(partial, { recursive: true, force: true });
    options.logger.warn('git clone failed', {
      repository: repositoryOrigin(source.url),
      git: withoutRepositoryPath(result.stderr.trim(), source.url),
    });
    throw new CloneFailedError(source.url);
  }
  if (helper) {
    // For the owner's own fetch and push: the helper names the file, the token stays in it.
    const configured = await runGit(['config', '--local', 'credential.helper', helper], partial);
    if (configured.code !== 0) {
      await rm(partial, { recursive: true, force: true });
      options.logger.warn('git config failed after the clone', {
        git: withoutRepositoryPath(configured.stderr.trim(), source.url),
      });
      throw new CloneFailedError(source.url);
    }
  }
  await rm(workspaceDir, { recursive: true, force: true });
  await rename(partial, workspaceDir);
  return 'cloned';
}

const BASE_SSH_COMMAND = 'ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new';

/**
 * How git connects to exactly the addresses that were checked, so a second resolution (DNS rebinding) or a redirect
 * cannot lead elsewhere: curl gets the addresses for the host name and follows no redirect (http, https); the git
 * protocol is given the address itself; ssh connects to the address and checks the host key under the name.
 */
function pinnedConnection(endpoint: RepositoryEndpoint): { url: string; config: string[]; sshCommand: string } {
  const bracket = (address: string) => (address.includes(':') ? `[${address}]` : address);
  const [first] = endpoint.addresses as [string, ...string[]];
  switch (endpoint.scheme) {
    case 'http':
    case 'https': {
      const config = ['http.followRedirects=false'];
      if (!endpoint.hostIsAddress) {
        const resolve = `${endpoint.host}:${endpoint.port}:${endpoint.addresses.map(bracket).join(',')}`;
        config.push(`http.curloptResolve=${resolve}`);
      }
      return { url: endpoint.url.href, config, sshCommand: BASE_SSH_COMMAND };
    }
    case 'git': {
      const url = new URL(endpoint.url.href);
      url.hostname = bracket(first);
      return { url: url.href, config: [], sshCommand: BASE_SSH_COMMAND };
    }
    case 'ssh': {
      // The host name keeps naming the host key in known_hosts; the connection goes to the checked address.
      const sshCommand = `${BASE_SSH_COMMAND} -o HostName=${first} -o HostKeyAlias=${endpoint.host}`;
      return { url: endpoint.url.href, config: [], sshCommand };
    }
  }
}

const isHttp = (endpoint: RepositoryEndpoint) => endpoint.scheme === 'http' || endpoint.scheme === 'https';

/** git's own `store` helper, reading the given file; git runs a helper through the shell, hence the quoting. */
function credentialHelper(file: string): string {
  return `store --file='${file.replace(/'/g, `'\\''`)}'`;
}

/** Writes the one credential of this repository's host, readable by the gitspace's user only. */
async function writeCredentials(file: string, endpoint: RepositoryEndpoint, token: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  // The user the URL names, if any: git asks the helper for that user's password.
  const user = endpoint.url.username || 'x-access-token';
  const line = `${endpoint.scheme}://${encodeURIComponent(user)}:${encodeURIComponent(token)}@${endpoint.url.host}\n`;
  // Made anew each time, so the mode is 0600 whatever an earlier file had.
  await rm(file, { force: true });
  await writeFile(file, line, { mode: 0o600, flag: 'wx' });
}

function runGit(args: string[], cwd: string, sshCommand = BASE_SSH_COMMAND): Promise<{ code: number; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GIT_TERMINAL_PROMPT: '0',
    // Protocols git itself may use, including for submodules and redirects: never file or ext.
    GIT_ALLOW_PROTOCOL: 'https:http:ssh:git',
    GIT_SSH_COMMAND: sshCommand,
  };
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 8192) stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * The agent's log names the repository's scheme and host, never its path (test/planted-secrets.test.ts: the path is
 * kept by the control plane's database and the machine's own clone only).
 */
function repositoryOrigin(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return '(not a URL)';
  }
}

/** Git's own words with the repository's path (as given, with or without `.git`) replaced. */
function withoutRepositoryPath(text: string | undefined, url: string): string | undefined {
  if (text === undefined) return undefined;
  let repositoryPath: string;
  try {
    repositoryPath = new URL(url).pathname.replace(/\/+$/, '').replace(/\.git$/, '');
  } catch {
    return text;
  }
  if (repositoryPath.length <= 1) return text;
  const decoded = safeDecode(repositoryPath);
  let result = text.split(repositoryPath).join('/<repository path>');
  if (decoded !== repositoryPath) result = result.split(decoded).join('/<repository path>');
  return result;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
