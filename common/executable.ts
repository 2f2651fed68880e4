import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** The first executable file called `name` in the directories of `searchPath` (a PATH), as a shell would find it. */
export function findExecutable(name: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}
