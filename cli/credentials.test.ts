import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chooseCredentials, configDirectory, credentialsFile } from './credentials';
import { CredentialsError } from './errors';

describe('the credentials file', () => {
  let base: string;
  beforeEach(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-cli-'));
  });
  afterEach(() => rm(base, { recursive: true, force: true }));

  const modeOf = async (file: string) => (await stat(file)).mode & 0o777;

  it('lives in $XDG_CONFIG_HOME/gitspaces, else ~/.config/gitspaces', () => {
    expect(configDirectory({ XDG_CONFIG_HOME: '/x/config', HOME: '/home/ada' })).toBe('/x/config/gitspaces');
    expect(configDirectory({ HOME: '/home/ada' })).toBe('/home/ada/.config/gitspaces');
    expect(configDirectory({ XDG_CONFIG_HOME: 'relative', HOME: '/home/ada' })).toBe('/home/ada/.config/gitspaces');
  });

  it('is written 0600 in a 0700 directory, also when the directory was open before', async () => {
    const dir = path.join(base, 'gitspaces');
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    const file = credentialsFile(dir);
    await file.save({ url: 'http://127.0.0.1:3000', token: 'gs_secret' });
    expect(await modeOf(dir)).toBe(0o700);
    expect(await modeOf(file.path)).toBe(0o600);
    expect(JSON.parse(await readFile(file.path, 'utf8'))).toEqual({ url: 'http://127.0.0.1:3000', token: 'gs_secret' });
    expect(await file.load()).toEqual({ url: 'http://127.0.0.1:3000', token: 'gs_secret' });
  });

  it('is refused, with what to do, when others can read it', async () => {
    const file = credentialsFile(path.join(base, 'gitspaces'));
    await file.save({ url: 'http://127.0.0.1:3000', token: 'gs_secret' });
    await chmod(file.path, 0o644);
    await expect(file.load()).rejects.toThrow(CredentialsError);
    await expect(file.load()).rejects.toThrow(`can be read by others (mode 0644), so its token is not used`);
    await expect(file.load()).rejects.toThrow(`chmod 600 ${file.path}`);
  });

  it('is no credentials when missing, and refused when it is not one', async () => {
    const dir = path.join(base, 'gitspaces');
    const file = credentialsFile(dir);
    expect(await file.load()).toBeUndefined();
    expect(await file.remove()).toBe(false);
    await mkdir(dir, { recursive: true });
    await writeFile(file.path, '{"url": 3}', { mode: 0o600 });
    await expect(file.load()).rejects.toThrow('is not a Gitspaces credentials file; log in again');
    expect(await file.remove()).toBe(true);
    expect(await file.load()).toBeUndefined();
  });
});

describe('choosing the credentials', () => {
  const stored = { url: 'http://127.0.0.1:3000', token: 'gs_stored' };

  it('uses the stored ones, each part overridden by GITSPACES_URL and GITSPACES_TOKEN', () => {
    expect(chooseCredentials(stored, {})).toEqual(stored);
    expect(chooseCredentials(stored, { token: 'gs_env' })).toEqual({ url: stored.url, token: 'gs_env' });
    expect(chooseCredentials(undefined, { url: 'https://g.example.com/api/v1', token: 'gs_env' })).toEqual({
      url: 'https://g.example.com',
      token: 'gs_env',
    });
    expect(chooseCredentials(stored, { url: 'http://127.0.0.1:3000/api/v1' })).toEqual(stored);
  });

  it('never sends the stored token to another API', () => {
    expect(() => chooseCredentials(stored, { url: 'https://elsewhere.example.com' })).toThrow(
      'no token for https://elsewhere.example.com (you are logged in to http://127.0.0.1:3000)',
    );
  });

  it('says how to log in when there is nothing', () => {
    expect(() => chooseCredentials(undefined, {})).toThrow('not logged in: run `gitspaces login --url <api url>`');
  });
});
