import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Reads a secret kept in the data dir, creating it on first use (mode 0600, in a directory made 0700). The value is
 * written whole under a temporary name and then linked into place: `link` fails if the file exists, so two processes
 * starting at once agree on one value, and neither ever reads a file the other has not finished writing.
 */
export async function readOrCreateSecretFile(
  file: string,
  generate: () => string,
): Promise<{ value: string; created: boolean }> {
  try {
    return { value: (await readFile(file, 'utf8')).trim(), created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const value = generate();
  const temporary = temporaryNameFor(file);
  await writeFile(temporary, `${value}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(temporary, file);
    return { value, created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return { value: (await readFile(file, 'utf8')).trim(), created: false };
  } finally {
    await rm(temporary, { force: true });
  }
}

/** Replaces a file in the data dir whole (0600): a reader sees the old content or the new, never a part. */
export async function replaceSecretFile(file: string, content: string): Promise<void> {
  const temporary = temporaryNameFor(file);
  try {
    await writeFile(temporary, content, { mode: 0o600, flag: 'wx' });
    await rename(temporary, file);
  } finally {
    await rm(temporary, { force: true });
  }
}

function temporaryNameFor(file: string): string {
  return `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
}
