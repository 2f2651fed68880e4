import { randomBytes } from 'node:crypto';
import { freeLoopbackPorts } from '../common/net';
import { startEntryProcess } from './support/entry-process';
import { formOf, TestBrowser } from './support/test-browser';

/**
 * Signing in to the dashboard through a real OpenID Connect provider (oidc-provider, certified, on loopback) with the
 * API's real app over HTTP and a browser's cookie jar: the authorization code with PKCE, the session it makes, and the
 * attacks on it — a wrong state, a replayed code, open redirects, forged state-changing requests — as well as a user
 * removed at the provider, invitations, the admin group, and sessions ending. The provider and each API run in their
 * own processes (test/support/oidc-provider-main.ts, test/support/sign-in-api-main.ts), as both are ES modules.
 */

const ADMIN_TOKEN = `gsp_${randomBytes(24).toString('base64url')}`;
const CLIENT = { client_id: 'gitspaces', client_secret: randomBytes(24).toString('base64url') };
// Shared by the open API and its replica, as API replicas behind one URL share it.
const SESSION_KEY = randomBytes(32).toString('base64');

interface Running {
  url: string;
  stop(): Promise<void>;
}

/** A process of test/support (test/support/entry-process.ts) and the URL its ready line names. */
async function startProcess(script: string, env: Record<string, string>, marker: string): Promise<Running> {
  const started = await startEntryProcess(script, env, marker);
  return { url: started.line, stop: () => started.stop() };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('signing in to the dashboard through an OpenID Connect provider', () => {
  let provider: Running;
  /** Open sign-up, the admin group, a recheck every 2 s. */
  let open: Running;
  /** A replica of `open` behind the same URL: same settings, same session key, same redirect URL. */
  let replica: Running;
  /** Invitations only, sessions of 4 s that end after 2 s unused, 3 failed authentications a minute. */
  let invite: Running;
  let issuer: string;

  beforeAll(async () => {
    const { providerPort, openPort, replicaPort, invitePort } = await freeLoopbackPorts([
      'providerPort',
      'openPort',
      'replicaPort',
      'invitePort',
    ]);
    const callback = (port: number) => `http://127.0.0.1:${port}/auth/callback`;
    issuer = `http://127.0.0.1:${providerPort}`;
    const common = {
      GITSPACES_OIDC_ISSUER: issuer,
      GITSPACES_OIDC_CLIENT_ID: CLIENT.client_id,
      GITSPACES_OIDC_CLIENT_SECRET: CLIENT.client_secret,
      GITSPACES_ADMIN_TOKEN: ADMIN_TOKEN,
    };
    const openEnv = {
      ...common,
      GITSPACES_OIDC_SIGNUP: 'open',
      GITSPACES_OIDC_ADMIN_GROUP: 'gitspaces-admins',
      GITSPACES_OIDC_RECHECK_SECONDS: '2',
      GITSPACES_SESSION_KEY: SESSION_KEY,
      GITSPACES_OIDC_REDIRECT_URL: callback(openPort),
    };
    [provider, open, replica, invite] = await Promise.all([
      startProcess(
        'oidc-provider-main.ts',
        {
          OIDC_TEST_PORT: String(providerPort),
          OIDC_TEST_CLIENTS: JSON.stringify([{ ...CLIENT, redirect_uris: [callback(openPort), callback(invitePort)] }]),
        },
        'OIDC_PROVIDER_READY',
      ),
      startProcess('sign-in-api-main.ts', { ...openEnv, GITSPACES_API_PORT: String(openPort) }, 'SIGN_IN_API_READY'),
      startProcess('sign-in-api-main.ts', { ...openEnv, GITSPACES_API_PORT: String(replicaPort) }, 'SIGN_IN_API_READY'),
      startProcess(
        'sign-in-api-main.ts',
        {
          ...common,
          GITSPACES_API_PORT: String(invitePort),
          GITSPACES_OIDC_SIGNUP: 'invite',
          GITSPACES_SESSION_TTL_SECONDS: '4',
          GITSPACES_SESSION_IDLE_SECONDS: '2',
          GITSPACES_API_AUTH_FAILURES_PER_MINUTE: '3',
          GITSPACES_API_TRUSTED_PROXIES: '127.0.0.1',
          TEST_INVITES: 'carol:carol@example.com',
        },
        'SIGN_IN_API_READY',
      ),
    ]);
    const accounts: Record<string, Record<string, unknown>> = {
      alice: { email: 'alice@example.com', email_verified: true, preferred_username: 'alice' },
      bob: { email: 'bob@example.com', email_verified: true, preferred_username: 'bob' },
      grace: {
        email: 'grace@example.com',
        email_verified: true,
        preferred_username: 'grace',
        groups: ['gitspaces-admins'],
      },
      carol: { email: 'carol@example.com', email_verified: true, preferred_username: 'carol' },
      'carol-twin': { email: 'carol@example.com', email_verified: true, preferred_username: 'carol2' },
      dave: { email: 'dave@example.com', email_verified: true, preferred_username: 'dave' },
      mallory: { email: 'carol@example.com', email_verified: false, preferred_username: 'mallory' },
    };
    for (const [id, claims] of Object.entries(accounts)) await setAccount(id, claims);
  }, 90_000);

  afterAll(async () => {
    await Promise.all([provider, open, replica, invite].map((running) => running?.stop()));
  }, 30_000);

  async function setAccount(id: string, claims: Record<string, unknown>) {
    const response = await fetch(`${issuer}/test-accounts/${id}`, { method: 'PUT', body: JSON.stringify(claims) });
    expect(response.status).toBe(204);
  }

  /**
   * From `start` (the API's /auth/login, or a step of it) through the provider's login and consent pages as `login`:
   * the callback URL the provider sends the browser back to, not yet visited.
   */
  async function toCallback(browser: TestBrowser, api: string, start: string, login: string): Promise<URL> {
    const isCallback = (url: URL) => url.origin === api && url.pathname === '/auth/callback';
    let page = await browser.navigate(start, {}, isCallback);
    for (let step = 0; !page.stoppedAt; step++) {
      const form = formOf(page);
      if (!form || step > 3) throw new Error(`no sign-in form at ${page.url.href}: ${page.body.slice(0, 400)}`);
      page = await browser.navigate(
        form.action.href,
        {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ ...form.fields, login, password: 'any' }).toString(),
        },
        isCallback,
      );
    }
    return page.stoppedAt;
  }

  const loginUrl = (api: string, returnTo = '/') => `${api}/auth/login?return_to=${encodeURIComponent(returnTo)}`;

  /** The whole sign-in of `login` in `browser`: the callback's answer. */
  async function signIn(browser: TestBrowser, api: string, login: string, returnTo = '/') {
    const callback = await toCallback(browser, api, loginUrl(api, returnTo), login);
    const response = await browser.fetch(callback.href);
    return {
      callback,
      status: response.status,
      location: response.headers.get('location'),
      body: await response.text(),
    };
  }

  /** A browser signed in as `login`, with the session the API describes. */
  async function signedIn(api: string, login: string) {
    const browser = new TestBrowser();
    const result = await signIn(browser, api, login);
    expect({ login, status: result.status }).toEqual({ login, status: 303 });
    const session = await sessionIn(browser, api);
    expect(session.status).toBe(200);
    return { browser, ...(session.body as { csrfToken: string; user: { id: string; name: string; role: string } }) };
  }

  async function sessionIn(browser: TestBrowser, api: string) {
    const response = await browser.fetch(`${api}/api/v1/session`);
    return { status: response.status, body: (await response.json()) as any };
  }

  const asAdmin = (api: string, route: string, init: RequestInit = {}) =>
    fetch(`${api}${route}`, {
      ...init,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...init.headers },
    });
  const userNames = async (api: string) =>
    ((await (await asAdmin(api, '/api/v1/users')).json()) as { items: { name: string }[] }).items.map((u) => u.name);

  describe('with open sign-up', () => {
    it('signs in with an authorization code and PKCE (S256), state and nonce, and lands where it was going', async () => {
      const browser = new TestBrowser();
      const toProvider = await browser.navigate(
        loginUrl(open.url, '/gitspaces/gs-1?tab=events'),
        {},
        (url) => url.origin === issuer,
      );
      const authorization = toProvider.stoppedAt!;
      const params = Object.fromEntries(authorization.searchParams);
      expect(params).toEqual(
        expect.objectContaining({
          response_type: 'code',
          client_id: CLIENT.client_id,
          redirect_uri: `${open.url}/auth/callback`,
          code_challenge_method: 'S256',
          code_challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
          state: expect.stringMatching(/.{20,}/),
          nonce: expect.stringMatching(/.{20,}/),
        }),
      );
      expect(params.scope!.split(' ')).toEqual(
        expect.arrayContaining(['openid', 'email', 'profile', 'offline_access']),
      );
      // The sign-in's state, nonce and verifier travel sealed, for the callback only.
      const sealed = browser.cookie(`${open.url}/auth/callback`, 'gitspaces_login')!;
      expect(sealed).toBeDefined();
      expect(sealed).not.toContain(params.state);
      expect(browser.cookie(`${open.url}/api/v1/session`, 'gitspaces_login')).toBeUndefined();

      const callback = await toCallback(browser, open.url, authorization.href, 'alice');
      const answer = await browser.fetch(callback.href);
      expect(answer.status).toBe(303);
      expect(answer.headers.get('location')).toBe('/gitspaces/gs-1?tab=events');
      const cookie = answer.headers.getSetCookie().find((line) => line.startsWith('gitspaces_session='))!;
      expect(cookie.split('; ')).toEqual(expect.arrayContaining(['Path=/', 'HttpOnly', 'SameSite=Lax']));
      expect(browser.cookie(`${open.url}/auth/callback`, 'gitspaces_login')).toBeUndefined();

      const session = await sessionIn(browser, open.url);
      expect(session).toEqual({
        status: 200,
        body: expect.objectContaining({
          user: expect.objectContaining({ name: 'alice', role: 'member' }),
          signIn: { oidc: true, token: true },
        }),
      });
      expect((await browser.fetch(`${open.url}/api/v1/gitspaces`)).status).toBe(200);
      expect(await (await fetch(`${open.url}/auth/options`)).json()).toEqual({ oidc: true, token: true });
    });

    it('refuses an answer whose state is not the one this browser started: 400, no session', async () => {
      const browser = new TestBrowser();
      const callback = await toCallback(browser, open.url, loginUrl(open.url), 'alice');
      const forged = new URL(callback);
      forged.searchParams.set('state', randomBytes(16).toString('base64url'));
      const wrongState = await browser.fetch(forged.href);
      expect(wrongState.status).toBe(400);
      const page = await wrongState.text();
      expect(page).toContain('does not belong to the sign-in this browser started');
      expect(page).toContain('Sign in again');
      expect(browser.cookie(open.url, 'gitspaces_session')).toBeUndefined();
      // The sign-in is spent: its own answer, arriving after, is refused too.
      expect((await browser.fetch(callback.href)).status).toBe(400);
      expect(browser.cookie(open.url, 'gitspaces_session')).toBeUndefined();

      // Someone else's genuine answer (a code sent to a victim) in a browser that started no sign-in.
      const theirs = await toCallback(new TestBrowser(), open.url, loginUrl(open.url), 'bob');
      const victim = new TestBrowser();
      const planted = await victim.fetch(theirs.href);
      expect(planted.status).toBe(400);
      expect(await planted.text()).toContain('started in another browser');
      expect(victim.cookie(open.url, 'gitspaces_session')).toBeUndefined();
    });

    it('refuses a replayed code, here (the sign-in is spent) and at a replica (the provider refuses the code)', async () => {
      const browser = new TestBrowser();
      const callback = await toCallback(browser, open.url, loginUrl(open.url), 'alice');
      const loginCookie = browser.cookie(callback.href, 'gitspaces_login')!;
      expect((await browser.fetch(callback.href)).status).toBe(303);

      // An attacker who copied both the answer and the sign-in cookie.
      const attacker = new TestBrowser();
      attacker.plant(callback.href, 'gitspaces_login', loginCookie, '/auth/callback');
      const here = await attacker.fetch(callback.href);
      expect(here.status).toBe(400);
      expect(await here.text()).toContain('does not belong to the sign-in this browser started');
      expect(attacker.cookie(open.url, 'gitspaces_session')).toBeUndefined();

      // The replica never saw this sign-in: the code itself is refused by the provider.
      const atReplica = new URL(callback.pathname + callback.search, replica.url);
      const replayer = new TestBrowser();
      replayer.plant(atReplica.href, 'gitspaces_login', loginCookie, '/auth/callback');
      const there = await replayer.fetch(atReplica.href);
      expect(there.status).toBe(400);
      expect(await there.text()).toContain('invalid_grant');
      expect(replayer.cookie(replica.url, 'gitspaces_session')).toBeUndefined();
    });

    it('sends a sign-in that would land on another site to / instead', async () => {
      const browser = new TestBrowser();
      for (const returnTo of [
        '//evil.example/',
        '/\\evil.example',
        'https://evil.example/',
        '/\t/evil.example',
        'javascript:alert(1)',
        '/auth/logout',
      ]) {
        const result = await signIn(browser, open.url, 'alice', returnTo);
        expect({ returnTo, status: result.status, location: result.location }).toEqual({
          returnTo,
          status: 303,
          location: '/',
        });
      }
    });

    it('makes members of the admin group administrators, and others members, at each sign-in', async () => {
      const grace = await signedIn(open.url, 'grace');
      expect(grace.user.role).toBe('admin');
      expect((await grace.browser.fetch(`${open.url}/metrics`)).status).toBe(200);
      await setAccount('grace', { email: 'grace@example.com', email_verified: true, preferred_username: 'grace' });
      const again = await signedIn(open.url, 'grace');
      expect(again.user).toEqual(expect.objectContaining({ id: grace.user.id, role: 'member' }));
      expect((await again.browser.fetch(`${open.url}/metrics`)).status).toBe(403);
      await setAccount('grace', {
        email: 'grace@example.com',
        email_verified: true,
        preferred_username: 'grace',
        groups: ['gitspaces-admins'],
      });
    });

    it('signs out a user removed at the provider at the next recheck, and keeps the others signed in', async () => {
      const bob = await signedIn(open.url, 'bob');
      const alice = await signedIn(open.url, 'alice');
      await fetch(`${issuer}/test-accounts/bob`, { method: 'DELETE' });
      await sleep(2500);
      const refused = await bob.browser.fetch(`${open.url}/api/v1/gitspaces`);
      expect(refused.status).toBe(401);
      expect(((await refused.json()) as { error: { message: string } }).error.message).toContain(
        'identity provider no longer confirms',
      );
      expect((await sessionIn(bob.browser, open.url)).status).toBe(401);
      // Alice's session was asked about too, and the provider still knows her.
      expect((await sessionIn(alice.browser, open.url)).status).toBe(200);
      await sleep(2500);
      expect((await sessionIn(alice.browser, open.url)).status).toBe(200);
    });

    it("refuses a cookie-authenticated change without the session's CSRF token or from another origin", async () => {
      const grace = await signedIn(open.url, 'grace');
      const alice = await signedIn(open.url, 'alice');
      expect(grace.user.role).toBe('admin');
      const create = (headers: Record<string, string>) =>
        grace.browser.fetch(`${open.url}/api/v1/users`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ name: 'mallory-made' }),
        });
      const attempts: Record<string, Record<string, string>> = {
        'no CSRF header': {},
        "another session's CSRF token": { 'x-csrf-token': alice.csrfToken },
        'a foreign Origin': { 'x-csrf-token': grace.csrfToken, origin: 'https://evil.example' },
      };
      for (const [attempt, headers] of Object.entries(attempts)) {
        const response = await create(headers);
        const code = ((await response.json()) as { error: { code: string } }).error.code;
        expect({ attempt, status: response.status, code }).toEqual({ attempt, status: 403, code: 'csrf' });
      }
      expect(await userNames(open.url)).not.toContain('mallory-made');
      const done = await create({ 'x-csrf-token': grace.csrfToken, origin: open.url });
      expect(done.status).toBe(201);
      expect(await userNames(open.url)).toContain('mallory-made');
      // API tokens are as they were: no CSRF header.
      const scripted = await asAdmin(open.url, '/api/v1/users', {
        method: 'POST',
        body: JSON.stringify({ name: 'scripted' }),
      });
      expect(scripted.status).toBe(201);
    });

    it('signs out: the CSRF header is needed, then the session is gone', async () => {
      const alice = await signedIn(open.url, 'alice');
      expect((await alice.browser.fetch(`${open.url}/auth/logout`, { method: 'POST' })).status).toBe(403);
      expect((await sessionIn(alice.browser, open.url)).status).toBe(200);
      const cookie = alice.browser.cookie(open.url, 'gitspaces_session')!;
      const out = await alice.browser.fetch(`${open.url}/auth/logout`, {
        method: 'POST',
        headers: { 'x-csrf-token': alice.csrfToken },
      });
      expect(out.status).toBe(204);
      expect(alice.browser.cookie(open.url, 'gitspaces_session')).toBeUndefined();
      expect((await sessionIn(alice.browser, open.url)).status).toBe(401);
      // A copy of the cookie taken before signing out opens nothing either: the session itself is gone.
      const copied = new TestBrowser();
      copied.plant(open.url, 'gitspaces_session', cookie);
      expect((await sessionIn(copied, open.url)).status).toBe(401);
    });
  });

  describe('with invitations only', () => {
    it('refuses an uninvited user and one whose e-mail is not verified: 403, no session', async () => {
      for (const [login, reason] of [
        ['dave', 'Gitspaces user was invited as dave@example.com'],
        ['mallory', 'no verified e-mail'],
      ] as const) {
        const browser = new TestBrowser();
        const result = await signIn(browser, invite.url, login);
        expect({ login, status: result.status }).toEqual({ login, status: 403 });
        expect(result.body).toContain(reason);
        expect(browser.cookie(invite.url, 'gitspaces_session')).toBeUndefined();
      }
      expect(await userNames(invite.url)).not.toContain('dave');
    });

    it("binds an invited user's identity at the first sign-in; after that the e-mail finds nobody", async () => {
      const invited = (await (await asAdmin(invite.url, '/api/v1/users')).json()) as {
        items: { id: string; name: string }[];
      };
      const carolId = invited.items.find((user) => user.name === 'carol')!.id;
      const carol = await signedIn(invite.url, 'carol');
      expect(carol.user).toEqual(expect.objectContaining({ id: carolId, name: 'carol', role: 'member' }));
      // The provider's subject is what finds her now, whatever her address becomes.
      await setAccount('carol', { email: 'carol@new.example', email_verified: true, preferred_username: 'carol' });
      expect((await signedIn(invite.url, 'carol')).user.id).toBe(carolId);
      // Another account of the provider with her old (verified) address gets nothing.
      const twin = await signIn(new TestBrowser(), invite.url, 'carol-twin');
      expect(twin.status).toBe(403);
    });

    it('ends a session left idle, and one in use at its absolute lifetime', async () => {
      const idle = await signedIn(invite.url, 'carol');
      await sleep(2300);
      const idled = await sessionIn(idle.browser, invite.url);
      expect(idled.status).toBe(401);
      expect(idled.body.error.message).toContain('idle');

      const started = Date.now();
      const busy = await signedIn(invite.url, 'carol');
      const signedInAt = Date.now();
      while (Date.now() < started + 3500) {
        await sleep(600);
        if (Date.now() < started + 3700) expect((await sessionIn(busy.browser, invite.url)).status).toBe(200);
      }
      const cookie = busy.browser.cookie(invite.url, 'gitspaces_session')!;
      await sleep(Math.max(0, signedInAt + 4100 - Date.now()));
      // The browser drops the cookie at its Max-Age; a copy kept past it is refused by the API itself.
      expect((await sessionIn(busy.browser, invite.url)).status).toBe(401);
      const kept = new TestBrowser();
      kept.plant(invite.url, 'gitspaces_session', cookie);
      const ended = await sessionIn(kept, invite.url);
      expect(ended.status).toBe(401);
      expect(ended.body.error.message).toContain('ended');
    });

    it('trades an API token for a session; a wrong one is 401 and guessing is slowed like bearer checks', async () => {
      const browser = new TestBrowser();
      const tokenSignIn = (token: string) =>
        browser.fetch(`${invite.url}/auth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token }),
        });
      expect((await tokenSignIn(ADMIN_TOKEN)).status).toBe(204);
      expect((await sessionIn(browser, invite.url)).body.user.name).toBe('admin');

      // The guesser comes through the trusted proxy (127.0.0.1), which names its address.
      const guesser = new TestBrowser();
      const from = { 'x-forwarded-for': '198.51.100.23' };
      const guess = (token: string) =>
        guesser.fetch(`${invite.url}/auth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...from },
          body: JSON.stringify({ token }),
        });
      expect((await guess('gsp_wrong-1')).status).toBe(401);
      expect((await guess('gsp_wrong-2')).status).toBe(401);
      const bearer = (token: string) =>
        fetch(`${invite.url}/api/v1/users`, { headers: { authorization: `Bearer ${token}`, ...from } });
      expect((await bearer('gsp_wrong-3')).status).toBe(401);
      // Three failures a minute from that address: the right token is now held back too, and so are bearer checks.
      const slowed = await guess(ADMIN_TOKEN);
      expect(slowed.status).toBe(429);
      expect(Number(slowed.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(guesser.cookie(invite.url, 'gitspaces_session')).toBeUndefined();
      expect((await bearer(ADMIN_TOKEN)).status).toBe(429);
      // Other addresses are not slowed down.
      expect((await asAdmin(invite.url, '/api/v1/users')).status).toBe(200);
    });
  });
});
