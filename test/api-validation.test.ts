import { RunnerPublicKey } from '../common/sealed-secret';
import { decodeJwt } from 'jose';
import { startTestStack, type TestStack } from './support/stack';

/** Bad input on every POST: a 400 with field paths, and nothing created. No runner is needed: nothing may start. */
describe('REST API input validation', () => {
  let stack: TestStack;
  const valid = {
    name: 'ok',
    repository: { url: 'https://git.example.test/org/repo.git' },
    infrastructureId: 'local',
    machineId: 'local-default',
    start: false,
  };

  beforeAll(async () => {
    stack = await startTestStack({ runner: false });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const countGitspaces = async () => (await stack.api('GET', '/api/v1/gitspaces')).body.items.length as number;

  it.each([
    ['a missing name', { ...valid, name: undefined }, 'name'],
    ['a name with a path separator', { ...valid, name: '../etc' }, 'name'],
    ['a name with a control character', { ...valid, name: 'a\u0007b' }, 'name'],
    ['a wrong type', { ...valid, start: 'yes' }, 'start'],
    ['an unknown field', { ...valid, color: 'red' }, 'color'],
    ['a missing repository', { ...valid, repository: undefined }, 'repository'],
    ['a file:// repository', { ...valid, repository: { url: 'file:///etc' } }, 'repository.url'],
    ['an ext:: repository', { ...valid, repository: { url: 'ext::sh -c touch% /tmp/pwned' } }, 'repository.url'],
    ['a local path as repository', { ...valid, repository: { url: '/var/lib/secret' } }, 'repository.url'],
    ['an option as repository', { ...valid, repository: { url: '--upload-pack=touch /tmp/x' } }, 'repository.url'],
    [
      'a password inside the URL',
      { ...valid, repository: { url: 'https://u:p@git.example.test/r.git' } },
      'repository.url',
    ],
    [
      'an option as branch',
      { ...valid, repository: { ...valid.repository, branch: '--upload-pack=x' } },
      'repository.branch',
    ],
    ['an unknown IDE', { ...valid, ide: 'emacs' }, 'ide'],
    ['an unknown infrastructure', { ...valid, infrastructureId: 'nowhere' }, 'infrastructureId'],
    ['an unknown machine', { ...valid, machineId: 'local-huge' }, 'machineId'],
  ])('refuses a gitspace with %s', async (_what, body, path) => {
    const before = await countGitspaces();
    const response = await stack.api('POST', '/api/v1/gitspaces', body);
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe('invalid_request');
    expect(response.body.error.fields.map((f: { path: string }) => f.path)).toContain(path);
    expect(await countGitspaces()).toBe(before);
  });

  it.each(['https', 'http', 'ssh', 'git'])('accepts a %s:// repository', async (scheme) => {
    const response = await stack.api('POST', '/api/v1/gitspaces', {
      ...valid,
      name: `ok-${scheme}`,
      repository: { url: `${scheme}://git.example.test/org/repo.git` },
    });
    expect(response.status).toBe(201);
    expect(response.body.gitspace.state).toBe('stopped');
    expect(response.body.operation).toBeUndefined();
  });

  it('never returns the repository token', async () => {
    const response = await stack.api('POST', '/api/v1/gitspaces', {
      ...valid,
      name: 'secret',
      repository: { ...valid.repository, token: 'ghp_supersecret' },
    });
    expect(response.status).toBe(201);
    expect(response.body.gitspace.repository).toEqual({ url: valid.repository.url, hasToken: true });
    const listed = await stack.api('GET', '/api/v1/gitspaces');
    expect(JSON.stringify(listed.body)).not.toContain('ghp_supersecret');
    const stored = await stack.controlPlane.store.getGitspace(response.body.gitspace.id);
    // Sealed to the `local` infrastructure's runner key, which the API holds only the public half of.
    const [runnerKey] = (await stack.api('GET', '/api/v1/infrastructures/local')).body.runnerPublicKeys;
    expect(stored.repositoryTokenSealed).toMatch(new RegExp(`^sealed:v2:${RunnerPublicKey.parse(runnerKey).keyId}:`));
  });

  it('refuses malformed JSON, a non-JSON body and an oversized body with 400', async () => {
    const before = await countGitspaces();
    const malformed = await stack.api('POST', '/api/v1/gitspaces', '{"name": ');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.message).toBe('the request body is not valid JSON');
    const text = await fetch(`${stack.controlPlane.url}/api/v1/gitspaces`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.controlPlane.adminToken}`, 'content-type': 'text/plain' },
      body: 'name=x',
    });
    expect(text.status).toBe(400);
    const huge = await stack.api('POST', '/api/v1/gitspaces', { ...valid, name: 'huge', padding: 'x'.repeat(200_000) });
    expect(huge.status).toBe(400);
    expect(huge.body.error.message).toContain('too large');
    expect(await countGitspaces()).toBe(before);
  });

  it('validates users, infrastructures and machines with field paths, and creates nothing', async () => {
    const user = await stack.api('POST', '/api/v1/users', { name: 'Has Spaces' });
    expect(user.status).toBe(400);
    expect(user.body.error.fields[0].path).toBe('name');

    const infra = await stack.api('POST', '/api/v1/infrastructures', {
      name: 'gcp-eu',
      provider: 'gcp',
      config: { project: '' },
      gatewayUrl: 'http://127.0.0.1:3001',
    });
    expect(infra.status).toBe(400);
    expect(infra.body.error.fields.map((f: { path: string }) => f.path)).toEqual(
      expect.arrayContaining(['config.project', 'config.region']),
    );
    const badProvider = await stack.api('POST', '/api/v1/infrastructures', {
      name: 'x',
      provider: 'azure',
      gatewayUrl: 'ftp://x',
    });
    expect(badProvider.status).toBe(400);
    expect(badProvider.body.error.fields.map((f: { path: string }) => f.path)).toEqual(['provider', 'gatewayUrl']);
    expect((await stack.api('GET', '/api/v1/infrastructures')).body.items.map((i: { id: string }) => i.id)).toEqual([
      'local',
    ]);

    const machine = await stack.api('POST', '/api/v1/infrastructures/local/machines', {
      name: 'big',
      machineType: 'local',
      diskSizeGb: 'ten',
    });
    expect(machine.status).toBe(400);
    expect(machine.body.error.fields[0].path).toBe('diskSizeGb');
    const unknownInfra = await stack.api('POST', '/api/v1/infrastructures/nowhere/machines', {
      name: 'big',
      machineType: 'local',
      diskSizeGb: 10,
    });
    expect(unknownInfra.status).toBe(404);
    expect((await stack.api('GET', '/api/v1/infrastructures/local/machines')).body.items).toHaveLength(1);
  });

  it('validates actions: unknown action 400, unknown gitspace 404, missing token 401', async () => {
    const created = await stack.api('POST', '/api/v1/gitspaces', { ...valid, name: 'actions' });
    const id = created.body.gitspace.id;
    const unknown = await stack.api('POST', `/api/v1/gitspaces/${id}/actions`, { action: 'explode' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.fields[0].path).toBe('action');
    expect((await stack.api('POST', '/api/v1/gitspaces/gs-nope/actions', { action: 'start' })).status).toBe(404);
    const anonymous = await fetch(`${stack.controlPlane.url}/api/v1/gitspaces`);
    expect(anonymous.status).toBe(401);
    // A token in the query string is not a way in: tokens belong in the Authorization header.
    const inQuery = await fetch(`${stack.controlPlane.url}/api/v1/gitspaces?token=${stack.controlPlane.adminToken}`);
    expect(inQuery.status).toBe(401);
    expect((await stack.api('GET', `/api/v1/gitspaces/${id}`)).body.state).toBe('stopped');
  });

  it('creates an infrastructure with a machine, and refuses to delete it while a gitspace uses it', async () => {
    const infra = await stack.api('POST', '/api/v1/infrastructures', {
      name: 'lab',
      provider: 'local',
      gatewayUrl: 'http://127.0.0.1:3001/',
    });
    expect(infra.status).toBe(201);
    expect(infra.body).toMatchObject({
      id: 'lab',
      taskQueue: 'gitspaces-infra-lab',
      gatewayUrl: 'http://127.0.0.1:3001',
    });
    expect(
      (
        await stack.api('POST', '/api/v1/infrastructures', {
          name: 'lab',
          provider: 'local',
          gatewayUrl: 'http://127.0.0.1:3001',
        })
      ).status,
    ).toBe(409);
    const machine = await stack.api('POST', '/api/v1/infrastructures/lab/machines', {
      name: 'small',
      machineType: 'local',
      diskSizeGb: 20,
    });
    expect(machine.status).toBe(201);
    const gitspace = await stack.api('POST', '/api/v1/gitspaces', {
      ...valid,
      name: 'lab-space',
      infrastructureId: 'lab',
      machineId: machine.body.id,
    });
    expect(gitspace.status).toBe(201);
    const mismatch = await stack.api('POST', '/api/v1/gitspaces', {
      ...valid,
      name: 'mismatch',
      infrastructureId: 'local',
      machineId: machine.body.id,
    });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.error.fields[0].path).toBe('machineId');
    const deletion = await stack.api('DELETE', '/api/v1/infrastructures/lab');
    expect(deletion.status).toBe(409);
    expect(deletion.body.error.message).toContain("'lab-space'");
    const patched = await stack.api('PATCH', '/api/v1/infrastructures/lab', { gatewayUrl: 'https://gw.example.test' });
    expect(patched.body.gatewayUrl).toBe('https://gw.example.test');
  });

  it('answers 405 with Allow for a method a path does not serve', async () => {
    const response = await stack.api('PUT', '/api/v1/gitspaces', {});
    expect(response.status).toBe(405);
    expect(response.body.error.code).toBe('method_not_allowed');
    const raw = await fetch(`${stack.controlPlane.url}/api/v1/infrastructures/local`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.controlPlane.adminToken}` },
    });
    expect(raw.headers.get('allow')).toBe('GET, PATCH, DELETE');
  });

  it('serves an OpenAPI 3.1 document that describes every route', async () => {
    const response = await fetch(`${stack.controlPlane.url}/api/v1/openapi.json`);
    const doc = (await response.json()) as any;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/gitspaces',
        '/gitspaces/{id}/actions',
        '/gitspaces/{id}/access',
        '/infrastructures/{id}/machines',
      ]),
    );
    expect(doc.paths['/gitspaces'].post.requestBody.content['application/json'].schema.required).toEqual(
      expect.arrayContaining(['name', 'repository', 'infrastructureId', 'machineId']),
    );
    expect((await fetch(`${stack.controlPlane.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${stack.controlPlane.url}/readyz`)).status).toBe(200);
  });

  // Issue 10, finding 7: an invalid gzip body and a NUL in a path id gave 500.
  it('answers 400 to a compressed body that does not inflate, and creates nothing', async () => {
    const before = await countGitspaces();
    for (const encoding of ['gzip', 'deflate', 'br']) {
      const response = await fetch(`${stack.controlPlane.url}/api/v1/gitspaces`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${stack.controlPlane.adminToken}`,
          'content-type': 'application/json',
          'content-encoding': encoding,
        },
        body: 'this is not compressed at all',
      });
      expect([encoding, response.status]).toEqual([encoding, 400]);
      expect(((await response.json()) as any).error.code).toBe('invalid_request');
    }
    const gzipped = await fetch(`${stack.controlPlane.url}/api/v1/gitspaces`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${stack.controlPlane.adminToken}`,
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      },
      body: require('node:zlib').gzipSync(JSON.stringify({ ...valid, name: 'gzipped' })),
    });
    expect(gzipped.status).toBe(201);
    expect(await countGitspaces()).toBe(before + 1);
  });

  it.each([
    ['GET', '/api/v1/gitspaces/%00'],
    ['GET', '/api/v1/gitspaces/gs-%00x'],
    ['GET', '/api/v1/gitspaces/%00/events'],
    ['POST', '/api/v1/gitspaces/%00/actions'],
    ['POST', '/api/v1/gitspaces/%00/access'],
    ['DELETE', '/api/v1/gitspaces/%00'],
    ['GET', '/api/v1/gitspaces/%07'],
    ['GET', '/api/v1/infrastructures/%00'],
    ['PATCH', '/api/v1/infrastructures/%00'],
    ['DELETE', '/api/v1/infrastructures/%00'],
    ['GET', '/api/v1/infrastructures/%00/machines'],
    ['POST', '/api/v1/infrastructures/%00/machines'],
  ])('answers 404 to %s %s (a control character in a path id)', async (method, route) => {
    const body =
      method === 'PATCH'
        ? { gatewayUrl: 'https://gw.example.test' }
        : method === 'POST' && route.endsWith('/machines')
          ? { name: 'x', machineType: 'local', diskSizeGb: 10 }
          : route.endsWith('/actions')
            ? { action: 'start' }
            : undefined;
    const response = await stack.api(method, route, body);
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe('not_found');
    expect(response.body.error.message).not.toContain('\u0000');
  });

  it('answers 400 to a path id that is not valid percent-encoding', async () => {
    const response = await stack.api('GET', '/api/v1/gitspaces/%E0%A4%A');
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe('invalid_request');
  });

  it('answers 400 to a NUL inside a JSON body, which PostgreSQL would refuse to store', async () => {
    const before = await countGitspaces();
    const ids = await stack.api('POST', '/api/v1/gitspaces', {
      ...valid,
      name: 'nul',
      infrastructureId: 'lo\u0000cal',
    });
    expect(ids.status).toBe(400);
    expect(ids.body.error.fields.map((f: { path: string }) => f.path)).toContain('infrastructureId');
    const machine = await stack.api('POST', '/api/v1/gitspaces', { ...valid, name: 'nul', machineId: '\u0000' });
    expect(machine.status).toBe(400);
    const gcp = {
      project: 'acme-dev-123',
      region: 'europe-west1',
      zones: ['europe-west1-b'],
      network: 'default',
      subnetwork: 'default',
      serviceAccount: 'runner@acme-dev-123.iam.gserviceaccount.com',
    };
    const infra = await stack.api('POST', '/api/v1/infrastructures', {
      name: 'nul-config',
      provider: 'gcp',
      config: { ...gcp, network: 'a\u0000b' },
      gatewayUrl: 'http://127.0.0.1:3001',
    });
    expect(infra.status).toBe(400);
    expect(infra.body.error.fields.map((f: { path: string }) => f.path)).toContain('config.network');
    const patched = await stack.api('PATCH', '/api/v1/infrastructures/local', { config: { '\u0000': 1 } });
    expect(patched.status).toBe(400);
    expect((await stack.api('GET', '/api/v1/infrastructures/nul-config')).status).toBe(404);
    expect(await countGitspaces()).toBe(before);
  });

  it('opens a running gitspace only with a token naming the start that made it running, and none without one', async () => {
    const id = (await stack.api('POST', '/api/v1/gitspaces', { ...valid, name: 'opened' })).body.gitspace.id as string;
    const { store } = stack.controlPlane;
    // Running by the record, but no start of it finished: there is no run a token could name.
    await store.changeState(id, {
      to: 'running',
      url: 'http://127.0.0.1:1/gs/opened/',
      message: 'running (test)',
      actor: { type: 'reconciler' },
    });
    const record = (runId: string) =>
      store.recordOperation({ gitspaceId: id, action: 'start', workflowId: `gitspace-${id}`, runId });
    const open = () => stack.api('POST', `/api/v1/gitspaces/${id}/access`);
    const none = await open();
    expect(none.status).toBe(409);
    expect(none.body.error.message).toBe("gitspace 'opened' has no finished start to open");
    await record('run-open-1');
    await store.updateOperation('run-open-1', { status: 'succeeded' });
    await record('run-open-2');
    expect((await open()).status).toBe(409);
    await store.updateOperation('run-open-2', { status: 'failed' });
    expect((await open()).status).toBe(409);
    await record('run-open-3');
    await store.updateOperation('run-open-3', { status: 'succeeded' });
    const opened = await open();
    expect(opened.status).toBe(200);
    expect(decodeJwt(opened.body.token)).toMatchObject({ gitspace_id: id, run_id: 'run-open-3' });
  });
});
