import net from 'node:net';
import { ROUTE_SECRET_HEADER } from '../common/gateway-route';
import { GATEWAY_COOKIE } from './gateway';
import {
  newRouteSecret,
  startRecorder,
  startRouted,
  type Harness,
  type Recorder,
} from '../test/support/gateway-harness';

/**
 * Attacks on the admin listener (DESIGN.md §4: bearer shared secret, `PUT`/`DELETE /routes/:gitspaceId`,
 * `GET /routes`): whoever lacks the admin token, or sends a registration the gateway must not take, changes nothing —
 * the route keeps its target and secret, and the open connections of the running gitspace stay open.
 */

const ID = 'gs-alpha';

describe('the admin API', () => {
  let h: Harness;
  let upstream: Recorder;
  let decoy: Recorder;
  let secret: string;
  let token: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ h, upstream, secret, token, close } = await startRouted(ID));
    decoy = await startRecorder();
  });
  afterAll(async () => {
    await close();
    await decoy.close();
  });

  /** A keep-alive connection of the running gitspace that has carried one request (200). */
  async function openSession(): Promise<net.Socket> {
    const { hostname, port } = new URL(h.publicUrl);
    const socket = net.connect(Number(port), hostname);
    socket.on('error', () => undefined);
    const answered = new Promise<string>((resolve) => socket.once('data', (data) => resolve(data.toString('latin1'))));
    socket.write(`GET /gitspaces/${ID}/ HTTP/1.1\r\nHost: x\r\nCookie: ${GATEWAY_COOKIE}=${token}\r\n\r\n`);
    expect(await answered).toMatch(/^HTTP\/1\.1 200 /);
    return socket;
  }

  /** The route is as registered: same target and secret, and the gateway still forwards there with that secret. */
  async function expectRouteUnchanged(): Promise<void> {
    expect((await h.admin('GET', '/routes')).body).toEqual({
      routes: [{ gitspaceId: ID, target: upstream.url, runId: 'run-1', updatedAt: expect.any(String) }],
    });
    upstream.requests.length = 0;
    const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/check`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(200);
    expect(upstream.requests.map((r) => [r.url, r.headers[ROUTE_SECRET_HEADER]])).toEqual([['/check', secret]]);
    expect(decoy.requests).toEqual([]);
  }

  it('refuses every endpoint without the admin token, with another token or scheme, and changes nothing', async () => {
    const session = await openSession();
    const redirect = { target: decoy.url, secret: newRouteSecret(), runId: 'run-evil' };
    // Credentials an attacker may hold: none, a guess, a user's access token, the route secret, the token in Basic.
    const wrongs = ['', 'wrong', token, secret, `${h.adminToken}x`, h.adminToken.slice(0, -1)];
    for (const wrong of wrongs) {
      for (const [method, route, body] of [
        ['GET', '/routes', undefined],
        ['PUT', `/routes/${ID}`, redirect],
        ['PUT', '/routes/gs-new', redirect],
        ['DELETE', `/routes/${ID}`, undefined],
      ] as const) {
        const answer = await h.admin(method, route, body, wrong);
        expect([method, route, wrong, answer.status]).toEqual([method, route, wrong, 401]);
        expect(answer.body).toMatchObject({ error: { code: 'unauthenticated' } });
      }
    }
    const basic = await fetch(`${h.adminUrl}/routes/${ID}`, {
      method: 'DELETE',
      headers: { authorization: `Basic ${Buffer.from(`admin:${h.adminToken}`).toString('base64')}` },
    });
    expect(basic.status).toBe(401);
    expect(basic.headers.get('www-authenticate')).toBe('Bearer');
    const none = await fetch(`${h.adminUrl}/routes/${ID}`, { method: 'DELETE' });
    expect(none.status).toBe(401);
    await expectRouteUnchanged();
    expect(h.gateway.connectionCount(ID)).toBeGreaterThanOrEqual(1);
    expect(session.destroyed).toBe(false);
    session.destroy();
  });

  it('is not served on the public listener, whatever the token', async () => {
    for (const [method, route] of [
      ['GET', '/routes'],
      ['PUT', `/routes/${ID}`],
      ['DELETE', `/routes/${ID}`],
    ]) {
      const response = await fetch(`${h.publicUrl}${route}`, {
        method,
        headers: { authorization: `Bearer ${h.adminToken}`, 'content-type': 'application/json' },
        body:
          method === 'PUT' ? JSON.stringify({ target: decoy.url, secret: newRouteSecret(), runId: 'x' }) : undefined,
      });
      expect([method, response.status]).toEqual([method, 404]);
    }
    await expectRouteUnchanged();
  });

  it('refuses a registration with a bad secret, run id, target or body, and keeps the route and its sessions', async () => {
    const session = await openSession();
    const good = { target: decoy.url, secret: newRouteSecret(), runId: 'run-2' };
    const bad: [string, unknown, number, string | undefined][] = [
      ['no secret', { ...good, secret: undefined }, 400, 'secret'],
      ['a short secret', { ...good, secret: 'a'.repeat(42) }, 400, 'secret'],
      ['a secret with other characters', { ...good, secret: `${'a'.repeat(43)}!` }, 400, 'secret'],
      ['a secret that is not a string', { ...good, secret: 42 }, 400, 'secret'],
      ['no run id', { ...good, runId: undefined }, 400, 'runId'],
      ['an empty run id', { ...good, runId: '' }, 400, 'runId'],
      ['a run id with a space', { ...good, runId: 'run 2' }, 400, 'runId'],
      ['a target with a path', { ...good, target: `${decoy.url}/x` }, 400, 'target'],
      ['a target with credentials', { ...good, target: decoy.url.replace('//', '//u:p@') }, 400, 'target'],
      ['a file target', { ...good, target: 'file:///etc/passwd' }, 400, 'target'],
      ['a body that is not JSON', '{"target":', 400, undefined],
      ['a JSON array', '[]', 400, undefined],
      ['a body over 16 KiB', { ...good, padding: 'a'.repeat(17 * 1024) }, 413, undefined],
    ];
    for (const [name, body, status, field] of bad) {
      const answer = await h.admin('PUT', `/routes/${ID}`, body);
      expect([name, answer.status]).toEqual([name, status]);
      expect(answer.body).toMatchObject({ error: { code: 'invalid_request' } });
      if (field) expect(answer.body).toMatchObject({ error: { fields: [{ path: field }] } });
    }
    // Gitspace ids the store would not take, however they are escaped: never a file path or another route.
    for (const id of ['..%2F..%2Fetc', 'gs-alpha%00', '%67s-alpha', 'a.b']) {
      expect([id, (await h.admin('PUT', `/routes/${id}`, good)).status]).toEqual([id, 400]);
    }
    expect((await h.admin('PUT', `/routes/${ID}/x`, good)).status).toBe(404);
    await expectRouteUnchanged();
    expect(session.destroyed).toBe(false);
    session.destroy();
  });

  it('keeps sessions open when the same start registers again (a retry), and ends them for another secret', async () => {
    const session = await openSession();
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    expect((await h.route(ID, upstream.url, { secret })).status).toBe(200);
    expect(session.destroyed).toBe(false);
    expect(h.gateway.connectionCount(ID)).toBeGreaterThanOrEqual(1);
    await expectRouteUnchanged();
    // Same target and run, another secret: what the sessions were let in under is gone.
    const { secret: next } = await h.route(ID, upstream.url);
    await closed;
    expect(h.gateway.connectionCount(ID)).toBe(0);
    secret = next;
    await expectRouteUnchanged();
  });
});
