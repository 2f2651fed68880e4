import { startRouteHarness, type RouteHarness } from '../test/support/route-harness';

/**
 * The auto-stop policy through the API (api/routes/auto-stop.ts): per infrastructure (the default) and per gitspace,
 * checked before anything changes. PGlite and the real app; Temporal faked.
 */
describe('auto-stop policy', () => {
  let api: RouteHarness;
  let admin: string;
  let ada: { id: string; token: string };
  let bob: { id: string; token: string };

  /** The gitspaces whose watcher was asked to look again. */
  const rechecked: string[] = [];

  beforeAll(async () => {
    api = await startRouteHarness({
      autoStop: { minSeconds: 60, recheck: async (gitspaceId) => void rechecked.push(gitspaceId) },
    });
    admin = api.adminToken;
    ada = await api.member('ada');
    bob = await api.member('bob');
  });
  afterAll(async () => {
    await api?.close();
  });

  const create = (token: string, name: string, autoStop?: unknown) =>
    api.call('POST', '/gitspaces', token, {
      name,
      repository: { url: 'https://git.example.test/org/repo.git' },
      infrastructureId: 'local',
      machineId: 'local-default',
      start: false,
      ...(autoStop !== undefined ? { autoStop } : {}),
    });

  it('gives a new infrastructure an hour of idle time; only an admin changes it, and not below the minimum', async () => {
    const created = await api.call('POST', '/infrastructures', admin, {
      name: 'eu',
      provider: 'local',
      gatewayUrl: 'https://gateway.example.test',
    });
    expect(created.status).toBe(201);
    expect(created.body.autoStop).toEqual({ idleTimeoutSeconds: 3600, maxLifetimeSeconds: null });
    const patch = (token: string, autoStop: unknown) => api.call('PATCH', '/infrastructures/eu', token, { autoStop });
    expect((await patch(ada.token, { maxLifetimeSeconds: 28800 })).status).toBe(403);
    const tooShort = await patch(admin, { idleTimeoutSeconds: 30, maxLifetimeSeconds: 28800 });
    expect(tooShort.status).toBe(400);
    expect(tooShort.body.error.fields).toEqual([
      expect.objectContaining({ path: 'autoStop.idleTimeoutSeconds', message: expect.stringContaining('60') }),
    ]);
    expect((await api.store.getInfrastructure('eu')).autoStopMaxLifetimeSeconds).toBeNull();
    const changed = await patch(admin, { maxLifetimeSeconds: 28800 });
    expect(changed.status).toBe(200);
    expect(changed.body.autoStop).toEqual({ idleTimeoutSeconds: 3600, maxLifetimeSeconds: 28800 });
  });

  it('refuses a gitspace whose auto-stop is below the minimum or not a whole number of seconds, and creates nothing', async () => {
    const before = (await api.store.listGitspaces({})).length;
    for (const [autoStop, path] of [
      [{ idleTimeoutSeconds: 59 }, 'autoStop.idleTimeoutSeconds'],
      [{ maxLifetimeSeconds: -1 }, 'autoStop.maxLifetimeSeconds'],
      [{ idleTimeoutSeconds: 90.5 }, 'autoStop.idleTimeoutSeconds'],
      [{ idleTimeoutSeconds: '30m' }, 'autoStop.idleTimeoutSeconds'],
    ] as const) {
      const refused = await create(ada.token, 'refused', autoStop);
      expect([refused.status, refused.body.error.fields?.map((f: { path: string }) => f.path)]).toEqual([400, [path]]);
    }
    expect(await api.store.listGitspaces({})).toHaveLength(before);
  });

  it("shows a gitspace's effective auto-stop and where each value comes from; its owner changes it", async () => {
    const created = await create(ada.token, 'policy', { idleTimeoutSeconds: 1800, maxLifetimeSeconds: 0 });
    expect(created.status).toBe(201);
    const id = created.body.gitspace.id as string;
    expect(created.body.gitspace.autoStop).toEqual({
      idleTimeout: { seconds: 1800, source: 'gitspace' },
      maxLifetime: { seconds: null, source: 'gitspace' },
    });
    const patch = (token: string, autoStop: unknown) => api.call('PATCH', `/gitspaces/${id}`, token, { autoStop });
    expect((await patch(bob.token, { idleTimeoutSeconds: 0 })).status).toBe(404);
    const bad = await patch(ada.token, { idleTimeoutSeconds: 0, maxLifetimeSeconds: 10 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields).toEqual([expect.objectContaining({ path: 'autoStop.maxLifetimeSeconds' })]);
    expect((await api.call('GET', `/gitspaces/${id}`, ada.token)).body.autoStop.idleTimeout).toEqual({
      seconds: 1800,
      source: 'gitspace',
    });
    // null gives back the infrastructure's value; a field left out stays.
    const changed = await patch(ada.token, { idleTimeoutSeconds: null });
    expect(changed.status).toBe(200);
    expect(changed.body.autoStop).toEqual({
      idleTimeout: { seconds: 3600, source: 'infrastructure' },
      maxLifetime: { seconds: null, source: 'gitspace' },
    });
    expect(
      (await api.call('PATCH', `/gitspaces/${id}`, admin, { autoStop: { maxLifetimeSeconds: 7200 } })).status,
    ).toBe(200);
    expect((await api.call('GET', `/gitspaces/${id}`, ada.token)).body.autoStop.maxLifetime).toEqual({
      seconds: 7200,
      source: 'gitspace',
    });
    // Each change is an event naming who made it; the refused ones left none.
    const events = (await api.call('GET', `/gitspaces/${id}/events`, ada.token)).body.items;
    expect(
      events.filter((e: { type: string }) => e.type === 'auto-stop-policy').map((e: any) => [e.actor.name, e.message]),
    ).toEqual([
      ['ada', "auto-stop changed: idle timeout the infrastructure's"],
      ['admin', 'auto-stop changed: maximum lifetime 7200 s'],
    ]);
  });

  it("has a running gitspace's watcher look again when its own or its infrastructure's policy changes", async () => {
    const running = (await create(ada.token, 'watched')).body.gitspace.id as string;
    const stopped = (await create(ada.token, 'asleep')).body.gitspace.id as string;
    await api.store.changeState(running, { to: 'running', actor: { type: 'reconciler' }, message: 'running' });
    rechecked.length = 0;
    expect(
      (await api.call('PATCH', `/gitspaces/${running}`, ada.token, { autoStop: { idleTimeoutSeconds: 600 } })).status,
    ).toBe(200);
    expect(
      (await api.call('PATCH', `/gitspaces/${stopped}`, ada.token, { autoStop: { idleTimeoutSeconds: 600 } })).status,
    ).toBe(200);
    expect(rechecked).toEqual([running]);
    rechecked.length = 0;
    // A new default of the infrastructure reaches the watchers of its running gitspaces; other changes do not.
    expect(
      (await api.call('PATCH', '/infrastructures/local', admin, { gatewayUrl: 'http://127.0.0.1:1' })).status,
    ).toBe(200);
    expect(rechecked).toEqual([]);
    expect(
      (await api.call('PATCH', '/infrastructures/local', admin, { autoStop: { maxLifetimeSeconds: 7200 } })).status,
    ).toBe(200);
    expect(rechecked).toEqual([running]);
  });
});
