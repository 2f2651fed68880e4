import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * The API validates provider configs (providers/validation.ts, zod only) and never runs a provider: loading its
 * modules must not load a cloud SDK. Each check loads modules in a fresh Node process and lists the packages that
 * ended up in its require cache.
 */
const ROOT = path.resolve(__dirname, '..');
const CLOUD_SDK = /[\\/]node_modules[\\/]((?:@google-cloud|@aws-sdk)[\\/][^\\/]+)/;

async function cloudSdksLoadedBy(modules: string[]): Promise<string[]> {
  const script = `
    for (const m of ${JSON.stringify(modules)}) require(m);
    const sdks = new Set();
    for (const file of Object.keys(require.cache)) {
      const match = ${CLOUD_SDK.toString()}.exec(file);
      if (match) sdks.add(match[1].replace('\\\\', '/'));
    }
    process.stdout.write(JSON.stringify([...sdks].sort()));
    process.exit(0);
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: '' },
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout) as string[];
}

/** Every module of the API but its entry point (which starts the server when loaded). */
const API_MODULES = readdirSync(__dirname)
  .filter((name) => name.endsWith('.ts') && !name.endsWith('.test.ts') && name !== 'main.ts')
  .map((name) => path.join(__dirname, name));

describe('the API and the cloud SDKs', () => {
  it('loads no AWS or GCP SDK with any of its modules', async () => {
    expect(API_MODULES).toContain(path.join(__dirname, 'app.ts'));
    expect(API_MODULES).toContain(path.join(__dirname, 'server.ts'));
    expect(await cloudSdksLoadedBy(API_MODULES)).toEqual([]);
  }, 60_000);

  it('sees the SDKs that the runner’s provider resolver loads (the check can fail)', async () => {
    const loaded = await cloudSdksLoadedBy([path.join(ROOT, 'providers', 'resolver.ts')]);
    expect(loaded).toEqual(expect.arrayContaining(['@google-cloud/compute', '@aws-sdk/client-ec2']));
  }, 60_000);
});
