import { createHash, randomBytes } from 'node:crypto';
import { startRouteHarness, type RouteHarness } from '../test/support/route-harness';
import { formOf, TestBrowser } from '../test/support/test-browser';
import { safeReturnTo } from './auth/login-state';

/**
 * `gitspaces login --web` on the API's side (api/routes/cli-login.ts), on the route harness with its clock moved by
 * the test: what GET /auth/cli accepts, the consent form's CSRF and Origin checks, and the one-time code's exchange
 * for an API token, attacked. The whole flow through a provider and the command line: test/cli-login.test.ts.
 */

const CALLBACK = 'http://127.0.0.1:41234/callback';

/** What the command line makes: a PKCE verifier, its S256 challenge and a state. */
function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge, state: randomBytes(16).toString('base64url') };
}

const consentQuery = (params: Record<string, string | undefined>) =>
  new URLSearchParams(Object.entries(params).filter((entry): entry is [string, string] => entry[1] !== undefined));

describe('gitspaces login --web: the consent page and the code exchange', () => {
  let harness: RouteHarness;
  let clock = Date.parse('2030-01-01T08:00:00Z');
  let ada: { id: string; token: string };

  beforeAll(async () => {
    harness = await startRouteHarness({ now: () => clock });
    ada = await harness.member('ada');
  });
  afterAll(async () => {
    await harness?.close();
  });

  const codesStored = async () =>
    Number(
      (
        await harness.db
          .selectFrom('cliAuthorizations')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  /** A browser with a dashboard session made from `token` (POST /auth/token). */
  async function signedIn(token: string) {
    const browser = new TestBrowser();
    const response = await browser.fetch(`${harness.origin}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    expect(response.status).toBe(204);
    return browser;
  }

  const consentUrl = (params: Record<string, string | undefined>) =>
    `${harness.origin}/auth/cli?${consentQuery(params).toString()}`;
  const request = (flow = pkce(), redirectUri = CALLBACK) => ({
    redirect_uri: redirectUri,
    code_challenge: flow.challenge,
    code_challenge_method: 'S256',
    state: flow.state,
    client_name: 'laptop',
  });

  /** The consent page and its form, as the browser shows it. */
  async function consentPage(browser: TestBrowser, params: Record<string, string | undefined>) {
    const page = await browser.navigate(consentUrl(params));
    expect({ status: page.response.status, body: page.body.slice(0, 300) }).toEqual({
      status: 200,
      body: expect.stringContaining('Sign in the command line on laptop as'),
    });
    return { page, form: formOf(page)! };
  }

  /** Posts the consent form as a browser would (fields as given), from `origin`; the answer, not followed. */
  function postConsent(browser: TestBrowser, fields: Record<string, string>, origin = harness.origin) {
    return browser.fetch(`${harness.origin}/auth/cli`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
      body: new URLSearchParams(fields).toString(),
    });
  }

  /** The whole browser side as `token`'s user: the code the command line's callback receives. */
  async function codeFor(token: string, flow = pkce(), redirectUri = CALLBACK) {
    const browser = await signedIn(token);
    const { form } = await consentPage(browser, request(flow, redirectUri));
    const answer = await postConsent(browser, { ...form.fields, decision: 'allow' });
    expect(answer.status).toBe(303);
    const location = new URL(answer.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(redirectUri);
    expect(location.searchParams.get('state')).toBe(flow.state);
    return location.searchParams.get('code')!;
  }

  const exchange = async (body: Record<string, string>) => {
    const response = await fetch(`${harness.origin}/auth/cli/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as any };
  };

  it('refuses every redirect_uri but the loopback callback with a port, and a challenge that is not S256: 400, no redirect', async () => {
    const browser = await signedIn(ada.token);
    const refused = [
      'http://evil.example/callback',
      'http://127.0.0.1.evil.example:1/callback',
      'https://127.0.0.1:1/callback',
      'http://localhost:1/callback',
      'http://u@127.0.0.1:1/callback',
      'http://127.0.0.1/callback',
      'http://127.0.0.1:1/other',
      'http://127.0.0.1:1/callback/',
      'http://127.0.0.1:1/callback?x=1',
      'http://127.0.0.1:1/callback#x',
      'http://127.0.0.1:99999/callback',
      'http://127.0.0.1:0/callback',
      // Allowed by RFC 8252, but no CSP form-action Chromium takes can name it.
      'http://[::1]:41234/callback',
    ];
    const flow = pkce();
    const cases = [
      ...refused.map((redirectUri) => ({ ...request(flow), redirect_uri: redirectUri })),
      { ...request(flow), code_challenge_method: 'plain' },
      { ...request(flow), code_challenge_method: undefined },
      { ...request(flow), code_challenge: undefined },
      { ...request(flow), code_challenge: 'too-short' },
      { ...request(flow), state: undefined },
      { ...request(flow), client_name: '<script>' },
    ];
    for (const params of cases) {
      // Signed in or not: the request is checked first.
      for (const who of [browser, new TestBrowser()]) {
        const response = await who.fetch(consentUrl(params));
        const page = await response.text();
        expect({ params, status: response.status, location: response.headers.get('location') }).toEqual({
          params,
          status: 400,
          location: null,
        });
        expect(page).toContain('cannot sign in a command line');
      }
    }
    // A parameter given twice is not a string.
    const twice = await browser.fetch(`${consentUrl(request(flow))}&redirect_uri=${encodeURIComponent(CALLBACK)}`);
    expect(twice.status).toBe(400);
    expect(await codesStored()).toBe(0);
  });

  it('sends a browser without a session to sign in, and back to the consent page afterwards', async () => {
    const params = request();
    const response = await new TestBrowser().fetch(consentUrl(params));
    expect(response.status).toBe(303);
    const location = new URL(response.headers.get('location')!, harness.origin);
    expect(location.pathname).toBe('/auth/login');
    const returnTo = location.searchParams.get('return_to')!;
    expect(returnTo).toBe(`/auth/cli?${consentQuery(params).toString()}`);
    // The sign-in lands there, and only there of all /auth/ paths.
    expect(safeReturnTo(returnTo)).toBe(returnTo);
    for (const other of [
      '/auth/login',
      '/auth/callback?code=x',
      '/auth/cli/token',
      '/auth/clix',
      '/auth/cli/../token',
    ]) {
      expect({ other, to: safeReturnTo(other) }).toEqual({ other, to: '/' });
    }
  });

  it('shows a consent page with a CSP that allows forms only to itself and the loopback, and no frames; a GET makes no code', async () => {
    const browser = await signedIn(ada.token);
    const { page, form } = await consentPage(browser, request());
    expect(page.response.headers.get('content-security-policy')).toBe(
      "default-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' http://127.0.0.1:*",
    );
    expect(page.response.headers.get('x-frame-options')).toBe('DENY');
    expect(page.response.headers.get('cache-control')).toBe('no-store');
    // Not no-referrer: Chromium would then send the form with `Origin: null`, which the Origin check refuses.
    expect(page.response.headers.get('referrer-policy')).toBe('same-origin');
    expect(page.body).toContain('as ada?');
    expect(page.body).toContain('port 41234');
    expect(form.action.href).toBe(`${harness.origin}/auth/cli`);
    expect(form.fields.csrf_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await codesStored()).toBe(0);
  });

  it('refuses a consent without the CSRF field, with another session’s, from another origin, or without a session: 403 or 401, no code', async () => {
    const browser = await signedIn(ada.token);
    const { form } = await consentPage(browser, request());
    const other = await signedIn(ada.token);
    const { form: otherForm } = await consentPage(other, request());
    const { csrf_token: _csrf, ...withoutCsrf } = form.fields;
    const attempts: [string, Promise<Response>, number][] = [
      ['no CSRF field', postConsent(browser, withoutCsrf), 403],
      ['an empty one', postConsent(browser, { ...form.fields, csrf_token: '' }), 403],
      ["another session's", postConsent(browser, { ...form.fields, csrf_token: otherForm.fields.csrf_token! }), 403],
      ['a foreign Origin', postConsent(browser, form.fields, 'http://evil.example'), 403],
      ['no session', postConsent(new TestBrowser(), form.fields), 401],
    ];
    for (const [what, answer, status] of attempts) {
      const response = await answer;
      expect({ what, status: response.status, location: response.headers.get('location') }).toEqual({
        what,
        status,
        location: null,
      });
    }
    expect(await codesStored()).toBe(0);
  });

  it('refuses a consent form whose request was changed to a foreign redirect or no S256 challenge, CSRF right: 400, no code', async () => {
    const browser = await signedIn(ada.token);
    const { form } = await consentPage(browser, request());
    const changes: Record<string, string>[] = [
      { redirect_uri: 'http://evil.example/callback' },
      { redirect_uri: 'http://127.0.0.1.evil.example:1/callback' },
      { redirect_uri: 'https://127.0.0.1:41234/callback' },
      { code_challenge_method: 'plain' },
      { code_challenge: 'too-short' },
    ];
    for (const changed of changes) {
      const response = await postConsent(browser, { ...form.fields, ...changed, decision: 'allow' });
      expect({ changed, status: response.status, location: response.headers.get('location') }).toEqual({
        changed,
        status: 400,
        location: null,
      });
    }
    expect(await codesStored()).toBe(0);
  });

  it('sends the browser back with access_denied and no code when the user cancels', async () => {
    const browser = await signedIn(ada.token);
    const flow = pkce();
    const { form } = await consentPage(browser, request(flow));
    const answer = await postConsent(browser, { ...form.fields, decision: 'deny' });
    expect(answer.status).toBe(303);
    expect(answer.headers.get('location')).toBe(`${CALLBACK}?error=access_denied&state=${flow.state}`);
    expect(await codesStored()).toBe(0);
  });

  it('exchanges a code once for a named API token; a replay is invalid_grant and revokes that token', async () => {
    const flow = pkce();
    const code = await codeFor(ada.token, flow);
    // Only the code's hash is stored.
    const rows = await harness.db.selectFrom('cliAuthorizations').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(code);
    const first = await exchange({ code, code_verifier: flow.verifier, redirect_uri: CALLBACK });
    expect(first).toEqual({
      status: 200,
      body: { token: expect.any(String), user: expect.objectContaining({ id: ada.id, name: 'ada' }) },
    });
    const token: string = first.body.token;
    const tokens = await harness.call('GET', '/users/me/tokens', token);
    expect(tokens.status).toBe(200);
    expect(tokens.body.items).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'cli laptop 2030-01-01' })]),
    );

    const replay = await exchange({ code, code_verifier: flow.verifier, redirect_uri: CALLBACK });
    expect(replay).toEqual({ status: 400, body: { error: expect.objectContaining({ code: 'invalid_grant' }) } });
    expect((await harness.call('GET', '/users/me/tokens', token)).status).toBe(401);
  });

  it('refuses a wrong verifier, another redirect_uri and an expired code, each 400 invalid_grant', async () => {
    const flow = pkce();
    const code = await codeFor(ada.token, flow);
    const wrongVerifier = await exchange({ code, code_verifier: pkce().verifier, redirect_uri: CALLBACK });
    expect(wrongVerifier).toEqual({ status: 400, body: { error: expect.objectContaining({ code: 'invalid_grant' }) } });
    const otherRedirect = await exchange({
      code,
      code_verifier: flow.verifier,
      redirect_uri: 'http://127.0.0.1:41235/callback',
    });
    expect(otherRedirect).toEqual({ status: 400, body: { error: expect.objectContaining({ code: 'invalid_grant' }) } });
    clock += 60_000;
    const expired = await exchange({ code, code_verifier: flow.verifier, redirect_uri: CALLBACK });
    expect(expired).toEqual({
      status: 400,
      body: { error: expect.objectContaining({ code: 'invalid_grant', message: expect.stringContaining('expired') }) },
    });
    // 59 s is still in time.
    const later = pkce();
    const fresh = await codeFor(ada.token, later);
    clock += 59_000;
    expect((await exchange({ code: fresh, code_verifier: later.verifier, redirect_uri: CALLBACK })).status).toBe(200);
  });

  it('gives a disabled user no code and no token, and refuses a token they got before', async () => {
    const bea = await harness.member('bea');
    const browser = await signedIn(bea.token);
    const before = pkce();
    const earlier = await codeFor(bea.token, before);
    const token = (await exchange({ code: earlier, code_verifier: before.verifier, redirect_uri: CALLBACK })).body
      .token;
    const pending = pkce();
    const pendingCode = await codeFor(bea.token, pending);
    const { form } = await consentPage(browser, request());
    expect((await harness.call('PATCH', `/users/${bea.id}`, harness.adminToken, { disabled: true })).status).toBe(200);
    const stored = await codesStored();

    const consent = await postConsent(browser, { ...form.fields, decision: 'allow' });
    expect({ status: consent.status, location: consent.headers.get('location') }).toEqual({
      status: 401,
      location: null,
    });
    expect(await codesStored()).toBe(stored);
    const late = await exchange({ code: pendingCode, code_verifier: pending.verifier, redirect_uri: CALLBACK });
    expect(late).toEqual({ status: 400, body: { error: expect.objectContaining({ code: 'invalid_grant' }) } });
    expect((await harness.call('GET', '/users/me/tokens', token)).status).toBe(401);
  });

  it('counts failed exchanges against the bearer slow-down of the address', async () => {
    // A full allowance of 20 failures a minute: the earlier tests' failures have refilled.
    clock += 60_000;
    const flow = pkce();
    const code = await codeFor(ada.token, flow);
    let status = 0;
    let attempts = 0;
    while (status !== 429 && attempts < 50) {
      attempts++;
      status = (await exchange({ code: `guess${attempts}`, code_verifier: flow.verifier, redirect_uri: CALLBACK }))
        .status;
    }
    expect({ attempts, status }).toEqual({ attempts: 21, status: 429 });
    // The right code is held back too, and so is a bearer token from that address, until the allowance refills.
    expect((await exchange({ code, code_verifier: flow.verifier, redirect_uri: CALLBACK })).status).toBe(429);
    expect((await harness.call('GET', '/users/me/tokens', ada.token)).status).toBe(429);
    clock += 60_000;
    expect((await harness.call('GET', '/users/me/tokens', ada.token)).status).toBe(200);
  });
});
