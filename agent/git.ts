import { spawn } from 'node:child_process';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';

/** Repository URL schemes a gitspace may clone from; anything else could read the machine's own disk. */
export const ALLOWED_REPOSITORY_SCHEMES = ['https:', 'http:', 'ssh:', 'git:'] as const;

export interface RepositorySource {
  url: string;
  branch?: string;
  token?: string;
}

/** Thrown when git could not clone the repository; the message names the repository and git's own words. */
export class CloneFailedError extends Error {
  constructor(
    readonly repositoryUrl: string,
    readonly gitMessage: string,
  ) {
    super(`could not clone repository ${repositoryUrl}: ${gitMessage}`);
    this.name = 'CloneFailedError';
  }
}

/**
 * Clones into `workspaceDir` unless it already holds a checkout. The clone goes to a sibling directory first and is
 * renamed into place, so a clone interrupted half way is never mistaken for a finished one.
 */
export async function cloneRepository(source: RepositorySource, workspaceDir: string): Promise<'cloned' | 'present'> {
  if (await exists(path.join(workspaceDir, '.git'))) return 'present';
  const partial = `${workspaceDir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(path.dirname(workspaceDir), { recursive: true });
  const args = ['clone', '--quiet'];
  if (source.branch) args.push('--branch', source.branch);
  // `--` ends option parsing: a URL can never be read as an option such as --upload-pack.
  args.push('--', source.url, partial);
  const result = await runGit(args, path.dirname(workspaceDir), source.token);
  if (result.code !== 0) {
    await rm(partial, { recursive: true, force: true });
    throw new CloneFailedError(source.url, summarizeGitError(result.stderr));
  }
  await rm(workspaceDir, { recursive: true, force: true });
  await rename(partial, workspaceDir);
  return 'cloned';
}

function runGit(args: string[], cwd: string, token?: string): Promise<{ code: number; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GIT_TERMINAL_PROMPT: '0',
    // Protocols git itself may use, including for submodules and redirects: never file or ext.
    GIT_ALLOW_PROTOCOL: 'https:http:ssh:git',
    GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new',
  };
  if (token) {
    // The token travels as an HTTP header through the environment: never on the command line or in .git/config.
    const basic = Buffer.from(`x-access-token:${token}`).toString('base64');
    Object.assign(env, {
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.extraHeader',
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
    });
  }
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

function summarizeGitError(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('Cloning into'));
  return lines.slice(-3).join(' ') || 'git exited with an error';
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
