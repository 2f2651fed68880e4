import { lifecycleWorkflowId } from '../contracts/lifecycle';
import { MAX_TOKENS_PER_USER } from '../db/stores/tokens';
import { startRouteHarness, type RouteHarness } from '../test/support/route-harness';

/**
 * Users and their API tokens (issue 14): what an administrator may do to a user, what a member may do to their own
 * tokens, and what a disabled, removed or revoked credential gets. PGlite and the real app; Temporal faked.
 */
describe('users and tokens', () => {
  let api: RouteHarness;
  let admin: string;
  const call = (method: string, route: string, token: string | undefined, body?: unknown) =>
    api.call(method, route, token, body);

  beforeAll(async () => {
    api = await startRouteHarness();
    admin = api.adminToken;
  });
  afterAll(async () => {
    await api?.close();
  });

  const adminId = async () => (await api.store.findUserByName('admin'))!.id;
  const newToken = async (owner: string, token: string, name?: string) => {
    const created = await call('POST', `/users/${owner}/tokens`, token, name === undefined ? {} : { name });
    expect(created.status).toBe(201);
    return created.body as { id: string; name?: string; token: string; createdAt: string };
  };

  it('refuses a member every administration of users (403), but lists them themselves', async () => {
    const ada = await api.member('ada-member');
    const bob = await api.member('bob-member');
    for (const [method, route, body] of [
      ['POST', '/users', { name: 'mallory' }],
      ['PATCH', `/users/${bob.id}`, { disabled: true }],
      ['PATCH', '/users/me', { role: 'admin' }],
      ['DELETE', `/users/${bob.id}`, undefined],
    ] as const) {
      const response = await call(method, route, ada.token, body);
      expect([method, route, response.status, response.body.error.code]).toEqual([method, route, 403, 'forbidden']);
    }
    expect((await api.store.getUser(ada.id)).role).toBe('member');
    const listed = await call('GET', '/users?include=deleted', ada.token);
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((u: { id: string }) => u.id)).toEqual([ada.id]);
  });

  it('answers 400 with each field path for bad bodies and queries, and changes nothing', async () => {
    const ada = await api.member('ada-bodies');
    const cases: [string, string, unknown, string[]][] = [
      ['PATCH', `/users/${ada.id}`, {}, ['(body)']],
      ['PATCH', `/users/${ada.id}`, { disabled: 'yes', role: 'root', extra: 1 }, ['disabled', 'role', 'extra']],
      ['POST', '/users', { name: 'eve', email: 'not-an-address' }, ['email']],
      // RFC 5321: a local part of at most 64 characters.
      ['POST', '/users', { name: 'eve', email: `${'e'.repeat(65)}@example.test` }, ['email']],
      ['POST', `/users/${ada.id}/tokens`, { name: '' }, ['name']],
      ['POST', `/users/${ada.id}/tokens`, { name: 'a/b', secret: 'x' }, ['name', 'secret']],
      ['GET', '/users?include=everyone', undefined, ['query.include']],
    ];
    for (const [method, route, body, paths] of cases) {
      const response = await call(method, route, admin, body);
      expect([method, route, response.status]).toEqual([method, route, 400]);
      expect([...new Set(response.body.error.fields.map((f: { path: string }) => f.path))].sort()).toEqual(
        [...paths].sort(),
      );
    }
    expect(await api.store.findUserByName('eve')).toBeUndefined();
    expect(await api.store.listTokens(ada.id)).toHaveLength(1);
    expect((await api.store.getUser(ada.id)).disabledAt).toBeNull();
  });

  it('answers 404 for a user that does not exist, on every route that names one', async () => {
    for (const [method, route, body] of [
      ['PATCH', '/users/usr_nobody', { disabled: true }],
      ['DELETE', '/users/usr_nobody', undefined],
      ['GET', '/users/usr_nobody/tokens', undefined],
      ['POST', '/users/usr_nobody/tokens', {}],
      ['DELETE', '/users/usr_nobody/tokens/tok_nothing', undefined],
    ] as const) {
      const response = await call(method, route, admin, body);
      expect([method, route, response.status, response.body.error.message]).toEqual([
        method,
        route,
        404,
        "user 'usr_nobody' does not exist",
      ]);
    }
  });

  it('lets an administrator neither disable, demote nor remove themselves (409), by id or as me', async () => {
    const me = await adminId();
    for (const [method, route, body, verb] of [
      ['PATCH', `/users/${me}`, { disabled: true }, 'disable'],
      ['PATCH', '/users/me', { role: 'member' }, 'demote'],
      ['DELETE', `/users/${me}`, undefined, 'remove'],
      ['DELETE', '/users/me', undefined, 'remove'],
    ] as const) {
      const response = await call(method, route, admin, body);
      expect([route, response.status, response.body.error.message]).toEqual([
        route,
        409,
        `you cannot ${verb} yourself; another administrator can`,
      ]);
    }
    const self = await api.store.getUser(me);
    expect([self.role, self.disabledAt, self.deletedAt]).toEqual(['admin', null, null]);
    // Asking for what already holds is no change, and allowed.
    expect((await call('PATCH', '/users/me', admin, { role: 'admin', disabled: false })).status).toBe(200);
    expect((await call('GET', '/users', admin)).status).toBe(200);
  });

  it('never takes away the last active administrator, even when two administrators demote each other at once', async () => {
    const me = await adminId();
    const root = await api.member('root-a');
    expect((await call('PATCH', `/users/${root.id}`, admin, { role: 'admin' })).body.role).toBe('admin');
    // Root's request gets past the door as an administrator, then waits while the admin demotes root.
    const lookup = api.store.findUserByToken;
    let passedTheDoor!: () => void;
    const atTheDoor = new Promise<void>((resolve) => (passedTheDoor = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    api.store.findUserByToken = async (token) => {
      const user = await lookup(token);
      if (token === root.token) {
        passedTheDoor();
        await gate;
      }
      return user;
    };
    try {
      const theirs = call('PATCH', `/users/${me}`, root.token, { role: 'member' });
      await atTheDoor;
      expect((await call('PATCH', `/users/${root.id}`, admin, { role: 'member' })).status).toBe(200);
      release();
      const refused = await theirs;
      expect([refused.status, refused.body.error.message]).toEqual([
        409,
        "'admin' is the last active administrator; make another user an administrator before you demote them",
      ]);
    } finally {
      api.store.findUserByToken = lookup;
    }
    const admins = (await api.store.listUsers()).filter((u) => u.role === 'admin' && u.disabledAt === null);
    expect(admins.map((u) => u.id)).toEqual([me]);
  });

  it('counts only active administrators: a disabled one does not keep the last active one removable', async () => {
    const me = await adminId();
    const spare = await api.member('root-disabled');
    expect((await call('PATCH', `/users/${spare.id}`, admin, { role: 'admin' })).status).toBe(200);
    expect((await call('PATCH', `/users/${spare.id}`, admin, { disabled: true })).status).toBe(200);
    // Asked by the disabled administrator (whose stale request got past the door): refused, the admin is the last.
    for (const change of [{ role: 'member' as const }, { disabled: true }]) {
      await expect(api.store.updateUser(me, change, spare.id)).rejects.toThrow(
        "'admin' is the last active administrator; make another user an administrator before you",
      );
    }
    await expect(api.store.removeUser(me, spare.id)).rejects.toThrow("'admin' is the last active administrator");
    expect((await api.store.getUser(me)).role).toBe('admin');
  });

  it("lets a member manage their own tokens (me or their id), never another's (404), and shows no secret", async () => {
    const ada = await api.member('ada-tokens');
    const bob = await api.member('bob-tokens');
    const laptop = await newToken('me', ada.token, 'laptop');
    const ci = await newToken(ada.id, ada.token);
    expect(laptop).toEqual({
      id: expect.any(String),
      name: 'laptop',
      token: expect.any(String),
      createdAt: expect.any(String),
    });
    expect(ci.name).toBeUndefined();
    const listed = await call('GET', '/users/me/tokens', ada.token);
    expect(listed.status).toBe(200);
    expect(listed.body.items).toHaveLength(3);
    for (const item of listed.body.items) {
      expect(Object.keys(item).sort()).toEqual(expect.arrayContaining(['createdAt', 'id']));
      expect(Object.keys(item).every((key) => ['id', 'name', 'createdAt', 'lastUsedAt'].includes(key))).toBe(true);
    }
    expect(JSON.stringify(listed.body)).not.toContain(laptop.token);

    // Bob, by Ada's id: as if Ada did not exist; her token is untouched.
    for (const [method, route, body] of [
      ['GET', `/users/${ada.id}/tokens`, undefined],
      ['POST', `/users/${ada.id}/tokens`, {}],
      ['DELETE', `/users/${ada.id}/tokens/${laptop.id}`, undefined],
    ] as const) {
      const response = await call(method, route, bob.token, body);
      expect([method, route, response.status, response.body.error.message]).toEqual([
        method,
        route,
        404,
        `user '${ada.id}' does not exist`,
      ]);
    }
    // Bob, Ada's token id under his own user: no such token of his.
    const underBob = await call('DELETE', `/users/me/tokens/${laptop.id}`, bob.token);
    expect([underBob.status, underBob.body.error.message]).toEqual([404, `token '${laptop.id}' does not exist`]);
    expect((await call('GET', '/users', laptop.token)).status).toBe(200);
    expect(await api.store.listTokens(ada.id)).toHaveLength(3);

    // The administrator manages anyone's.
    const byAdmin = await newToken(ada.id, admin, 'from-admin');
    expect((await call('GET', `/users/${ada.id}/tokens`, admin)).body.items).toHaveLength(4);
    expect((await call('DELETE', `/users/${ada.id}/tokens/${byAdmin.id}`, admin)).status).toBe(204);
    expect((await call('GET', '/users', byAdmin.token)).status).toBe(401);
  });

  it('refuses a revoked token at once (401), the one revoking itself too; rotation keeps the new one working', async () => {
    const ada = await api.member('ada-rotates');
    const old = await newToken('me', ada.token, 'old');
    const successor = await newToken('me', old.token, 'new');
    expect((await call('GET', '/users', old.token)).status).toBe(200);
    const revoked = await call('DELETE', `/users/me/tokens/${old.id}`, old.token);
    expect(revoked.status).toBe(204);
    const after = await call('GET', '/users', old.token);
    expect([after.status, after.body.error.message]).toEqual([401, 'the API token is not valid']);
    expect((await call('GET', '/users', successor.token)).status).toBe(200);
    expect((await call('DELETE', `/users/me/tokens/${old.id}`, successor.token)).status).toBe(404);
  });

  it("refuses a disabled user's tokens with 401 'user is disabled' until enabled again", async () => {
    const ada = await api.member('ada-disabled');
    expect((await call('GET', '/users', ada.token)).status).toBe(200);
    const disabled = await call('PATCH', `/users/${ada.id}`, admin, { disabled: true });
    expect(disabled.status).toBe(200);
    expect(disabled.body).toMatchObject({ id: ada.id, disabled: true });
    for (const route of ['/users', '/gitspaces', '/users/me/tokens']) {
      const refused = await call('GET', route, ada.token);
      expect([route, refused.status, refused.body.error.message]).toEqual([route, 401, 'user is disabled']);
    }
    const listed = (await call('GET', '/users', admin)).body.items.find((u: { id: string }) => u.id === ada.id);
    expect(listed.disabled).toBe(true);
    expect((await call('PATCH', `/users/${ada.id}`, admin, { disabled: false })).body.disabled).toBe(false);
    expect((await call('GET', '/users', ada.token)).status).toBe(200);
  });

  it('invites by e-mail: listed with it; one live user per address', async () => {
    const created = await call('POST', '/users', admin, { name: 'grace', email: 'Grace@Example.test' });
    expect(created.status).toBe(201);
    expect(created.body.user).toMatchObject({ name: 'grace', email: 'Grace@Example.test', disabled: false });
    const listed = (await call('GET', '/users', admin)).body.items.find((u: { name: string }) => u.name === 'grace');
    expect(listed).toEqual({
      id: created.body.user.id,
      name: 'grace',
      role: 'member',
      email: 'Grace@Example.test',
      disabled: false,
      createdAt: expect.any(String),
    });
    const taken = await call('POST', '/users', admin, { name: 'grace' });
    expect([taken.status, taken.body.error.message]).toEqual([409, "a user named 'grace' already exists"]);
    const again = await call('POST', '/users', admin, { name: 'grace2', email: 'grace@example.test' });
    expect([again.status, again.body.error.message]).toEqual([
      409,
      "user 'grace' already has the e-mail grace@example.test",
    ]);
  });

  it('notes when a token was last used, at most once a minute', async () => {
    const ada = await api.member('ada-last-used');
    const [token] = await api.store.listTokens(ada.id);
    expect(token!.lastUsedAt).toBeNull();
    await call('GET', '/users', ada.token);
    const first = (await api.store.listTokens(ada.id))[0]!.lastUsedAt;
    expect(first).toBeInstanceOf(Date);
    await call('GET', '/users', ada.token);
    expect((await api.store.listTokens(ada.id))[0]!.lastUsedAt).toEqual(first);
    // Two minutes later (the row moved back), the next use writes it again.
    await api.db
      .updateTable('apiTokens')
      .set({ lastUsedAt: new Date(Date.now() - 120_000) })
      .where('id', '=', token!.id)
      .execute();
    await call('GET', '/users', ada.token);
    expect((await api.store.listTokens(ada.id))[0]!.lastUsedAt!.getTime()).toBeGreaterThan(Date.now() - 30_000);
    const listed = await call('GET', '/users/me/tokens', ada.token);
    expect(listed.body.items[0].lastUsedAt).toEqual(expect.any(String));
  });

  it(`holds at most ${MAX_TOKENS_PER_USER} tokens per user (403 quota_exceeded)`, async () => {
    const ada = await api.member('ada-hoarder');
    for (let i = 1; i < MAX_TOKENS_PER_USER; i++) await newToken('me', ada.token);
    const refused = await call('POST', '/users/me/tokens', ada.token, {});
    expect([refused.status, refused.body.error.code]).toEqual([403, 'quota_exceeded']);
    expect(await api.store.listTokens(ada.id)).toHaveLength(MAX_TOKENS_PER_USER);
  });

  it('removes a user: refused at once, hidden from the list, gitspaces stopped by the administrator and kept', async () => {
    const ada = await api.member('ada-leaves');
    const extra = await newToken('me', ada.token, 'extra');
    const create = async (name: string, start: boolean) => {
      const created = await call('POST', '/gitspaces', ada.token, {
        name,
        repository: { url: 'https://git.example.test/org/repo.git' },
        infrastructureId: 'local',
        machineId: 'local-default',
        start,
      });
      expect(created.status).toBe(201);
      return created.body.gitspace.id as string;
    };
    const running = await create('running-one', true);
    await api.store.changeState(running, { to: 'running', message: 'running (test)', actor: { type: 'reconciler' } });
    api.fake.finish(lifecycleWorkflowId(running));
    const stopped = await create('stopped-one', false);

    const removed = await call('DELETE', `/users/${ada.id}`, admin);
    expect(removed.status).toBe(202);
    expect(removed.body).toMatchObject({
      user: { id: ada.id, name: 'ada-leaves', deleted: true },
      stopped: [{ id: running, name: 'running-one', operation: { action: 'stop', status: 'running' } }],
      notStopped: [],
    });

    // Refused everywhere, with every token.
    for (const token of [ada.token, extra.token]) {
      const refused = await call('GET', '/gitspaces', token);
      expect([refused.status, refused.body.error.code]).toEqual([401, 'unauthenticated']);
    }
    expect(await api.store.listTokens(ada.id)).toEqual([]);
    // Hidden from the list, shown when asked, and no longer something to change.
    const names = async (route: string) =>
      (await call('GET', route, admin)).body.items.map((u: { name: string }) => u.name);
    expect(await names('/users')).not.toContain('ada-leaves');
    const all = (await call('GET', '/users?include=deleted', admin)).body.items;
    expect(all.find((u: { id: string }) => u.id === ada.id)).toMatchObject({ deleted: true });
    expect((await call('PATCH', `/users/${ada.id}`, admin, { disabled: false })).status).toBe(404);
    expect((await call('DELETE', `/users/${ada.id}`, admin)).status).toBe(404);
    expect((await call('POST', `/users/${ada.id}/tokens`, admin, {})).status).toBe(404);
    // Their name stays theirs: the records of their gitspaces name them.
    const sameName = await call('POST', '/users', admin, { name: 'ada-leaves' });
    expect([sameName.status, sameName.body.error.message]).toEqual([
      409,
      "a removed user was named 'ada-leaves', and their gitspaces' records still name them; choose another name",
    ]);

    // The stop went through the lifecycle, asked by the administrator.
    const stop = api.fake.runs.filter((r) => r.workflowId === lifecycleWorkflowId(running)).at(-1)!;
    expect(stop.type).toBe('stopGitspace');
    expect(stop.args[0]).toMatchObject({
      gitspaceId: running,
      actor: { type: 'user', id: await adminId(), name: 'admin' },
    });
    const events = (await call('GET', `/gitspaces/${running}/events`, admin)).body.items;
    expect(events.at(-1)).toMatchObject({ message: 'stop requested', actor: { type: 'user', name: 'admin' } });
    expect(api.fake.runs.some((r) => r.workflowId === lifecycleWorkflowId(stopped))).toBe(false);

    // Kept: the administrator sees both, and may start them once stopped.
    const visible = (await call('GET', '/gitspaces', admin)).body.items.filter(
      (g: { owner: string }) => g.owner === ada.id,
    );
    expect(visible.map((g: { id: string; state: string }) => [g.id, g.state]).sort()).toEqual(
      [
        [running, 'stopping'],
        [stopped, 'stopped'],
      ].sort(),
    );
    await api.store.changeState(running, { to: 'stopped', message: 'stopped (test)', actor: { type: 'reconciler' } });
    api.fake.finish(lifecycleWorkflowId(running));
    for (const id of [running, stopped]) {
      const started = await call('POST', `/gitspaces/${id}/actions`, admin, { action: 'start' });
      expect([id, started.status, started.body.operation?.action]).toEqual([id, 202, 'start']);
    }
  });
});
