import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt } from 'jose';
import { utils } from 'ssh2';
import { sshFingerprint } from '../common/ssh-public-key';
import { startRouteHarness, type RouteHarness } from '../test/support/route-harness';
import { ed25519PublicKey, sshString } from '../test/support/ssh-keys';
import { createAccessTokenIssuer } from './access-tokens';

/** SSH keys (GET/POST/DELETE /users/:id/ssh-keys) and the ssh access grant, on PGlite with Temporal faked. */
describe('SSH keys and SSH access', () => {
  let api: RouteHarness;
  let ada: { id: string; token: string };
  let bob: { id: string; token: string };
  const QUOTA = 3;

  beforeAll(async () => {
    const privateKeyPem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    api = await startRouteHarness({
      accessTokens: await createAccessTokenIssuer({ privateKeyPem, ttlSeconds: 600 }),
      limits: { maxSshKeysPerUser: QUOTA },
    });
    ada = await api.member('ada');
    bob = await api.member('bob');
  });
  afterAll(async () => {
    await api?.close();
  });

  const ed25519 = (comment = 'ada@laptop') => ed25519PublicKey(comment);
  const fingerprintOf = (line: string) => sshFingerprint(Buffer.from(line.split(' ')[1]!, 'base64'));
  const keysOf = async (userId: string) =>
    (await api.call('GET', `/users/${userId}/ssh-keys`, api.adminToken)).body.items as { id: string }[];
  const removeAll = async (userId: string) => {
    for (const { id } of await keysOf(userId)) {
      expect((await api.call('DELETE', `/users/${userId}/ssh-keys/${id}`, api.adminToken)).status).toBe(204);
    }
  };
  afterEach(async () => {
    await removeAll(ada.id);
    await removeAll(bob.id);
  });

  it('registers a key for its user, shows it without anything secret, and removes it', async () => {
    const publicKey = ed25519();
    const added = await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey });
    expect(added.status).toBe(201);
    expect(added.body).toEqual({
      id: expect.stringMatching(/^key-/) as string,
      name: 'ada@laptop',
      type: 'ssh-ed25519',
      fingerprint: fingerprintOf(publicKey),
      publicKey: publicKey.trim(),
      createdAt: expect.any(String) as string,
    });
    const named = await api.call('POST', `/users/${ada.id}/ssh-keys`, ada.token, {
      name: 'work laptop',
      publicKey: utils.generateKeyPairSync('ecdsa', { bits: 256 }).public,
    });
    expect(named.body).toMatchObject({ name: 'work laptop', type: 'ecdsa-sha2-nistp256' });
    const listed = await api.call('GET', '/users/me/ssh-keys', ada.token);
    expect(listed.body.items.map((k: { id: string }) => k.id)).toEqual([added.body.id, named.body.id]);
    expect((await api.call('DELETE', `/users/me/ssh-keys/${added.body.id}`, ada.token)).status).toBe(204);
    expect((await keysOf(ada.id)).map((k) => k.id)).toEqual([named.body.id]);
    expect((await api.call('DELETE', `/users/me/ssh-keys/${added.body.id}`, ada.token)).status).toBe(404);
  });

  const rsa1024 = utils.generateKeyPairSync('rsa', { bits: 1024 }).public;
  const skKey = `sk-ssh-ed25519@openssh.com ${Buffer.concat([
    sshString('sk-ssh-ed25519@openssh.com'),
    sshString(Buffer.alloc(32, 7)),
    sshString('ssh:'),
  ]).toString('base64')} yubikey`;

  it.each([
    ['a malformed key', { publicKey: 'ssh-ed25519 AAAAnot-a-key' }, 'publicKey', /base64|malformed/],
    ['text that is no key', { publicKey: 'hello' }, 'publicKey', /not an OpenSSH public key/],
    ['a security-key (sk-) key', { publicKey: skKey }, 'publicKey', /security-key/],
    ['an RSA key of 1024 bits', { publicKey: rsa1024 }, 'publicKey', /1024 bits/],
    ['a key line over 8 KiB', { publicKey: `${ed25519()}${'x'.repeat(8 * 1024)}` }, 'publicKey', /8 KiB|8192/],
    ['a private key', { publicKey: utils.generateKeyPairSync('ed25519').private }, 'publicKey', /private key/],
    ['no key', { name: 'empty' }, 'publicKey', /./],
    ['a name with a slash', { name: 'a/b', publicKey: ed25519() }, 'name', /./],
    ['an unknown field', { publicKey: ed25519(), admin: true }, 'admin', /not a known field/],
  ])('refuses %s with 400 naming the field, and stores nothing', async (_what, body, path, reason) => {
    const refused = await api.call('POST', '/users/me/ssh-keys', ada.token, body);
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('invalid_request');
    const field = (refused.body.error.fields as { path: string; message: string }[]).find((f) => f.path === path);
    expect(field?.message).toMatch(reason);
    expect(await keysOf(ada.id)).toEqual([]);
  });

  it('refuses a key its user has already with 409', async () => {
    const publicKey = ed25519();
    expect((await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey })).status).toBe(201);
    const again = await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey, name: 'again' });
    expect(again.status).toBe(409);
    expect(again.body.error.message).toContain(fingerprintOf(publicKey));
    expect(await keysOf(ada.id)).toHaveLength(1);
  });

  it('refuses a key past the quota with 403 quota_exceeded, and takes one after a removal', async () => {
    const added = [];
    for (let n = 0; n < QUOTA; n++) {
      const response = await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey: ed25519(`k${n}`) });
      expect(response.status).toBe(201);
      added.push(response.body.id as string);
    }
    const over = await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey: ed25519('one too many') });
    expect(over.status).toBe(403);
    expect(over.body.error.code).toBe('quota_exceeded');
    expect(over.body.error.message).toContain(`${QUOTA} of ${QUOTA} SSH keys`);
    expect(await keysOf(ada.id)).toHaveLength(QUOTA);
    await api.call('DELETE', `/users/me/ssh-keys/${added[0]}`, ada.token);
    expect((await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey: ed25519('now') })).status).toBe(201);
  });

  it("answers 404 for another member's keys, and cannot list, add or delete them", async () => {
    const bobs = await api.call('POST', '/users/me/ssh-keys', bob.token, { publicKey: ed25519('bob') });
    expect(bobs.status).toBe(201);
    for (const [method, route, body] of [
      ['GET', `/users/${bob.id}/ssh-keys`, undefined],
      ['POST', `/users/${bob.id}/ssh-keys`, { publicKey: ed25519('planted by ada') }],
      ['DELETE', `/users/${bob.id}/ssh-keys/${bobs.body.id}`, undefined],
      ['GET', '/users/usr-nobody/ssh-keys', undefined],
    ] as const) {
      const answer = await api.call(method, route, ada.token, body);
      expect({ method, route, status: answer.status, code: answer.body?.error?.code }).toEqual({
        method,
        route,
        status: 404,
        code: 'not_found',
      });
    }
    // Through her own path, bob's key id names nothing of hers.
    expect((await api.call('DELETE', `/users/me/ssh-keys/${bobs.body.id}`, ada.token)).status).toBe(404);
    expect((await keysOf(bob.id)).map((k) => k.id)).toEqual([bobs.body.id]);
  });

  it("lets an administrator list, add and remove anyone's keys", async () => {
    const added = await api.call('POST', `/users/${bob.id}/ssh-keys`, api.adminToken, { publicKey: ed25519('bob') });
    expect(added.status).toBe(201);
    expect((await api.call('GET', '/users/me/ssh-keys', bob.token)).body.items).toHaveLength(1);
    expect((await api.call('DELETE', `/users/${bob.id}/ssh-keys/${added.body.id}`, api.adminToken)).status).toBe(204);
    expect(await keysOf(bob.id)).toEqual([]);
    expect((await api.call('GET', '/users/usr-nobody/ssh-keys', api.adminToken)).status).toBe(404);
  });

  describe('POST /gitspaces/:id/access', () => {
    const HOST_KEY = ed25519('host');
    /** A gitspace of `owner` that is running, as a finished start made it, with a host key unless told otherwise. */
    const runningGitspace = async (
      owner: { token: string },
      name: string,
      { hostKey = HOST_KEY, url }: { hostKey?: string | null; url?: string } = {},
    ) => {
      const created = await api.call('POST', '/gitspaces', owner.token, {
        name,
        repository: { url: 'https://git.example.test/org/repo.git' },
        infrastructureId: 'local',
        machineId: 'local-default',
        start: false,
      });
      expect(created.status).toBe(201);
      const id = created.body.gitspace.id as string;
      const runId = `run-${id}`;
      await api.store.recordOperation({ gitspaceId: id, action: 'start', workflowId: `gitspace-${id}`, runId });
      await api.store.updateOperation(runId, { status: 'succeeded' });
      await api.store.changeState(id, {
        to: 'running',
        url: url ?? `http://127.0.0.1:1/gitspaces/${id}/`,
        message: 'running (test)',
        actor: { type: 'reconciler' },
      });
      // The agent's part (another helper's): the start stores the host key the agent published.
      await api.db.updateTable('gitspaces').set({ sshHostKey: hostKey }).where('id', '=', id).execute();
      return { id, runId };
    };

    it('answers 409 no_ssh_keys when the caller has no key, even if the owner has', async () => {
      const { id } = await runningGitspace(ada, 'no-keys');
      const none = await api.call('POST', `/gitspaces/${id}/access`, ada.token, { scope: 'ssh' });
      expect(none.status).toBe(409);
      expect(none.body.error.code).toBe('no_ssh_keys');
      expect(none.body.error.message).toContain('gitspaces ssh-keys add');
      await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey: ed25519() });
      const admin = await api.call('POST', `/gitspaces/${id}/access`, api.adminToken, { scope: 'ssh' });
      expect(admin.status).toBe(409);
      expect(admin.body.error.code).toBe('no_ssh_keys');
    });

    it('grants an ssh token naming exactly the caller’s key fingerprints, the tunnel URL and the host key', async () => {
      const { id, runId } = await runningGitspace(ada, 'ssh-grant');
      const adaKeys = [ed25519('one'), utils.generateKeyPairSync('rsa', { bits: 2048 }).public];
      for (const publicKey of adaKeys) await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey });
      await api.call('POST', '/users/me/ssh-keys', bob.token, { publicKey: ed25519('bob') });

      const granted = await api.call('POST', `/gitspaces/${id}/access`, ada.token, { scope: 'ssh' });
      expect(granted.status).toBe(200);
      expect(granted.body).toEqual({
        url: `ws://127.0.0.1:1/gitspaces/${id}/_gitspaces/ssh`,
        token: expect.any(String) as string,
        expiresAt: expect.any(String) as string,
        hostKey: HOST_KEY,
      });
      expect(decodeJwt(granted.body.token)).toMatchObject({
        sub: ada.id,
        gitspace_id: id,
        run_id: runId,
        scope: 'ssh',
        ssh_keys: adaKeys.map(fingerprintOf),
      });

      // A removed key is left out of the next grant.
      const [first] = await keysOf(ada.id);
      await api.call('DELETE', `/users/me/ssh-keys/${first!.id}`, ada.token);
      const next = await api.call('POST', `/gitspaces/${id}/access`, ada.token, { scope: 'ssh' });
      expect(decodeJwt(next.body.token).ssh_keys).toEqual([fingerprintOf(adaKeys[1]!)]);
    });

    it("gives an administrator opening a member's gitspace the administrator's own keys, never the owner's", async () => {
      const { id } = await runningGitspace(bob, 'admin-opens');
      await api.call('POST', '/users/me/ssh-keys', bob.token, { publicKey: ed25519('bob') });
      const adminKey = ed25519('admin');
      const added = await api.call('POST', '/users/me/ssh-keys', api.adminToken, { publicKey: adminKey });
      try {
        const granted = await api.call('POST', `/gitspaces/${id}/access`, api.adminToken, { scope: 'ssh' });
        expect(granted.status).toBe(200);
        expect(decodeJwt(granted.body.token).ssh_keys).toEqual([fingerprintOf(adminKey)]);
        // Another member cannot get a grant for bob's gitspace at all.
        await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey: ed25519() });
        expect((await api.call('POST', `/gitspaces/${id}/access`, ada.token, { scope: 'ssh' })).status).toBe(404);
      } finally {
        await api.call('DELETE', `/users/me/ssh-keys/${added.body.id}`, api.adminToken);
      }
    });

    it('uses wss:// for a gateway served over https', async () => {
      const { id } = await runningGitspace(ada, 'tls', { url: 'https://gw.example.test/gitspaces/x/' });
      await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey: ed25519() });
      const granted = await api.call('POST', `/gitspaces/${id}/access`, ada.token, { scope: 'ssh' });
      expect(granted.body.url).toBe('wss://gw.example.test/gitspaces/x/_gitspaces/ssh');
    });

    it('answers 409 while the gitspace has no host key, and shows the host key on the gitspace', async () => {
      const { id } = await runningGitspace(ada, 'no-host-key', { hostKey: null });
      await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey: ed25519() });
      const refused = await api.call('POST', `/gitspaces/${id}/access`, ada.token, { scope: 'ssh' });
      expect(refused.status).toBe(409);
      expect(refused.body.error.message).toMatch(/no SSH host key.*up-to-date runner/);
      expect((await api.call('GET', `/gitspaces/${id}`, ada.token)).body.sshHostKey).toBeNull();
      await api.db.updateTable('gitspaces').set({ sshHostKey: HOST_KEY }).where('id', '=', id).execute();
      expect((await api.call('GET', `/gitspaces/${id}`, ada.token)).body.sshHostKey).toBe(HOST_KEY);
      expect((await api.call('POST', `/gitspaces/${id}/access`, ada.token, { scope: 'ssh' })).status).toBe(200);
    });

    it('answers 409 for a gitspace that is not running, whatever the scope', async () => {
      const { id } = await runningGitspace(ada, 'stopped');
      await api.store.changeState(id, { to: 'stopped', url: null, message: 'stopped', actor: { type: 'reconciler' } });
      await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey: ed25519() });
      for (const body of [undefined, { scope: 'ssh' }]) {
        const refused = await api.call('POST', `/gitspaces/${id}/access`, ada.token, body);
        expect({ body, status: refused.status }).toEqual({ body, status: 409 });
      }
    });

    it('keeps the browser grant as it was, with no body or scope browser', async () => {
      const { id, runId } = await runningGitspace(ada, 'browser');
      await api.call('POST', '/users/me/ssh-keys', ada.token, { publicKey: ed25519() });
      for (const body of [undefined, { scope: 'browser' }]) {
        const granted = await api.call('POST', `/gitspaces/${id}/access`, ada.token, body);
        expect(granted.status).toBe(200);
        expect(Object.keys(granted.body).sort()).toEqual(['expiresAt', 'token', 'url']);
        expect(granted.body.url).toBe(`http://127.0.0.1:1/gitspaces/${id}/?token=${granted.body.token}`);
        const claims = decodeJwt(granted.body.token);
        expect(claims).toMatchObject({ sub: ada.id, gitspace_id: id, run_id: runId, scope: 'browser' });
        expect(claims).not.toHaveProperty('ssh_keys');
      }
    });

    it.each([
      ['an unknown scope', { scope: 'shell' }, 'scope'],
      ['an unknown field', { scope: 'ssh', keys: ['SHA256:theirs'] }, 'keys'],
    ])('refuses %s with 400 naming the field', async (_what, body, path) => {
      const { id } = await runningGitspace(ada, `bad-body-${path}`);
      const refused = await api.call('POST', `/gitspaces/${id}/access`, ada.token, body);
      expect(refused.status).toBe(400);
      expect(refused.body.error.fields.map((f: { path: string }) => f.path)).toContain(path);
    });
  });
});
