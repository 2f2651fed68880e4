import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The checkout's (or the installed package's) root: the folder above common/, in the sources or in dist/. */
const CODE_ROOT = path.resolve(__dirname, '..');

/** The node_modules this code's packages are found in: the nearest one above the code. */
export function nodeModulesDir(): string | undefined {
  for (let dir = CODE_ROOT; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'node_modules'))) return path.join(dir, 'node_modules');
    if (path.dirname(dir) === dir) return undefined;
  }
}

/**
 * Where what is built from this code at run time is kept (the agent program, the workflow bundle), by the convention
 * of babel's and eslint's caches: node_modules/.cache/<name>. It goes with the installed code, never with the data.
 */
export function codeCacheDir(): string {
  const nodeModules = nodeModulesDir();
  if (!nodeModules) throw new Error(`no node_modules above ${CODE_ROOT}: this code's packages cannot be found`);
  return path.join(nodeModules, '.cache', 'gitspaces');
}

/**
 * Makes a directory of the code cache, readable and searchable by every user whatever the umask (npm start runs with
 * 077): sandboxed agents run as users of their own and read their program from here.
 */
export function ensureCacheDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const cacheRoot = path.dirname(codeCacheDir());
  for (let at = dir; at === cacheRoot || at.startsWith(`${cacheRoot}${path.sep}`); at = path.dirname(at)) {
    try {
      chmodSync(at, 0o755);
    } catch (error) {
      // Another user's folder (a shared node_modules/.cache) is theirs to keep readable.
      if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error;
    }
    if (at === cacheRoot) break;
  }
}

/** Writes a cache file whole, by rename: a process starting beside this one sees the old file or the new, never a part. */
export function replaceCacheFile(file: string, content: string | Uint8Array): void {
  ensureCacheDir(path.dirname(file));
  const partial = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(partial, content, { flag: 'wx' });
    chmodSync(partial, 0o644);
    renameSync(partial, file);
  } finally {
    rmSync(partial, { force: true });
  }
}
