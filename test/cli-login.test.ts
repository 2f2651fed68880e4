import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loginCommand } from '../cli/commands/auth';
import { createContext } from '../cli/context';
import { clientName } from '../cli/web-login';
import { freeLoopbackPorts } from '../common/net';
import { CHROMIUM, CHROMIUM_ARGS } from './support/chromium';
import { startEntryProcess, type EntryProcess } from './support/entry-process';
import { formOf, TestBrowser, type Page } from './support/test-browser';

/**
 * `gitspaces login --web` end to end: the command line in-process, its browser opener handing the consent link to a
 * browser's cookie jar (TestBrowser), the API's real app in its own process signing in through a real OpenID Connect
 * provider (oidc-provider, as test/oidc-sign-in.test.ts runs them). A browser without a session signs in at the
 * provider, consents, and is sent back to the command line, which saves a token of its own; attacks on the way.
 */

const ADMIN_TOKEN = `gsp_${randomBytes(24).toString('base64url')}`;
const CLIENT = { client_id: 'gitspaces', client_secret: randomBytes(24).toString('base64url') };

describe('gitspaces login --web through an OpenID Connect provider', () => {
  let provider: EntryProcess;
  let api: EntryProcess;
  let apiUrl: string;
  let issuer: string;
  let configDir: string;

  beforeAll(async () => {
    const { providerPort, apiPort } = await freeLoopbackPorts(['providerPort', 'apiPort']);
    issuer = `http://127.0.0.1:${providerPort}`;
    const callback = `http://127.0.0.1:${apiPort}/auth/callback`;
    [provider, api] = await Promise.all([
      startEntryProcess(
        'oidc-provider-main.ts',
        {
          OIDC_TEST_PORT: String(providerPort),
          OIDC_TEST_CLIENTS: JSON.stringify([{ ...CLIENT, redirect_uris: [callback] }]),
        },
        'OIDC_PROVIDER_READY',
      ),
      startEntryProcess(
        'sign-in-api-main.ts',
        {
          GITSPACES_API_PORT: String(apiPort),
          GITSPACES_ADMIN_TOKEN: ADMIN_TOKEN,
          GITSPACES_OIDC_ISSUER: issuer,
          GITSPACES_OIDC_CLIENT_ID: CLIENT.client_id,
          GITSPACES_OIDC_CLIENT_SECRET: CLIENT.client_secret,
          GITSPACES_OIDC_SIGNUP: 'open',
          GITSPACES_CLI_LOGIN_CODE_TTL_SECONDS: '60',
        },
        'SIGN_IN_API_READY',
      ),
    ]);
    apiUrl = api.line;
    for (const name of ['alice', 'bob']) {
      const claims = { email: `${name}@example.com`, email_verified: true, preferred_username: name };
      const response = await fetch(`${issuer}/test-accounts/${name}`, { method: 'PUT', body: JSON.stringify(claims) });
      expect(response.status).toBe(204);
    }
  }, 90_000);
  afterAll(async () => {
    await Promise.all([provider?.stop(), api?.stop()]);
  }, 30_000);
  beforeEach(async () => {
    configDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-cli-login-'));
  });
  afterEach(async () => {
    await rm(configDir, { recursive: true, force: true });
  });

  /** The command line in-process; `browser` is what its opener hands the consent link to. */
  function cliWith(browser: (consentLink: string) => Promise<void>) {
    let stdout = '';
    const browserErrors: unknown[] = [];
    // The browser's last steps (reading the landing page) may still run when the command line has its token.
    let browsing: Promise<unknown> = Promise.resolve();
    const context = createContext(
      {
        stdin: process.stdin,
        stdout: { write: (text: string) => (stdout += text) },
        stderr: { write: () => true },
        stdinIsTerminal: false,
        stderrIsTerminal: false,
        onInterrupt: () => () => undefined,
      },
      {
        configDir,
        override: {},
        browserOpener: (url) => {
          browsing = browser(url).catch((error: unknown) => browserErrors.push(error));
        },
      },
    );
    return {
      login: async () => {
        await loginCommand(context, { url: apiUrl, web: true, webTimeoutMs: 30_000 });
        await browsing;
      },
      stdout: () => stdout,
      browserErrors,
    };
  }

  /**
   * From the consent link through the provider's login and consent pages as `login`, to the API's consent page; each
   * URL asked for is added to `visited`.
   */
  async function toConsentPage(browser: TestBrowser, link: string, login: string, visited: URL[]): Promise<Page> {
    const isConsentPage = (page: Page) =>
      page.url.origin === apiUrl && page.url.pathname === '/auth/cli' && page.response.status === 200;
    const record = (url: URL) => (visited.push(url), false);
    let page = await browser.navigate(link, {}, record);
    for (let step = 0; !isConsentPage(page); step++) {
      const form = formOf(page);
      if (!form || step > 3) throw new Error(`no sign-in form at ${page.url.href}: ${page.body.slice(0, 400)}`);
      page = await browser.navigate(
        form.action.href,
        {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ ...form.fields, login, password: 'any' }).toString(),
        },
        record,
      );
    }
    return page;
  }

  /** Allows on the consent page: the URL the API sends the browser to (the command line's callback), not visited. */
  async function allow(browser: TestBrowser, consentPage: Page): Promise<URL> {
    const form = formOf(consentPage)!;
    const answer = await browser.navigate(
      form.action.href,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: apiUrl },
        body: new URLSearchParams({ ...form.fields, decision: 'allow' }).toString(),
      },
      (url) => url.pathname === '/callback',
    );
    return answer.stoppedAt!;
  }

  const tokensOf = async (token: string) => {
    const response = await fetch(`${apiUrl}/api/v1/users/me/tokens`, { headers: { authorization: `Bearer ${token}` } });
    return { status: response.status, body: (await response.json()) as { items?: { name: string | null }[] } };
  };

  it('signs a browser without a session in at the provider, asks consent, and saves a named token (0600)', async () => {
    const browser = new TestBrowser();
    const visited: URL[] = [];
    let consentBody = '';
    let landing = '';
    const cli = cliWith(async (link) => {
      const consent = await toConsentPage(browser, link, 'alice', visited);
      consentBody = consent.body;
      const callback = await allow(browser, consent);
      landing = await (await browser.fetch(callback.href)).text();
    });
    await cli.login();
    expect(cli.browserErrors).toEqual([]);

    // No session: to the API's sign-in, the provider, and back to the consent page.
    expect(visited[0]!.pathname).toBe('/auth/login');
    expect(visited.some((url) => url.origin === issuer)).toBe(true);
    expect(consentBody).toContain(`Sign in the command line on ${clientName(os.hostname())} as alice?`);
    expect(landing).toContain('you can close this tab');

    const file = path.join(configDir, 'credentials.json');
    expect(((await stat(file)).mode & 0o777).toString(8)).toBe('600');
    const saved = JSON.parse(await readFile(file, 'utf8')) as { url: string; token: string };
    expect(saved.url).toBe(apiUrl);
    expect(cli.stdout()).toContain(`logged in to ${apiUrl} as alice (member)`);
    const today = new Date().toISOString().slice(0, 10);
    const tokens = await tokensOf(saved.token);
    expect(tokens.status).toBe(200);
    expect(tokens.body.items!.map((token) => token.name)).toEqual([`cli ${clientName(os.hostname())} ${today}`]);
  });

  it('refuses a forged callback, an intercepted code without its verifier, and revokes the token when the code is replayed', async () => {
    const browser = new TestBrowser();
    const attempts: Record<string, number> = {};
    let code = '';
    const cli = cliWith(async (link) => {
      const callback = await allow(browser, await toConsentPage(browser, link, 'bob', []));
      code = callback.searchParams.get('code')!;
      const redirectUri = `${callback.origin}${callback.pathname}`;
      // Someone who guessed the listener's port, without its state.
      const forged = new URL(callback);
      forged.searchParams.set('state', randomBytes(32).toString('base64url'));
      attempts.forged = (await fetch(forged)).status;
      // Someone who saw the code, without the command line's verifier.
      const intercepted = await fetch(`${apiUrl}/auth/cli/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ code, code_verifier: randomBytes(32).toString('base64url'), redirect_uri: redirectUri }),
      });
      attempts.intercepted = intercepted.status;
      attempts.delivered = (await browser.fetch(callback.href)).status;
    });
    await cli.login();
    expect(cli.browserErrors).toEqual([]);
    expect(attempts).toEqual({ forged: 400, intercepted: 400, delivered: 200 });
    const { token } = JSON.parse(await readFile(path.join(configDir, 'credentials.json'), 'utf8')) as { token: string };
    expect((await tokensOf(token)).status).toBe(200);

    // The code again, however it is sent: refused, and the token it gave is revoked.
    const replay = await fetch(`${apiUrl}/auth/cli/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        code,
        code_verifier: randomBytes(32).toString('base64url'),
        redirect_uri: 'http://127.0.0.1:1/callback',
      }),
    });
    expect(replay.status).toBe(400);
    expect(((await replay.json()) as { error: { code: string } }).error.code).toBe('invalid_grant');
    expect((await tokensOf(token)).status).toBe(401);
  });

  it('works in a real browser: Chromium follows the consent form to the command line under the page’s CSP', async () => {
    const chrome = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await (await chrome.newContext()).newPage();
      const violations: string[] = [];
      page.on('console', (message) => {
        if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
      });
      let landing = '';
      const cli = cliWith(async (link) => {
        await page.goto(link);
        await page.waitForURL((url) => url.origin === issuer);
        await page.locator('input[name=login]').fill('alice');
        await page.locator('input[name=password]').fill('any');
        await page.locator('button[type=submit]').click();
        await page.waitForURL((url) => url.origin === apiUrl || /consent|interaction/.test(url.pathname));
        if (new URL(page.url()).origin === issuer) await page.locator('button[type=submit]').click();
        await page.waitForURL((url) => url.origin === apiUrl && url.pathname === '/auth/cli');
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.waitForURL((url) => url.hostname === '127.0.0.1' && url.pathname === '/callback');
        landing = (await page.textContent('body')) ?? '';
      });
      await cli.login();
      expect(cli.browserErrors).toEqual([]);
      expect(landing).toContain('you can close this tab');
      expect(violations).toEqual([]);
      expect(cli.stdout()).toContain('as alice (member)');
    } finally {
      await chrome.close();
    }
  });

  it('answers a redirect_uri that is not the loopback callback with a 400 page, never a redirect', async () => {
    const challenge = randomBytes(32).toString('base64url').slice(0, 43);
    for (const redirectUri of [
      'http://evil.example/callback',
      'http://localhost:1/callback',
      'http://127.0.0.1/callback',
    ]) {
      const query = new URLSearchParams({
        redirect_uri: redirectUri,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: randomBytes(16).toString('base64url'),
        client_name: 'laptop',
      });
      const response = await new TestBrowser().fetch(`${apiUrl}/auth/cli?${query.toString()}`);
      expect({ redirectUri, status: response.status, location: response.headers.get('location') }).toEqual({
        redirectUri,
        status: 400,
        location: null,
      });
    }
  });
});
