import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freeLoopbackPort } from '../../common/net';

export interface GitServer {
  /** `git://127.0.0.1:PORT/<name>`: where a repository of that name is (or will be) served. */
  urlOf(name: string): string;
  /** Creates a bare repository with one commit holding `files`. */
  createRepository(name: string, files: Record<string, string>): Promise<string>;
  stop(): Promise<void>;
}

/** A real git server (`git daemon`) on loopback, serving bare repositories from a temporary directory. */
export async function startGitServer(): Promise<GitServer> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-git-'));
  const port = await freeLoopbackPort();
  const daemon: ChildProcess = spawn(
    'git',
    ['daemon', '--reuseaddr', '--export-all', `--base-path=${base}`, '--listen=127.0.0.1', `--port=${port}`, base],
    { stdio: 'ignore', detached: true },
  );
  await waitForPort(port);
  return {
    urlOf: (name) => `git://127.0.0.1:${port}/${name}`,
    createRepository: (name, files) => createBareRepository(base, name, files),
    async stop() {
      if (daemon.pid) {
        try {
          process.kill(-daemon.pid, 'SIGTERM');
        } catch {
          // Already gone.
        }
      }
      await rm(base, { recursive: true, force: true });
    },
  };
}

/** Creates `<base>/<name>`, a bare repository whose branch `main` has one commit holding `files`. */
export async function createBareRepository(base: string, name: string, files: Record<string, string>): Promise<string> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-work-'));
  for (const [file, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(work, file)), { recursive: true });
    await writeFile(path.join(work, file), content);
  }
  const git = (...args: string[]) =>
    execFileSync('git', args, {
      cwd: work,
      stdio: 'pipe',
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: 't',
        GIT_AUTHOR_EMAIL: 't@example.test',
        GIT_COMMITTER_NAME: 't',
        GIT_COMMITTER_EMAIL: 't@example.test',
      },
    });
  git('init', '--quiet', '--initial-branch=main');
  git('add', '-A');
  git('commit', '--quiet', '-m', 'initial');
  const bare = path.join(base, name);
  execFileSync('git', ['clone', '--quiet', '--bare', work, bare], { stdio: 'pipe' });
  await rm(work, { recursive: true, force: true });
  return bare;
}

async function waitForPort(port: number): Promise<void> {
  const net = await import('node:net');
  for (let i = 0; i < 100; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`git daemon did not listen on ${port}`);
}
