import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { freeStackPortsEnv } from '../scripts/stack-ports';
import { localMachinesRoot } from '../providers/local/provider';

/** Every entry under `dir` (symbolic links not followed), with its mode. */
async function walk(dir: string): Promise<{ path: string; mode: number; directory: boolean }[]> {
  const found = [];
  for (const name of await readdir(dir)) {
    const entry = path.join(dir, name);
    const info = await lstat(entry).catch(() => undefined);
    if (!info || info.isSymbolicLink()) continue;
    found.push({ path: entry, mode: info.mode & 0o777, directory: info.isDirectory() });
    if (info.isDirectory()) found.push(...(await walk(entry)));
  }
  return found;
}

/**
 * `npm start` as a user runs it: on an existing data dir that an older version left readable by everyone. After the
 * start the data dir is 0700 and everything in it private to its owner; the admin token is never in the output.
 */
describe('npm start', () => {
  let base: string;
  let dataDir: string;
  let child: ChildProcess | undefined;
  let output = '';
  let codecPort = 0;
  let uiPort = 0;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-start-'));
    dataDir = path.join(base, 'data');
    await mkdir(dataDir, { mode: 0o755 });
    // What an older version left: a world-readable data dir and secrets key. The admin token is generated now.
    await writeFile(path.join(dataDir, 'secrets-key'), `${randomBytes(32).toString('base64')}\n`, { mode: 0o644 });
    const ports = await freeStackPortsEnv();
    codecPort = Number(ports.GITSPACES_CODEC_PORT);
    uiPort = Number(ports.GITSPACES_TEMPORAL_UI_PORT);
    const tsx = pathToFileURL(require.resolve('tsx')).href;
    child = spawn(process.execPath, ['--import', tsx, path.join(__dirname, '..', 'scripts', 'start.ts')], {
      env: {
        ...process.env,
        ...ports,
        GITSPACES_DATA_DIR: dataDir,
        NODE_OPTIONS: '',
      },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer) => (output += chunk.toString('utf8'));
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    const deadline = Date.now() + 180_000;
    while (!output.includes('Gitspaces is running.')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 200_000);

  afterAll(async () => {
    if (child?.pid && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      process.kill(-child.pid, 'SIGTERM');
      await exited;
    }
    await rm(base, { recursive: true, force: true });
  }, 60_000);

  it('makes the data dir 0700 and every file in it 0600, including what it found world-readable', async () => {
    expect((await lstat(dataDir)).mode & 0o777).toBe(0o700);
    const entries = await walk(dataDir);
    const names = entries.map((e) => path.relative(dataDir, e.path));
    expect(names).toEqual(
      expect.arrayContaining([
        'admin-token',
        'secrets-key',
        'runner-keys',
        'gateway-admin-token',
        'access-token-key.pem',
        'temporal.sqlite',
        'db',
        'payload-keys',
        'codec-token',
      ]),
    );
    const open = entries.filter((e) => (e.directory ? e.mode !== 0o700 : (e.mode & 0o077) !== 0));
    expect(open.map((e) => `${path.relative(dataDir, e.path)} ${e.mode.toString(8)}`)).toEqual([]);
    expect((await lstat(localMachinesRoot(dataDir))).mode & 0o077).toBe(process.getuid?.() === 0 ? 0o011 : 0);
  });

  it('never prints the admin token, only where it is', async () => {
    const token = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
    expect(output).not.toContain(token);
    expect(output).toContain(path.join(dataDir, 'admin-token'));
  });

  it('runs the Web UI with its codec endpoint set to the codec server, which wants the codec token', async () => {
    const codecUrl = `http://127.0.0.1:${codecPort}`;
    const settings = (await (await fetch(`http://127.0.0.1:${uiPort}/api/v1/settings`)).json()) as any;
    expect(settings.Codec?.Endpoint).toBe(codecUrl);
    // Write actions off unless GITSPACES_TEMPORAL_UI_ACTIONS=on; a terminate is refused.
    expect(settings.DisableWriteActions).toBe(true);
    expect(output).toContain('write actions off');
    const terminate = await fetch(`http://127.0.0.1:${uiPort}/api/v1/namespaces/default/workflows/x/terminate`, {
      method: 'POST',
    });
    expect(terminate.status).toBe(405);
    const codecToken = (await readFile(path.join(dataDir, 'codec-token'), 'utf8')).trim();
    expect(output).not.toContain(codecToken);
    const decode = (headers: Record<string, string>) =>
      fetch(`${codecUrl}/decode`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: `http://127.0.0.1:${uiPort}`, ...headers },
        body: JSON.stringify({ payloads: [] }),
      });
    expect((await decode({})).status).toBe(401);
    const allowed = await decode({ authorization: `Bearer ${codecToken}` });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(`http://127.0.0.1:${uiPort}`);
  });

  it('says how local gitspaces are isolated', () => {
    expect(output).toMatch(/Local gitspaces: sandboxed \(bubblewrap/);
    expect(output).not.toContain('NOT sandboxed');
  });
});
