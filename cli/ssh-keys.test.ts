import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startStubServer, testCli, type StubServer } from '../test/support/cli-stub';
import { addSshKeyCommand, listSshKeysCommand, readPublicKey, removeSshKeyCommand } from './commands/ssh-keys';
import { ApiError, UsageError } from './errors';

const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOdZ2u5N0j8p2Yx0tM9c0Qe7c9d0kq9x2b6b2m3b5f4a ada@laptop';
const KEY = {
  id: 'key-1',
  name: 'ada@laptop',
  type: 'ssh-ed25519',
  fingerprint: 'SHA256:2fQ3m2cHqUu5mR8xkq0n1Hq0m9w0b8Z1y3k4v5u6t7s',
  createdAt: '2026-12-02T09:15:03.000Z',
};
const OTHER = { ...KEY, id: 'key-2', name: 'ci', type: 'ecdsa-sha2-nistp256', fingerprint: 'SHA256:other' };

describe('gitspaces ssh-keys', () => {
  let stub: StubServer;
  let dir: string;
  let keys: (typeof KEY)[];

  beforeEach(async () => {
    stub = await startStubServer();
    dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-ssh-keys-test-'));
    keys = [KEY, OTHER];
    stub.answer = (request) => {
      if (request.path !== '/api/v1/users/me/ssh-keys' && !request.path.startsWith('/api/v1/users/me/ssh-keys/')) {
        return { status: 404, body: { error: { code: 'not_found', message: 'no such route' } } };
      }
      if (request.method === 'GET') return { status: 200, body: { items: keys } };
      if (request.method === 'POST') return { status: 201, body: { ...KEY, name: request.body.name ?? KEY.name } };
      return { status: 204 };
    };
  });
  afterEach(async () => {
    await stub.close();
    await rm(dir, { recursive: true, force: true });
  });
  const cli = () => testCli({ url: stub.url, configDir: path.join(dir, 'config') });

  it('adds the public key of a file, with its name, and says its fingerprint', async () => {
    const file = path.join(dir, 'laptop.pub');
    await writeFile(file, `${ED25519}\n`);
    const { context, out } = cli();
    await addSshKeyCommand(context, file, { name: 'laptop' });
    expect(stub.requests).toMatchObject([
      { method: 'POST', path: '/api/v1/users/me/ssh-keys', body: { publicKey: ED25519, name: 'laptop' } },
    ]);
    expect(out()).toBe(`added SSH key 'laptop' (ssh-ed25519 ${KEY.fingerprint}) from ${file}\n`);
  });

  it("takes, with no file, the first of id_ed25519.pub, id_ecdsa.pub and id_rsa.pub in the home's .ssh", async () => {
    await mkdir(path.join(dir, '.ssh'));
    await writeFile(path.join(dir, '.ssh', 'id_rsa.pub'), 'ssh-rsa AAAArsa\n');
    await writeFile(path.join(dir, '.ssh', 'id_ecdsa.pub'), '# a comment line\necdsa-sha2-nistp256 AAAAecdsa me\n');
    expect(await readPublicKey(undefined, dir)).toEqual({
      publicKey: 'ecdsa-sha2-nistp256 AAAAecdsa me',
      source: path.join(dir, '.ssh', 'id_ecdsa.pub'),
    });
    await writeFile(path.join(dir, '.ssh', 'id_ed25519.pub'), ED25519);
    expect((await readPublicKey(undefined, dir)).publicKey).toBe(ED25519);
  });

  it('says how to make a key when there is none, and never sends a private key', async () => {
    await expect(readPublicKey(undefined, dir)).rejects.toThrow(
      `no public key in ${path.join(dir, '.ssh')} (id_ed25519.pub, id_ecdsa.pub, id_rsa.pub): make one with \`ssh-keygen -t ed25519\`, or name the .pub file`,
    );
    const privateKey = path.join(dir, 'id_ed25519');
    await writeFile(
      privateKey,
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n',
    );
    const { context } = cli();
    const adding = addSshKeyCommand(context, privateKey, {});
    await expect(adding).rejects.toThrow(UsageError);
    await expect(adding).rejects.toThrow('is a private key, which never leaves your machine: give its .pub file');
    expect(stub.requests).toHaveLength(0);
  });

  it('lists the keys as a table, or as JSON', async () => {
    const table = cli();
    await listSshKeysCommand(table.context, {});
    expect(table.out().split('\n')).toEqual([
      'NAME        TYPE                 FINGERPRINT                                         ADDED                 ID',
      `ada@laptop  ssh-ed25519          ${KEY.fingerprint}  2026-12-02 09:15:03Z  key-1`,
      `ci          ecdsa-sha2-nistp256  SHA256:other                                        2026-12-02 09:15:03Z  key-2`,
      '',
    ]);
    const json = cli();
    await listSshKeysCommand(json.context, { json: true });
    expect(JSON.parse(json.out())).toEqual({ items: keys });
    keys = [];
    const empty = cli();
    await listSshKeysCommand(empty.context, {});
    expect(empty.out()).toBe('no SSH keys; add yours with `gitspaces ssh-keys add`\n');
  });

  it('removes a key named by its fingerprint or its id', async () => {
    const byFingerprint = cli();
    await removeSshKeyCommand(byFingerprint.context, KEY.fingerprint, {});
    const byId = cli();
    await removeSshKeyCommand(byId.context, 'key-2', {});
    expect(stub.requests.filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual([
      '/api/v1/users/me/ssh-keys/key-1',
      '/api/v1/users/me/ssh-keys/key-2',
    ]);
    expect(byFingerprint.out()).toBe(
      `removed SSH key 'ada@laptop' (${KEY.fingerprint}); it opens no new SSH connection from now on\n`,
    );
  });

  it('removes nothing for a key it does not know, and says so (404, exit 3)', async () => {
    const { context } = cli();
    const removing = removeSshKeyCommand(context, 'SHA256:unknown', {});
    await expect(removing).rejects.toThrow(ApiError);
    await expect(removing).rejects.toMatchObject({ status: 404, exitCode: 3 });
    expect(stub.requests.filter((r) => r.method === 'DELETE')).toHaveLength(0);
  });
});
