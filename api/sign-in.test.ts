import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { silentLogger } from '../common/logger';
import { openDatabase, type Db } from '../db/connect';
import { createStore, type Store } from '../db/store';
import type { AccessTokenIssuer } from './access-tokens';
import { createApp } from './app';
import { safeReturnTo } from './auth/login-state';
import { SessionKey } from './auth/session-key';
import { DEFAULT_SESSION_SETTINGS, type SignInSettings } from './auth/settings';
import { EventFeed } from './event-feed';
import type { LifecycleService } from './lifecycle-requests';
import { ensureEmbeddedDefaults } from './server';

/**
 * Dashboard sessions without an identity provider: POST /auth/token makes one from an API token, and the cookie then
 * authenticates /api/v1 (CSRF-checked), /metrics and event streams beside bearer tokens; the dashboard is served at
 * `/`. The real app on PGlite, its clock moved by the test. Sign-in through a provider: test/oidc-sign-in.test.ts.
 */

const HOUR = 3600_000;

interface Started {
  origin: string;
  close(): Promise<void>;
}

async function listen(app: ReturnType<typeof createApp>): Promise<Started> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The value a response's Set-Cookie gives a cookie ('' when it clears it), and the attributes it sets. */
function setCookie(response: Response, name: string): { value: string; attributes: string[] } | undefined {
  const line = response.headers.getSetCookie().find((cookie) => cookie.startsWith(`${name}=`));
  if (!line) return undefined;
  const [pair, ...attributes] = line.split(';').map((part) => part.trim());
  return { value: pair!.slice(name.length + 1), attributes };
}

