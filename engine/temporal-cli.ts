import { spawn } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../common/logger';

/** The pinned Temporal CLI (DESIGN.md §7): the newest tag `go install` accepts. */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

/** The repository root; the tools folder lives under it unless configured otherwise. */
export const PROJECT_ROOT = path.resolve(__dirname, '..');
export const DEFAULT_TOOLS_DIR = path.join(PROJECT_ROOT, '.tools');

/** Thrown when no Temporal CLI can be found and building it failed; carries go's own output. */
export class TemporalCliBuildError extends Error {
  constructor(readonly output: string) {
    super(`could not build the Temporal CLI (${TEMPORAL_CLI_MODULE}) with 'go install':\n${output.trim()}`);
    this.name = 'TemporalCliBuildError';
  }
}

export interface FindTemporalCliOptions {
  /** An explicit path (TEMPORAL_CLI_PATH); used first when set. */
  explicitPath?: string;
  /** The PATH to search for an installed `temporal`. */
  searchPath?: string;
  toolsDir?: string;
  logger: Logger;
}

/**
 * Returns a usable `temporal` executable: the configured one, one on PATH, or the cached build in the tools folder,
 * building it with `go install` (once; later runs reuse it) when none exists.
 */
export async function findOrBuildTemporalCli(options: FindTemporalCliOptions): Promise<string> {
  if (options.explicitPath) {
    if (!(await isExecutable(options.explicitPath))) {
      throw new Error(`TEMPORAL_CLI_PATH '${options.explicitPath}' is not an executable file`);
    }
    return options.explicitPath;
  }
  for (const dir of (options.searchPath ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'temporal');
    if (await isExecutable(candidate)) return candidate;
  }
  const binDir = path.join(options.toolsDir ?? DEFAULT_TOOLS_DIR, 'bin');
  const cached = path.join(binDir, 'temporal');
  if (await isExecutable(cached)) return cached;
  await buildTemporalCli(binDir, options.logger);
  return cached;
}

async function buildTemporalCli(binDir: string, logger: Logger): Promise<void> {
  await mkdir(binDir, { recursive: true });
  logger.info(`building the Temporal CLI from ${TEMPORAL_CLI_MODULE} (first run only, takes a few minutes)`);
  const output = await new Promise<string>((resolve, reject) => {
    // -x prints each build step, so the user sees progress instead of a silent wait.
    const child = spawn('go', ['install', '-x', TEMPORAL_CLI_MODULE], {
      env: { ...process.env, GOBIN: binDir, GOFLAGS: '-buildvcs=false' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tail = '';
    let packages = 0;
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      tail = (tail + text).slice(-8000);
      for (const line of text.split('\n')) {
        if (line.startsWith('go: downloading ')) logger.info(`  ${line}`);
        else if (/^WORK=|^mkdir -p \$WORK\/b\d+\/$/.test(line) && ++packages % 50 === 0) {
          logger.info(`  compiled ${packages} packages…`);
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (error) => reject(new TemporalCliBuildError(`could not run 'go': ${error.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(tail) : reject(new TemporalCliBuildError(tail))));
  });
  logger.info('Temporal CLI built', { path: path.join(binDir, 'temporal'), outputBytes: output.length });
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
