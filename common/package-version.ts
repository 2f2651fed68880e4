import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * This package's version, from the nearest package.json above this file: beside the sources, or above `dist/` in
 * the released package. '0.0.0' when there is none.
 */
export const PACKAGE_VERSION: string = (() => {
  for (let dir = __dirname; path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: unknown };
      if (typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not here: one folder up.
    }
  }
  return '0.0.0';
})();
