/**
 * `gitspaces ssh`: OpenSSH to a gitspace through the gateway. With --stdio it is the ProxyCommand end (one SSH
 * connection on stdin and stdout); without, it runs the system `ssh` with itself as the ProxyCommand and the gitspace's
 * host key as the only one it trusts.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { gitspacePath, type ApiClient } from '../api-client';
import type { CliContext } from '../context';
import { ChildExit, UsageError } from '../errors';
import { resolveGitspace } from '../resolve';
import { openSshTunnel, requestSshAccess, SshError } from '../ssh-tunnel';
import type { Gitspace, Operation } from '../types';
import { lastEventSeq, waitForOperation } from '../wait';

export interface SshOptions {
  /** Be the ProxyCommand: carry one SSH connection on stdin and stdout. */
  stdio?: boolean;
  /** Start the gitspace first when it is stopped. */
  start?: boolean;
}

export async function sshCommand(
  context: CliContext,
  nameOrId: string,
  command: readonly string[],
  options: SshOptions,
): Promise<void> {
  if (options.stdio && command.length) {
    throw new UsageError('--stdio carries one SSH connection for ssh (its ProxyCommand); it runs no command');
  }
  const client = await context.connect();
  const gitspace = await runningGitspace(context, client, await resolveGitspace(client, nameOrId), options.start);
  if (options.stdio) {
    return openSshTunnel(client, gitspace, {
      stdin: context.io.stdin,
      stdout: context.io.stdout as Writable,
      note: (line) => context.note(line),
    });
  }
  // Asked here too, not only by the ProxyCommand, for the host key, and so that a refusal (no registered key) is said
  // plainly rather than under ssh's "Connection closed by remote host".
  const grant = await requestSshAccess(client, gitspace.id);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-ssh-'));
  try {
    const knownHosts = path.join(dir, 'known_hosts');
    await writeFile(knownHosts, knownHostsLine(gitspace.id, grant.hostKey), { mode: 0o600 });
    const code = await runSsh(
      context,
      sshArguments({ self: selfCommand(), gitspaceId: gitspace.id, knownHosts, command }),
    );
    if (code !== 0) throw new ChildExit(code);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The gitspace, running. A stopped one is started (and waited for) only when asked with --start, as starting a
 * machine costs money and time the user should choose; any other state is left to the API's answer.
 */
async function runningGitspace(
  context: CliContext,
  client: ApiClient,
  gitspace: Gitspace,
  start: boolean | undefined,
): Promise<Gitspace> {
  if (gitspace.state !== 'stopped') return gitspace;
  if (!start) {
    throw new SshError(
      'not_running',
      `gitspace '${gitspace.name}' is stopped: start it with \`gitspaces start ${gitspace.id}\`, or add --start`,
    );
  }
  context.note(`gitspace '${gitspace.name}' is stopped; starting it`);
  const after = await lastEventSeq(client, gitspace.id);
  await client.post<{ operation: Operation }>(gitspacePath(gitspace.id, '/actions'), { action: 'start' });
  return waitForOperation(context, client, { gitspace, action: 'start', after });
}

/**
 * The name OpenSSH knows a gitspace's host key by (HostKeyAlias), whatever Host the user typed. The id comes from the
 * API and goes into ssh's config as a word: anything but letters, digits, `-` and `_` (a line break adding a
 * ProxyCommand of its own) is refused.
 */
export function hostKeyAlias(gitspaceId: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(gitspaceId)) throw unsafeAnswer('gitspace id', gitspaceId);
  return `gitspace-${gitspaceId}`;
}

/** A known_hosts line trusting `hostKey` for the gitspace: one line, as a line break would trust more than it. */
export function knownHostsLine(gitspaceId: string, hostKey: string): string {
  if (/[\r\n]/.test(hostKey.trim())) throw unsafeAnswer('host key', hostKey);
  return `${hostKeyAlias(gitspaceId)} ${hostKey.trim()}\n`;
}

const unsafeAnswer = (what: string, value: string) =>
  new SshError('unsafe_answer', `the API gave a ${what} that cannot go into an SSH config: ${JSON.stringify(value)}`);

/**
 * This very program as a command line: node, its options (tsx's loader when run from source) and the script, so the
 * ProxyCommand runs the same `gitspaces` under tsx, npx or an installed package.
 */
export function selfCommand(): string[] {
  return [process.execPath, ...process.execArgv, ...(process.argv[1] ? [process.argv[1]] : [])];
}

/** Words as one POSIX shell command line: each quoted unless it is plainly safe. */
export function shellQuote(words: readonly string[]): string {
  return words.map((word) => (/^[\w./:=@+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** The ProxyCommand for a gitspace; `%` doubled, as OpenSSH expands `%h`-style tokens in it. */
export function proxyCommand(self: readonly string[], gitspaceId: string): string {
  return shellQuote([...self, 'ssh', '--stdio', gitspaceId]).replace(/%/g, '%%');
}

/** ssh's command line for one gitspace: through the gateway, trusting only the host key in `knownHosts`. */
export function sshArguments(options: {
  self: readonly string[];
  gitspaceId: string;
  knownHosts: string;
  command: readonly string[];
}): string[] {
  const { gitspaceId } = options;
  return [
    '-o',
    `ProxyCommand=${proxyCommand(options.self, gitspaceId)}`,
    '-o',
    `HostKeyAlias=${hostKeyAlias(gitspaceId)}`,
    '-o',
    `UserKnownHostsFile=${options.knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    `gitspace@${hostKeyAlias(gitspaceId)}`,
    ...(options.command.length ? ['--', ...options.command] : []),
  ];
}

/** Runs ssh on this terminal; its exit code. Ctrl-C is ssh's to handle while it runs. */
function runSsh(context: CliContext, args: string[]): Promise<number> {
  const ignoreInterrupt = context.io.onInterrupt(() => undefined);
  return new Promise<number>((resolve, reject) => {
    const child = spawn('ssh', args, { stdio: 'inherit' });
    child.once('error', (error) =>
      reject(new UsageError(`cannot run ssh (${error.message}): install the OpenSSH client`)),
    );
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 255)));
  }).finally(ignoreInterrupt);
}
