import { chmod, copyFile, writeFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import path from 'node:path';

const FAKE_SERVER = path.join(__dirname, 'fake-vscode-server.js');

/**
 * Puts an executable `code-server` into `dir` that runs the fake server (./fake-vscode-server.js, copied beside it,
 * so a sandbox that can read `dir` can run it) with code-server's own arguments. `healthz` makes its health route say
 * that status instead of code-server's. Returns the executable's path.
 */
export async function installFakeCodeServer(dir: string, options: { healthz?: string } = {}): Promise<string> {
  const script = path.join(dir, 'fake-vscode-server.js');
  await copyFile(FAKE_SERVER, script);
  const extra = options.healthz ? ` '--fake-healthz=${options.healthz}'` : '';
  const file = path.join(dir, 'code-server');
  await writeFile(file, `#!/bin/sh\nexec '${realpathSync(process.execPath)}' '${script}'${extra} "$@"\n`);
  await chmod(file, 0o755);
  await chmod(script, 0o644);
  return file;
}

/** Puts an executable `code-server` into `dir` that prints `output` to stderr and exits with `code`, as a broken install. */
export async function installBrokenCodeServer(dir: string, output: string, code: number): Promise<string> {
  const file = path.join(dir, 'code-server');
  await writeFile(file, `#!/bin/sh\necho '${output.replace(/'/g, `'\\''`)}' >&2\nexit ${code}\n`);
  await chmod(file, 0o755);
  return file;
}
