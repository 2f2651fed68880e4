import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  CorruptRoutesFileError,
  InvalidGitspaceIdError,
  InvalidRouteRegistrationError,
  InvalidRouteTargetError,
  ROUTES_FILE,
  createFileRoutesStore,
} from './routes-store';

const SECRET = 'route-secret-0123456789-0123456789-0123456789';
const route = (target: unknown, runId = 'run-1') => ({ target, secret: SECRET, runId });

describe('file routes store', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-routes-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('persists every change atomically (0600, no temp files left) and finds it again', async () => {
    const store = await createFileRoutesStore(dir);
    expect(await store.put('gs-a', route('http://127.0.0.1:8089/'))).toMatchObject({
      created: true,
      route: { target: 'http://127.0.0.1:8089', secret: SECRET, runId: 'run-1' },
    });
    expect((await store.put('gs-a', route('http://127.0.0.1:9000', 'run-2'))).created).toBe(false);
    await store.put('gs-b', route('https://[::1]:443'));
    expect(await store.delete('gs-b')).toBe(true);
    expect(await store.delete('gs-b')).toBe(false);
    expect((await stat(path.join(dir, ROUTES_FILE))).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual([ROUTES_FILE]);
    const again = await createFileRoutesStore(dir);
    expect(again.get('gs-a')).toMatchObject({ target: 'http://127.0.0.1:9000', secret: SECRET, runId: 'run-2' });
    // The list is what the admin API shows: no secrets.
    expect(again.list()).toEqual([
      { gitspaceId: 'gs-a', target: 'http://127.0.0.1:9000', runId: 'run-2', updatedAt: expect.any(String) },
    ]);
  });

  it('refuses a registration without a good secret or run id', async () => {
    const store = await createFileRoutesStore(dir);
    const target = 'http://127.0.0.1:8089';
    for (const secret of [undefined, '', 'short', `${'a'.repeat(42)}`, `${'a'.repeat(43)}!`, 42]) {
      await expect(store.put('gs-a', { target, secret, runId: 'run-1' })).rejects.toMatchObject({
        name: 'InvalidRouteRegistrationError',
        field: 'secret',
      });
    }
    for (const runId of [undefined, '', 'has space', 'x'.repeat(257), 7]) {
      await expect(store.put('gs-a', { target, secret: SECRET, runId })).rejects.toBeInstanceOf(
        InvalidRouteRegistrationError,
      );
    }
    expect(store.list()).toEqual([]);
  });

  it('drops routes of an older version (no secret, no run id) when loading', async () => {
    await writeFile(
      path.join(dir, ROUTES_FILE),
      JSON.stringify({
        routes: [
          { gitspaceId: 'gs-old', target: 'http://127.0.0.1:1' },
          { gitspaceId: 'gs-new', ...route('http://127.0.0.1:2') },
        ],
      }),
    );
    expect((await createFileRoutesStore(dir)).list().map((r) => r.gitspaceId)).toEqual(['gs-new']);
  });

  it('refuses targets that are not a plain origin, and changes nothing', async () => {
    const store = await createFileRoutesStore(dir);
    await store.put('gs-a', route('http://127.0.0.1:8089'));
    const bad = [
      'file:///etc/passwd',
      'http://127.0.0.1:8089/path',
      'http://user:pw@127.0.0.1:8089',
      'http://127.0.0.1:8089?x=1',
      'http://127.0.0.1:8089#x',
      'http://127.0.0.1:99999',
      'http:\\\\127.0.0.1:8089',
      'gopher://127.0.0.1:70',
      ' http://127.0.0.1:1',
      '',
      42,
      undefined,
    ];
    for (const target of bad) {
      await expect(store.put('gs-a', route(target))).rejects.toBeInstanceOf(InvalidRouteTargetError);
    }
    for (const id of ['../x', 'a/b', '', '-lead', 'a.b', 'x'.repeat(129)]) {
      await expect(store.put(id, route('http://127.0.0.1:1'))).rejects.toBeInstanceOf(InvalidGitspaceIdError);
    }
    expect(store.list()).toEqual([expect.objectContaining({ gitspaceId: 'gs-a', target: 'http://127.0.0.1:8089' })]);
    expect(JSON.parse(await readFile(path.join(dir, ROUTES_FILE), 'utf8')).routes).toHaveLength(1);
  });

  it('refuses to start on a corrupt file instead of forgetting the routes', async () => {
    await writeFile(path.join(dir, ROUTES_FILE), '{"routes": [');
    await expect(createFileRoutesStore(dir)).rejects.toBeInstanceOf(CorruptRoutesFileError);
    await writeFile(
      path.join(dir, ROUTES_FILE),
      JSON.stringify({ routes: [{ gitspaceId: 'gs-a', ...route('http://x/evil') }] }),
    );
    await expect(createFileRoutesStore(dir)).rejects.toThrow(/routes\[0\].*target/);
  });
});