describe('dashboard sessions and the dashboard itself (no identity provider)', () => {
  let db: Db;
  let store: Store;
  let feed: EventFeed;
  let api: Started;
  let dashboardDir: string;
  let adminToken: string;
  let ada: { id: string; token: string };
  let clock = Date.parse('2030-01-01T08:00:00Z');
  const settings: SignInSettings = {
    publicUrl: 'http://localhost:3000',
    publicUrlConfigured: false,
    session: DEFAULT_SESSION_SETTINGS,
    temporalUiUrl: 'http://127.0.0.1:8233',
    temporalNamespace: 'default',
  };

  const appWith = (signIn: SignInSettings, dir = dashboardDir) =>
    createApp({
      store,
      accessTokens: {} as AccessTokenIssuer,
      lifecycle: {} as LifecycleService,
      logger: silentLogger,
      onInfrastructureCreated: () => Promise.resolve(),
      ready: () => Promise.resolve(),
      eventFeed: feed,
      limits: { authFailuresPerMinute: 5 },
      now: () => clock,
      signIn: { settings: signIn, key: SessionKey.random() },
      dashboardDir: dir,
    });

  beforeAll(async () => {
    db = await openDatabase({ kind: 'pglite' });
    store = createStore(db);
    adminToken = (await store.createUser('admin', 'admin')).token;
    const created = await store.createUser('ada', 'member');
    ada = { id: created.user.id, token: created.token };
    await ensureEmbeddedDefaults(store, 'http://127.0.0.1:1', silentLogger);
    feed = new EventFeed({ store, pollMs: 50, logger: silentLogger });
    dashboardDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-dashboard-'));
    await mkdir(path.join(dashboardDir, 'assets'));
    await writeFile(path.join(dashboardDir, 'index.html'), '<!doctype html><div id="root"></div>');
    await writeFile(path.join(dashboardDir, 'assets', 'index-abc123.js'), 'console.log(1)');
    await writeFile(path.join(dashboardDir, 'favicon.svg'), '<svg/>');
    api = await listen(appWith(settings));
  });
  afterAll(async () => {
    await api?.close();
    feed?.close();
    await db?.destroy();
    if (dashboardDir) await rm(dashboardDir, { recursive: true, force: true });
  });

  const call = (route: string, init: RequestInit = {}, origin = api.origin) => fetch(`${origin}${route}`, init);
  const json = (body: unknown) => ({
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

  /** Signs in with an API token: the session cookie and its CSRF token. */
  async function signIn(token: string, origin = api.origin) {
    const response = await call('/auth/token', json({ token }), origin);
    expect(response.status).toBe(204);
    const cookie = `gitspaces_session=${setCookie(response, 'gitspaces_session')!.value}`;
    const session = await call('/api/v1/session', { headers: { cookie } }, origin);
    expect(session.status).toBe(200);
    return { cookie, ...((await session.json()) as { csrfToken: string; user: { id: string; name: string } }) };
  }

  const userNames = async () => {
    const response = await call('/api/v1/users', { headers: { authorization: `Bearer ${adminToken}` } });
    return ((await response.json()) as { items: { name: string }[] }).items.map((user) => user.name);
  };

  describe('POST /auth/token', () => {
    it('trades an API token for an HttpOnly, SameSite=Lax session cookie; the database keeps only its hash', async () => {
      const response = await call('/auth/token', json({ token: ada.token }));
      expect(response.status).toBe(204);
      const cookie = setCookie(response, 'gitspaces_session')!;
      expect(cookie.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(cookie.attributes).toEqual(expect.arrayContaining(['Path=/', 'HttpOnly', 'SameSite=Lax']));
      expect(cookie.attributes).not.toContain('Secure');
      expect(cookie.attributes).toContain(`Max-Age=${DEFAULT_SESSION_SETTINGS.ttlSeconds}`);
      const rows = await db.selectFrom('sessions').selectAll().where('userId', '=', ada.id).execute();
      const idHash = createHash('sha256').update(cookie.value).digest('hex');
      expect(rows.map((row) => row.idHash)).toContain(idHash);
      expect(JSON.stringify(rows)).not.toContain(cookie.value);
    });

    it('makes the cookie Secure when the public URL is https', async () => {
      const secure = await listen(appWith({ ...settings, publicUrl: 'https://gitspaces.example.com' }));
      try {
        const response = await call('/auth/token', json({ token: ada.token }), secure.origin);
        expect(setCookie(response, 'gitspaces_session')!.attributes).toContain('Secure');
      } finally {
        await secure.close();
      }
    });

    it('answers a wrong token 401 with no cookie, and slows a guesser down like bearer checks (one allowance)', async () => {
      const guesser = await listen(appWith(settings));
      try {
        const wrong = await call('/auth/token', json({ token: 'gsp_not-a-token' }), guesser.origin);
        expect(wrong.status).toBe(401);
        expect(setCookie(wrong, 'gitspaces_session')).toBeUndefined();
        // The allowance (5 a minute) is shared with bad bearer headers from the same address.
        for (let i = 0; i < 2; i++) {
          const bearer = await call('/api/v1/users', { headers: { authorization: 'Bearer nope' } }, guesser.origin);
          expect(bearer.status).toBe(401);
        }
        for (let i = 0; i < 2; i++) {
          expect((await call('/auth/token', json({ token: `gsp_guess-${i}` }), guesser.origin)).status).toBe(401);
        }
        const slowed = await call('/auth/token', json({ token: ada.token }), guesser.origin);
        expect(slowed.status).toBe(429);
        expect(Number(slowed.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(setCookie(slowed, 'gitspaces_session')).toBeUndefined();
        const bearer = await call(
          '/api/v1/users',
          { headers: { authorization: `Bearer ${ada.token}` } },
          guesser.origin,
        );
        expect(bearer.status).toBe(429);
      } finally {
        await guesser.close();
      }
    });

    it('refuses a sign-in posted from another origin (login CSRF) and a body that is not an API token', async () => {
      const foreign = await call('/auth/token', {
        ...json({ token: ada.token }),
        headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
      });
      expect(foreign.status).toBe(403);
      expect(((await foreign.json()) as { error: { code: string } }).error.code).toBe('csrf');
      expect(setCookie(foreign, 'gitspaces_session')).toBeUndefined();
      expect((await call('/auth/token', json({ token: 'has spaces' }))).status).toBe(400);
      const form = await call('/auth/token', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `token=${ada.token}`,
      });
      expect(form.status).toBe(400);
    });

    it("refuses a disabled user's token", async () => {
      const { user, token } = await store.createUser('dora', 'member');
      await db.updateTable('users').set({ disabledAt: new Date() }).where('id', '=', user.id).execute();
      expect((await call('/auth/token', json({ token }))).status).toBe(401);
    });
  });

  describe('GET /api/v1/session', () => {
    it('describes the session: its user, CSRF token, the ways to sign in and the Temporal Web UI', async () => {
      const session = await signIn(ada.token);
      const response = await call('/api/v1/session', { headers: { cookie: session.cookie } });
      expect(await response.json()).toEqual({
        user: expect.objectContaining({ id: ada.id, name: 'ada', role: 'member' }),
        csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        signIn: { oidc: false, token: true },
        temporalUiUrl: 'http://127.0.0.1:8233',
        temporalNamespace: 'default',
      });
      expect(await (await call('/auth/options')).json()).toEqual({ oidc: false, token: true });
    });

    it('is 401 without a session cookie, with an unknown one (cleared), and for an API token', async () => {
      expect((await call('/api/v1/session')).status).toBe(401);
      const unknown = await call('/api/v1/session', { headers: { cookie: 'gitspaces_session=forged' } });
      expect(unknown.status).toBe(401);
      expect(setCookie(unknown, 'gitspaces_session')!.value).toBe('');
      const bearer = await call('/api/v1/session', { headers: { authorization: `Bearer ${ada.token}` } });
      expect(bearer.status).toBe(401);
    });
  });

  describe('the cookie on /api/v1 and /metrics', () => {
    it('authenticates GETs, event streams and /metrics as the session user', async () => {
      const session = await signIn(ada.token);
      const list = await call('/api/v1/gitspaces', { headers: { cookie: session.cookie } });
      expect(list.status).toBe(200);
      const { gitspace } = await store.createGitspace({
        id: 'gs-ada-stream',
        name: 'stream',
        ownerId: ada.id,
        repositoryUrl: 'https://git.example.test/r.git',
        repositoryBranch: null,
        repositoryTokenSealed: null,
        repositoryTokenRef: null,
        infrastructureId: 'local',
        machineId: 'local-default',
        ide: 'terminal',
      });
      const controller = new AbortController();
      const stream = await call(`/api/v1/gitspaces/${gitspace.id}/events`, {
        headers: { cookie: session.cookie, accept: 'text/event-stream' },
        signal: controller.signal,
      });
      expect(stream.status).toBe(200);
      expect(stream.headers.get('content-type')).toContain('text/event-stream');
      controller.abort();
      // /metrics is the administrator's: a member's session is known (403), an admin's is let in.
      expect((await call('/metrics', { headers: { cookie: session.cookie } })).status).toBe(403);
      const admin = await signIn(adminToken);
      expect((await call('/metrics', { headers: { cookie: admin.cookie } })).status).toBe(200);
    });

    it('refuses a change without the CSRF token, with another session’s, or from another origin; nothing changes', async () => {
      const admin = await signIn(adminToken);
      const other = await signIn(ada.token);
      const attempts: Record<string, Record<string, string>> = {
        'no CSRF header': {},
        "another session's CSRF token": { 'x-csrf-token': other.csrfToken },
        'a CSRF token of the wrong length': { 'x-csrf-token': `${admin.csrfToken}x` },
        'a foreign Origin': { 'x-csrf-token': admin.csrfToken, origin: 'https://evil.example' },
        'an Origin of null': { 'x-csrf-token': admin.csrfToken, origin: 'null' },
      };
      for (const [attempt, headers] of Object.entries(attempts)) {
        const response = await call('/api/v1/users', {
          ...json({ name: 'mallory' }),
          headers: { 'content-type': 'application/json', cookie: admin.cookie, ...headers },
        });
        const body = (await response.json()) as { error: { code: string } };
        expect({ attempt, status: response.status, code: body.error.code }).toEqual({
          attempt,
          status: 403,
          code: 'csrf',
        });
      }
      expect(await userNames()).not.toContain('mallory');
      // The same request with the session's own token, from its own origin (or none): done.
      const done = await call('/api/v1/users', {
        ...json({ name: 'mallory' }),
        headers: {
          'content-type': 'application/json',
          cookie: admin.cookie,
          'x-csrf-token': admin.csrfToken,
          origin: api.origin,
        },
      });
      expect(done.status).toBe(201);
      expect(await userNames()).toContain('mallory');
    });

    it('keeps bearer tokens as they were: no CSRF header, and the bearer wins over a cookie', async () => {
      const ada1 = await signIn(ada.token);
      const response = await call('/api/v1/users', {
        ...json({ name: 'trent' }),
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${adminToken}`,
          // A member's session cookie beside the admin's token: the token decides who this is.
          cookie: ada1.cookie,
          origin: 'https://evil.example',
        },
      });
      expect(response.status).toBe(201);
    });

    it('ends a session at its idle timeout and at its absolute lifetime, each time with 401', async () => {
      const idle = await signIn(ada.token);
      clock += DEFAULT_SESSION_SETTINGS.idleSeconds * 1000 - 1000;
      expect((await call('/api/v1/gitspaces', { headers: { cookie: idle.cookie } })).status).toBe(200);
      // Used a second before its idle end: the end moved.
      clock += DEFAULT_SESSION_SETTINGS.idleSeconds * 1000 - 1000;
      expect((await call('/api/v1/gitspaces', { headers: { cookie: idle.cookie } })).status).toBe(200);
      clock += DEFAULT_SESSION_SETTINGS.idleSeconds * 1000;
      const ended = await call('/api/v1/gitspaces', { headers: { cookie: idle.cookie } });
      expect(ended.status).toBe(401);
      expect(setCookie(ended, 'gitspaces_session')!.value).toBe('');

      // Used every half hour, never idle: it still ends at its absolute lifetime.
      const busy = await signIn(ada.token);
      const end = clock + DEFAULT_SESSION_SETTINGS.ttlSeconds * 1000;
      while (clock + HOUR / 2 < end) {
        clock += HOUR / 2;
        expect((await call('/api/v1/gitspaces', { headers: { cookie: busy.cookie } })).status).toBe(200);
      }
      clock = end;
      const expired = await call('/api/v1/gitspaces', { headers: { cookie: busy.cookie } });
      expect(expired.status).toBe(401);
      expect(((await expired.json()) as { error: { message: string } }).error.message).toMatch(/ended/);
    });

    it("refuses a disabled or removed user's session", async () => {
      const { user, token } = await store.createUser('erin', 'member');
      for (const column of ['disabledAt', 'deletedAt'] as const) {
        const session = await signIn(token);
        await db
          .updateTable('users')
          .set({ [column]: new Date() })
          .where('id', '=', user.id)
          .execute();
        expect((await call('/api/v1/gitspaces', { headers: { cookie: session.cookie } })).status).toBe(401);
        await db
          .updateTable('users')
          .set({ [column]: null })
          .where('id', '=', user.id)
          .execute();
      }
    });

    it('ends a session made from an API token when that token is revoked, and only that one', async () => {
      const { user } = await store.createUser('finn', 'member');
      const revoked = await store.createToken(user.id, 'laptop');
      const kept = await store.createToken(user.id, 'desktop');
      const ofRevoked = await signIn(revoked.token);
      const ofKept = await signIn(kept.token);
      const revoke = await call(`/api/v1/users/me/tokens/${revoked.id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${kept.token}` },
      });
      expect(revoke.status).toBe(204);
      expect((await call('/api/v1/gitspaces', { headers: { cookie: ofRevoked.cookie } })).status).toBe(401);
      expect((await call('/api/v1/gitspaces', { headers: { cookie: ofKept.cookie } })).status).toBe(200);
    });
  });

  describe('POST /auth/logout', () => {
    it('needs the CSRF header, then ends the session and clears its cookie', async () => {
      const session = await signIn(ada.token);
      const forged = await call('/auth/logout', { method: 'POST', headers: { cookie: session.cookie } });
      expect(forged.status).toBe(403);
      expect((await call('/api/v1/session', { headers: { cookie: session.cookie } })).status).toBe(200);
      const done = await call('/auth/logout', {
        method: 'POST',
        headers: { cookie: session.cookie, 'x-csrf-token': session.csrfToken },
      });
      expect(done.status).toBe(204);
      expect(setCookie(done, 'gitspaces_session')!.value).toBe('');
      expect((await call('/api/v1/session', { headers: { cookie: session.cookie } })).status).toBe(401);
    });
  });

  describe('the dashboard at /', () => {
    it('serves index.html with a strict policy and no-cache, hashed assets for a year', async () => {
      const index = await call('/');
      expect(index.status).toBe(200);
      expect(await index.text()).toContain('<div id="root">');
      expect(index.headers.get('cache-control')).toBe('no-cache');
      const policy = index.headers.get('content-security-policy')!;
      expect(policy).toContain("script-src 'self'");
      expect(policy).not.toContain('unsafe-inline');
      expect(policy).toContain("frame-ancestors 'none'");
      const asset = await call('/assets/index-abc123.js');
      expect(asset.status).toBe(200);
      expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect((await call('/favicon.svg')).headers.get('cache-control')).toBe('no-cache');
    });

    it("answers a browser's page request on any path the API does not own with index.html (client routing)", async () => {
      const page = { headers: { accept: 'text/html,application/xhtml+xml' } };
      for (const route of ['/gitspaces/gs-1', '/open/gs-1', '/admin/users']) {
        const response = await call(route, page);
        expect({ route, status: response.status, type: response.headers.get('content-type') }).toEqual({
          route,
          status: 200,
          type: expect.stringContaining('text/html'),
        });
      }
      // The API's own paths stay the API's, and a script asking for JSON gets the JSON 404.
      for (const route of ['/api/v1/nothing', '/api/v2/gitspaces', '/auth/nothing', '/metrics']) {
        const response = await call(route, page);
        expect({ route, type: response.headers.get('content-type') }).toEqual({
          route,
          type: expect.stringContaining('application/json'),
        });
      }
      expect((await call('/gitspaces/gs-1')).status).toBe(404);
      expect((await call('/gitspaces/gs-1', { method: 'POST', ...page })).status).toBe(404);
    });

    it('says how to build the dashboard when dist/web is missing', async () => {
      const unbuilt = await listen(appWith(settings, path.join(dashboardDir, 'missing')));
      try {
        const response = await call('/', {}, unbuilt.origin);
        expect(response.status).toBe(503);
        expect(await response.text()).toContain('npm run build:web');
        expect((await call('/api/v1/session', {}, unbuilt.origin)).status).toBe(401);
      } finally {
        await unbuilt.close();
      }
    });
  });
});

describe('where a sign-in may land (return_to)', () => {
  it.each([
    ['/gitspaces/gs-1?tab=events#top', '/gitspaces/gs-1?tab=events#top'],
    ['/open/gs-1', '/open/gs-1'],
    ['//evil.example/x', '/'],
    ['/\\evil.example', '/'],
    ['/\t/evil.example', '/'],
    ['/\n/evil.example', '/'],
    ['https://evil.example/', '/'],
    ['javascript:alert(1)', '/'],
    ['evil.example', '/'],
    ['/auth/login', '/'],
    ['', '/'],
    [undefined, '/'],
    [['/a', '/b'], '/'],
  ])('%j → %j', (given, expected) => {
    expect(safeReturnTo(given)).toBe(expected);
  });
});

describe('the session key', () => {
  it('opens only what it sealed, for the same purpose and binding', () => {
    const key = SessionKey.random();
    const sealed = key.seal('refresh-token', 'rt-secret', 'session-a');
    expect(sealed).not.toContain('rt-secret');
    expect(key.open('refresh-token', sealed, 'session-a')).toBe('rt-secret');
    expect(key.open('refresh-token', sealed, 'session-b')).toBeUndefined();
    expect(key.open('login-state', sealed, 'session-a')).toBeUndefined();
    expect(SessionKey.random().open('refresh-token', sealed, 'session-a')).toBeUndefined();
    expect(() => SessionKey.parse('short')).toThrow(/32 random bytes/);
  });
});
