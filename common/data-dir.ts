import { chmod, lstat, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';

/** Mode of the data dir and of every directory in it. */
const PRIVATE_DIR_MODE = 0o700;

/**
 * Makes the data dir private to the user running Gitspaces, for new and existing installations alike: the dir and
 * every directory in it 0700, every file 0600 (an owner's execute bit is kept). From here on this process creates
 * only private files (umask 077), which covers what libraries create in it (the PGlite database, Temporal's SQLite).
 * Symbolic links are never followed. Local machines an older version kept in `machines/` are left to the runner,
 * which moves them out of the data dir.
 */
export async function preparePrivateDataDir(dataDir: string): Promise<void> {
  process.umask(process.umask() | 0o077);
  await mkdir(dataDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await tighten(dataDir, new Set([path.join(dataDir, 'machines')]));
}

async function tighten(entry: string, skip: Set<string>): Promise<void> {
  if (skip.has(entry)) return;
  let info;
  try {
    info = await lstat(entry);
  } catch {
    return; // Gone meanwhile (another part of the stack is writing it).
  }
  if (info.isSymbolicLink()) return;
  if (info.isDirectory()) {
    if ((info.mode & 0o777) !== PRIVATE_DIR_MODE) await chmod(entry, PRIVATE_DIR_MODE).catch(() => undefined);
    const names = await readdir(entry).catch(() => [] as string[]);
    for (const name of names) await tighten(path.join(entry, name), skip);
  } else if (info.isFile() && (info.mode & 0o077) !== 0) {
    await chmod(entry, info.mode & 0o700).catch(() => undefined);
  }
}
