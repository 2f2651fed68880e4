import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { bundleLifecycleWorkflows } from './workflow-bundle';

describe('the cached workflow bundle', () => {
  let cacheDir: string;
  let cacheFile: string;
  let fresh: string;

  beforeAll(async () => {
    cacheDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-bundle-cache-'));
    cacheFile = path.join(cacheDir, 'workflow-bundle.json');
    fresh = (await bundleLifecycleWorkflows({ cacheDir })).code;
  }, 120_000);

  afterAll(() => rm(cacheDir, { recursive: true, force: true }));

  /** The cache entry as written, with `change` applied. */
  const rewrite = async (change: (entry: { code: string; inputs: Record<string, string> }) => void) => {
    const entry = JSON.parse(await readFile(cacheFile, 'utf8')) as { code: string; inputs: Record<string, string> };
    change(entry);
    await writeFile(cacheFile, JSON.stringify(entry));
  };

  it('records every file webpack read, ours and the SDK’s, by content', async () => {
    const { inputs } = JSON.parse(await readFile(cacheFile, 'utf8')) as { inputs: Record<string, string> };
    const files = Object.keys(inputs);
    expect(files).toEqual(
      expect.arrayContaining([
        require.resolve('../workflows/gitspace-lifecycle'),
        require.resolve('../contracts/lifecycle'),
        expect.stringMatching(/node_modules\/@temporalio\/workflow\//),
      ]),
    );
    for (const digest of Object.values(inputs)) expect(digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('answers from the cache while every input is unchanged', async () => {
    await rewrite((entry) => (entry.code = `${fresh}\n// from the cache`));
    expect((await bundleLifecycleWorkflows({ cacheDir })).code).toBe(`${fresh}\n// from the cache`);
  });

  it('bundles again, and replaces the entry, when one input changed', async () => {
    await rewrite((entry) => {
      entry.code = 'stale';
      entry.inputs[require.resolve('../workflows/gitspace-lifecycle')] = '0'.repeat(64);
    });
    expect((await bundleLifecycleWorkflows({ cacheDir })).code).toBe(fresh);
    expect(JSON.parse(await readFile(cacheFile, 'utf8'))).toMatchObject({ code: fresh });
  }, 120_000);

  it('bundles again when an input is gone or the entry is not one it wrote', async () => {
    await rewrite((entry) => {
      entry.code = 'stale';
      entry.inputs[path.join(cacheDir, 'removed.ts')] = '0'.repeat(64);
    });
    expect((await bundleLifecycleWorkflows({ cacheDir })).code).toBe(fresh);
    await writeFile(cacheFile, '{"code": "not ours"}');
    expect((await bundleLifecycleWorkflows({ cacheDir })).code).toBe(fresh);
  }, 120_000);
});
