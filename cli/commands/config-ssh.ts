/**
 * `gitspaces config-ssh`: one `Host gitspace-<name>` per gitspace in the user's OpenSSH config, so plain `ssh`, `scp`
 * and editors' remote SSH reach gitspaces through `gitspaces ssh --stdio`. Only its own marked block is rewritten;
 * the host keys it trusts go to a known_hosts file of its own.
 */
import { chmod, mkdir, readFile, readlink, realpath, rename, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GITSPACE_STATES } from '../../contracts/lifecycle';
import { confirm } from '../confirm';
import type { CliContext } from '../context';
import { UsageError } from '../errors';
import type { Gitspace } from '../types';
import { knownHostsLine, proxyCommand, selfCommand, hostKeyAlias } from './ssh';

export const BLOCK_START = '# --- gitspaces config-ssh: start ---';
export const BLOCK_END = '# --- gitspaces config-ssh: end ---';

export interface ConfigSshOptions {
  /** The OpenSSH config to write (default: .ssh/config in the passwd entry's home, where OpenSSH reads it). */
  sshConfig?: string;
  yes?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

export async function configSshCommand(context: CliContext, options: ConfigSshOptions): Promise<void> {
  const client = await context.connect();
  const gitspaces = await client.listGitspaces(GITSPACE_STATES.filter((s) => s !== 'deleted'));
  const configFile = await followLink(options.sshConfig ?? path.join(os.userInfo().homedir, '.ssh', 'config'));
  const knownHostsFile = path.join(context.settings.configDir, 'known_hosts');
  const hosts = sshHosts(gitspaces);
  const block = sshConfigBlock({ hosts, self: selfCommand(), knownHostsFile, apiUrl: client.url });
  const before = await readOrEmpty(configFile);
  const after = replaceBlock(before, block, configFile);
  const knownHosts = gitspaces
    .filter((g) => g.sshHostKey)
    .map((g) => knownHostsLine(g.id, g.sshHostKey!))
    .sort()
    .join('');
  const knownHostsChange = knownHosts !== (await readOrEmpty(knownHostsFile));
  const changed = after !== before || knownHostsChange;
  const written = changed && !options.dryRun;
  if (!options.json) {
    if (after !== before) context.print(lineDiff(blockOf(before, configFile), block, configFile));
    else context.print(`${configFile} is up to date (${hosts.length} gitspace${hosts.length === 1 ? '' : 's'})`);
    if (knownHostsChange) context.print(`host keys change in ${knownHostsFile}`);
  }
  if (written && !options.yes) {
    if (
      !(await confirm(
        context,
        `Write ${configFile} and ${knownHostsFile}?`,
        `not writing ${configFile} without confirmation: add --yes`,
      ))
    ) {
      throw new UsageError(`${configFile} was not changed`);
    }
  }
  if (written) {
    if (knownHostsChange) await writePrivately(knownHostsFile, knownHosts, 0o600);
    if (after !== before) await writePrivately(configFile, after, await modeOf(configFile));
  }
  if (options.json) {
    return context.printJson({
      sshConfig: configFile,
      knownHosts: knownHostsFile,
      hosts: hosts.map(({ host, gitspace }) => ({ host, gitspaceId: gitspace.id, name: gitspace.name })),
      changed,
      written,
    });
  }
  for (const g of gitspaces.filter((g) => !g.sshHostKey)) {
    context.note(
      `gitspace '${g.name}' has no SSH host key yet (it has not run with SSH): run config-ssh again after it starts`,
    );
  }
  if (options.dryRun) context.note('dry run: nothing written');
  else if (written) context.note(`wrote ${configFile}; connect with \`ssh ${hosts[0]?.host ?? 'gitspace-<name>'}\``);
}

/**
 * `gitspace-<slug>` for each gitspace, sorted: the slug is its name in lowercase with anything else than letters,
 * digits and `-` turned into `-`. Names that give the same slug (`API` and `api` of two owners) each get their id's
 * first characters added; any clash left gets the whole id.
 */
export function sshHosts(gitspaces: readonly Gitspace[]): { host: string; gitspace: Gitspace }[] {
  const slugOf = (g: Gitspace) => g.name.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
  const count = (hosts: string[]) => hosts.reduce((n, h) => n.set(h, (n.get(h) ?? 0) + 1), new Map<string, number>());
  const slugs = gitspaces.map(slugOf);
  const slugCount = count(slugs);
  const hosts = gitspaces.map((g, i) => {
    const slug = slugs[i]!;
    return `gitspace-${slugCount.get(slug)! > 1 ? `${slug}-${g.id.replace(/^gs-/, '').slice(0, 6)}` : slug}`;
  });
  const hostCount = count(hosts);
  return gitspaces
    .map((gitspace, i) => ({
      host: hostCount.get(hosts[i]!)! > 1 ? hostKeyAlias(gitspace.id) : hosts[i]!,
      gitspace,
    }))
    .sort((a, b) => a.host.localeCompare(b.host));
}

/** The marked block: one Host per gitspace, through `gitspaces ssh --stdio`, trusting only its host key. */
export function sshConfigBlock(options: {
  hosts: readonly { host: string; gitspace: Gitspace }[];
  self: readonly string[];
  knownHostsFile: string;
  apiUrl: string;
}): string[] {
  return [
    BLOCK_START,
    `# Written by \`gitspaces config-ssh\` for ${options.apiUrl}; run it again after creating or renaming a gitspace.`,
    '# Changes made inside this block are lost then.',
    ...options.hosts.flatMap(({ host, gitspace }) => [
      `Host ${host}`,
      '  User gitspace',
      `  ProxyCommand ${proxyCommand(options.self, gitspace.id)}`,
      `  HostKeyAlias ${hostKeyAlias(gitspace.id)}`,
      `  UserKnownHostsFile ${configWord(options.knownHostsFile)}`,
      '  StrictHostKeyChecking yes',
      '  ServerAliveInterval 30',
    ]),
    BLOCK_END,
  ];
}

/** A path as one ssh_config word: `%` doubled (a token there), quoted when it holds blanks. */
function configWord(value: string): string {
  const escaped = value.replace(/%/g, '%%');
  return /\s/.test(escaped) ? `"${escaped}"` : escaped;
}

/** The config with its marked block replaced by `block` (appended when there is none); everything else as it was. */
export function replaceBlock(config: string, block: readonly string[], file: string): string {
  const lines = config.split('\n');
  const found = findBlock(lines, file);
  if (found) return [...lines.slice(0, found.start), ...block, ...lines.slice(found.end + 1)].join('\n');
  const kept = config === '' || config.endsWith('\n') ? config : `${config}\n`;
  return `${kept}${kept === '' ? '' : '\n'}${block.join('\n')}\n`;
}

/** The marked block's lines in a config (none when it has none). */
function blockOf(config: string, file: string): string[] {
  const lines = config.split('\n');
  const found = findBlock(lines, file);
  return found ? lines.slice(found.start, found.end + 1) : [];
}

/** Where the marked block is (its start and end lines); half a block is refused rather than guessed at. */
function findBlock(lines: readonly string[], file: string): { start: number; end: number } | undefined {
  const start = lines.findIndex((line) => line.trim() === BLOCK_START);
  const end = lines.findIndex((line, i) => i > start && line.trim() === BLOCK_END);
  if (start < 0 && end < 0) return undefined;
  if (start < 0 || end < 0) {
    const [has, lacks] = start < 0 ? ['end', 'start'] : ['start', 'end'];
    throw new UsageError(`${file} has the gitspaces block's ${has} line but not its ${lacks} line; mend it by hand`);
  }
  return { start, end };
}

/** A unified-style diff of two line lists (`-` removed, `+` added, two-space kept), by longest common subsequence. */
export function lineDiff(before: readonly string[], after: readonly string[], file: string): string[] {
  // common[i][j]: the length of the longest common subsequence of before[i..] and after[j..].
  const common = Array.from({ length: before.length + 1 }, () => new Array<number>(after.length + 1).fill(0));
  for (let i = before.length - 1; i >= 0; i--) {
    for (let j = after.length - 1; j >= 0; j--) {
      common[i]![j] =
        before[i] === after[j] ? common[i + 1]![j + 1]! + 1 : Math.max(common[i + 1]![j]!, common[i]![j + 1]!);
    }
  }
  const out = [`--- ${file}`, `+++ ${file}`];
  let i = 0;
  let j = 0;
  while (i < before.length || j < after.length) {
    if (i < before.length && j < after.length && before[i] === after[j]) {
      out.push(`  ${before[i++]}`);
      j++;
    } else if (i < before.length && (j === after.length || common[i + 1]![j]! >= common[i]![j + 1]!)) {
      out.push(`- ${before[i++]}`);
    } else {
      out.push(`+ ${after[j++]}`);
    }
  }
  return out;
}

/** The file the path names, through a symbolic link (a dotfiles repository's), so the link itself is kept. */
async function followLink(file: string): Promise<string> {
  const absolute = path.resolve(file);
  const real = await realpath(absolute).catch(() => undefined);
  if (real) return real;
  // A link to a file not made yet: that file is the one to write.
  const target = await readlink(absolute).catch(() => undefined);
  return target === undefined ? absolute : path.resolve(path.dirname(absolute), target);
}

async function readOrEmpty(file: string): Promise<string> {
  return readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw new UsageError(`cannot read ${file}: ${error.message}`);
  });
}

/** The existing file's permission bits, kept on rewrite; 0600 for a new one. */
async function modeOf(file: string): Promise<number> {
  return (await stat(file).catch(() => undefined))?.mode ?? 0o600;
}

/** Written whole (a temporary file renamed over it), its directory made 0700 when missing. */
async function writePrivately(file: string, text: string, mode: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: mode & 0o777 });
  await chmod(temporary, mode & 0o777);
  await rename(temporary, file);
}
