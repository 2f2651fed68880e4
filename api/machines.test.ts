import { startRouteHarness, type RouteHarness } from '../test/support/route-harness';

/**
 * Changing and removing an infrastructure's machines (issue 14): validated like a new machine, and never pulled from
 * under a gitspace that still uses it. PGlite and the real app; Temporal faked.
 */
describe('machines: change and removal', () => {
  let api: RouteHarness;
  let admin: string;
  let ada: { id: string; token: string };
  const call = (method: string, route: string, token: string | undefined, body?: unknown) =>
    api.call(method, route, token, body);

  const GCP = {
    name: 'gcp-eu',
    provider: 'gcp',
    gatewayUrl: 'https://gateway.example.test',
    config: {
      project: 'acme-dev-123',
      region: 'europe-west1',
      zones: ['europe-west1-b', 'europe-west1-c'],
      network: 'default',
      subnetwork: 'default',
      serviceAccount: 'gitspaces@acme-dev-123.iam.gserviceaccount.com',
    },
  };

  beforeAll(async () => {
    api = await startRouteHarness();
    admin = api.adminToken;
    ada = await api.member('ada');
    expect((await call('POST', '/infrastructures', admin, GCP)).status).toBe(201);
  });
  afterAll(async () => {
    await api?.close();
  });

  const machine = async (infrastructure: string, body: Record<string, unknown>) => {
    const created = await call('POST', `/infrastructures/${infrastructure}/machines`, admin, body);
    expect(created.status).toBe(201);
    return created.body as { id: string; name: string };
  };
  const gitspaceOn = async (machineId: string, name: string) => {
    const created = await call('POST', '/gitspaces', ada.token, {
      name,
      repository: { url: 'https://git.example.test/org/repo.git' },
      infrastructureId: 'local',
      machineId,
      start: false,
    });
    expect(created.status).toBe(201);
    return created.body.gitspace.id as string;
  };

  it('refuses a member (403) and changes nothing', async () => {
    const m = await machine('local', { name: 'members-cannot', machineType: 'local', diskSizeGb: 10 });
    const route = `/infrastructures/local/machines/${m.id}`;
    expect((await call('PATCH', route, ada.token, { diskSizeGb: 20 })).status).toBe(403);
    expect((await call('DELETE', route, ada.token)).status).toBe(403);
    expect((await api.store.getMachine(m.id)).diskSizeGb).toBe(10);
  });

  it("changes a machine's spec, validated by its provider like a new one (400 with field paths)", async () => {
    const m = await machine('gcp-eu', { name: 'std', machineType: 'e2-standard-4', diskSizeGb: 50 });
    const route = `/infrastructures/gcp-eu/machines/${m.id}`;
    const cases: [unknown, string[]][] = [
      [{}, ['(body)']],
      // The name is part of the id: not a field to change (and nothing else was given).
      [{ name: 'renamed' }, ['(body)', 'name']],
      [{ diskSizeGb: 5, machineType: '' }, ['diskSizeGb', 'machineType']],
      // The provider's own checks, with the same paths as at creation.
      [{ machineType: 'Huge_Machine' }, ['machineType']],
      [{ zone: 'us-east1-b' }, ['zone']],
      [{ image: 'ubuntu' }, ['image']],
    ];
    for (const [body, paths] of cases) {
      const response = await call('PATCH', route, admin, body);
      expect([body, response.status]).toEqual([body, 400]);
      const got = [...new Set(response.body.error.fields.map((f: { path: string }) => f.path))].sort();
      expect([body, got]).toEqual([body, [...paths].sort()]);
    }
    expect(await api.store.getMachine(m.id)).toMatchObject({
      machineType: 'e2-standard-4',
      diskSizeGb: 50,
      zone: null,
    });

    const changed = await call('PATCH', route, admin, {
      machineType: 'n2-standard-8',
      diskSizeGb: 100,
      zone: 'europe-west1-c',
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toEqual({
      id: m.id,
      infrastructureId: 'gcp-eu',
      name: 'std',
      machineType: 'n2-standard-8',
      diskSizeGb: 100,
      zone: 'europe-west1-c',
      warmPoolSize: 0,
      warmPool: { ready: 0, preparing: 0 },
      createdAt: expect.any(String),
    });
    // null clears an optional setting.
    expect((await call('PATCH', route, admin, { zone: null })).body.zone).toBeUndefined();
    const listed = (await call('GET', '/infrastructures/gcp-eu/machines', admin)).body.items;
    expect(listed.find((x: { id: string }) => x.id === m.id)).toMatchObject({
      machineType: 'n2-standard-8',
      diskSizeGb: 100,
    });
  });

  it('validates a change against the local provider too: it takes no image', async () => {
    const m = await machine('local', { name: 'no-image', machineType: 'local', diskSizeGb: 10 });
    const response = await call('PATCH', `/infrastructures/local/machines/${m.id}`, admin, { image: 'debian' });
    expect([response.status, response.body.error.fields]).toEqual([
      400,
      [{ path: 'image', message: 'the local provider runs on the runner host and takes no image' }],
    ]);
  });

  it('answers 404 for a machine that is not of the named infrastructure, or does not exist', async () => {
    const m = await machine('gcp-eu', { name: 'elsewhere', machineType: 'e2-small', diskSizeGb: 10 });
    for (const [method, route, body] of [
      ['PATCH', `/infrastructures/local/machines/${m.id}`, { diskSizeGb: 20 }],
      ['DELETE', `/infrastructures/local/machines/${m.id}`, undefined],
      ['PATCH', '/infrastructures/gcp-eu/machines/gcp-eu-nothing', { diskSizeGb: 20 }],
      ['DELETE', '/infrastructures/gcp-eu/machines/gcp-eu-nothing', undefined],
    ] as const) {
      const response = await call(method, route, admin, body);
      expect([method, route, response.status, response.body.error.code]).toEqual([method, route, 404, 'not_found']);
    }
    expect((await api.store.getMachine(m.id)).diskSizeGb).toBe(10);
  });

  it('refuses to remove a machine a gitspace that is not deleted uses (409 naming it), removes it once deleted', async () => {
    const m = await machine('local', { name: 'in-use', machineType: 'local', diskSizeGb: 10 });
    const route = `/infrastructures/local/machines/${m.id}`;
    const id = await gitspaceOn(m.id, 'holds-it');
    const refused = await call('DELETE', route, admin);
    expect([refused.status, refused.body.error.message]).toEqual([
      409,
      `machine '${m.id}' is used by 1 gitspace(s) that are not deleted: 'holds-it' (${id}, stopped); delete them first`,
    ]);
    expect((await api.store.getMachine(m.id)).id).toBe(m.id);

    await api.store.changeState(id, { to: 'deleted', message: 'deleted (test)', actor: { type: 'reconciler' } });
    expect((await call('DELETE', route, admin)).status).toBe(204);
    const listed = (await call('GET', '/infrastructures/local/machines', admin)).body.items;
    expect(listed.map((x: { id: string }) => x.id)).not.toContain(m.id);
    expect((await call('DELETE', route, admin)).status).toBe(404);
    expect((await call('PATCH', route, admin, { diskSizeGb: 20 })).status).toBe(404);
    // The deleted gitspace's record still names it; no new gitspace can use it, nor a new machine take its name.
    expect((await call('GET', `/gitspaces/${id}`, admin)).body).toMatchObject({ machineId: m.id, state: 'deleted' });
    const onRemoved = await call('POST', '/gitspaces', ada.token, {
      name: 'too-late',
      repository: { url: 'https://git.example.test/org/repo.git' },
      infrastructureId: 'local',
      machineId: m.id,
    });
    expect([onRemoved.status, onRemoved.body.error.fields]).toEqual([
      400,
      [{ path: 'machineId', message: 'does not exist' }],
    ]);
    const again = await call('POST', '/infrastructures/local/machines', admin, {
      name: 'in-use',
      machineType: 'local',
      diskSizeGb: 10,
    });
    expect(again.status).toBe(409);
    expect(again.body.error.message).toContain('was removed');
  });

  it('removes a machine no gitspace ever used entirely; its name can be used again', async () => {
    const m = await machine('local', { name: 'unused', machineType: 'local', diskSizeGb: 10 });
    expect((await call('DELETE', `/infrastructures/local/machines/${m.id}`, admin)).status).toBe(204);
    expect(await api.db.selectFrom('machines').select('id').where('id', '=', m.id).executeTakeFirst()).toBeUndefined();
    await machine('local', { name: 'unused', machineType: 'local', diskSizeGb: 20 });
  });

  it('counts every state but deleted as in use: an error or deleting gitspace holds its machine', async () => {
    const m = await machine('local', { name: 'busy', machineType: 'local', diskSizeGb: 10 });
    const failed = await gitspaceOn(m.id, 'failed-one');
    await api.store.changeState(failed, {
      to: 'error',
      message: 'failed (test)',
      actor: { type: 'reconciler' },
      lastError: { action: 'delete', step: 'deleteMachine', message: 'boom' },
    });
    const deleting = await gitspaceOn(m.id, 'going-one');
    await api.store.changeState(deleting, {
      to: 'deleting',
      message: 'deleting (test)',
      actor: { type: 'reconciler' },
    });
    const refused = await call('DELETE', `/infrastructures/local/machines/${m.id}`, admin);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/used by 2 gitspace\(s\).*'failed-one'.*error.*'going-one'.*deleting/);
  });
});
