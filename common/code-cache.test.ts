import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { codeCacheDir, replaceCacheFile } from './code-cache';

describe('the code cache', () => {
  const top = path.join(codeCacheDir(), `test-${randomBytes(6).toString('hex')}`);
  afterAll(() => rm(top, { recursive: true, force: true }));

  it('is readable by every user whatever the umask: sandboxed agents read their program from it', () => {
    // npm start's umask: without the explicit modes, the folders were 0700 and every sandbox probe failed.
    const umask = process.umask(0o077);
    try {
      const file = path.join(top, 'agent', 'main.js');
      replaceCacheFile(file, 'console.log("agent")\n');
      expect(statSync(file).mode & 0o777).toBe(0o644);
      for (const dir of [path.dirname(file), top, codeCacheDir(), path.dirname(codeCacheDir())]) {
        expect({ dir, mode: statSync(dir).mode & 0o777 }).toEqual({ dir, mode: 0o755 });
      }
    } finally {
      process.umask(umask);
    }
  });
});
