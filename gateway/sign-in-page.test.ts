import { createHash } from 'node:crypto';
import { GATEWAY_COOKIE } from './gateway';
import { parseDashboardUrl } from './sign-in-page';
import { DEFAULT_RUN_ID, rawRequest, startRouted, statusOf, type Routed } from '../test/support/gateway-harness';

const ID = 'gs-alpha';
const OTHER = 'gs-bravo';
const DASHBOARD = 'https://dash.example.test/app';
/** What a browser sends when the user opens a page. */
const NAVIGATION = {
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-dest': 'document',
};
const MISSING = {
  error: {
    code: 'token_missing',
    message: 'this gitspace needs an access token: ask the API for one (POST /api/v1/gitspaces/:id/access)',
  },
};

/**
 * Issue 14: a browser that opens a gitspace's URL without a valid session lands on a page that says to sign in and
 * links to the dashboard's /open/<id>, instead of raw JSON; everything that is not a browser opening a page keeps the
 * JSON error as it was. The real gateway, with a recording upstream that must never be reached.
 */
describe('the gateway to a browser without a session', () => {
  let routed: Routed;
  let bare: Routed;

  beforeAll(async () => {
    routed = await startRouted(ID, { dashboardUrl: `${DASHBOARD}/`, domain: 'gitspaces.test' });
    bare = await startRouted(ID);
  });
  afterAll(async () => {
    await routed?.close();
    await bare?.close();
  });

  const open = (h: Routed, path = `/gitspaces/${ID}/`, headers: Record<string, string> = NAVIGATION, method = 'GET') =>
    fetch(`${h.h.publicUrl}${path}`, { method, headers, redirect: 'manual' });
  const expectNoUpstream = () => {
    expect(routed.upstream.requests).toEqual([]);
    expect(bare.upstream.requests).toEqual([]);
  };

  /** Checks the page's head and shape, and returns its text. */
  const signInPage = async (response: Response) => {
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    const html = await response.text();
    const policy = response.headers.get('content-security-policy')!;
    // Nothing loads or runs but the page's own style, pinned by its hash.
    const style = /<style>([^<]*)<\/style>/.exec(html)![1]!;
    expect(policy.split('; ').sort()).toEqual(
      [
        "default-src 'none'",
        `style-src 'sha256-${createHash('sha256').update(style).digest('base64')}'`,
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
      ].sort(),
    );
    expect(html).not.toMatch(/<script|<link|<img|<iframe|\bsrc=|@import|url\(/i);
    expect(html).toContain('<h1>Sign in to open this gitspace</h1>');
    return html;
  };

  it('answers a navigation without a token with the sign-in page, linking to the dashboard', async () => {
    const html = await signInPage(await open(routed));
    expect([...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1])).toEqual([`${DASHBOARD}/open/${ID}`]);
    expect(html).toContain(`You are not signed in to gitspace <code>${ID}</code>.`);
    // Either sign of a navigation will do: Accept asking for HTML, or Sec-Fetch-Mode.
    await signInPage(await open(routed, `/gitspaces/${ID}/`, { accept: 'text/html' }));
    // (fetch sends its own Sec-Fetch-Mode: the navigation alone, as a browser sends it, goes raw.)
    const navigation = await rawRequest(
      routed.h.publicUrl,
      `GET /gitspaces/${ID}/src/main.ts?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\nSec-Fetch-Mode: navigate\r\nConnection: close\r\n\r\n`,
    );
    expect(statusOf(navigation)).toBe(401);
    expect(navigation).toContain('<h1>Sign in to open this gitspace</h1>');
    // HEAD: the head a GET would have, no body.
    const head = await open(routed, `/gitspaces/${ID}/`, NAVIGATION, 'HEAD');
    expect(head.status).toBe(401);
    expect(head.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(Number(head.headers.get('content-length'))).toBe(Buffer.byteLength(html));
    expect(await head.text()).toBe('');
    expectNoUpstream();
  });

  it('says why for an expired, invalid or revoked session', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await routed.h.sign({
      sub: 'user-1',
      gitspace_id: ID,
      run_id: DEFAULT_RUN_ID,
      aud: 'gitspaces-gateway',
      iss: 'gitspaces-control-plane',
      iat: now - 7200,
      exp: now - 3600,
    });
    const revoked = await routed.h.token(ID, { runId: 'an-older-run' });
    const cases: [string, string][] = [
      [expired, `Your access to gitspace <code>${ID}</code> has expired.`],
      ['not-a-token', `Your access to gitspace <code>${ID}</code> is not valid.`],
      [revoked, `Gitspace <code>${ID}</code> was started again since you opened it.`],
    ];
    for (const [token, reason] of cases) {
      const viaCookie = await open(routed, `/gitspaces/${ID}/`, {
        ...NAVIGATION,
        cookie: `${GATEWAY_COOKIE}=${token}`,
      });
      expect(await signInPage(viaCookie)).toContain(reason);
      const viaQuery = await open(routed, `/gitspaces/${ID}/?token=${encodeURIComponent(token)}`);
      expect(await signInPage(viaQuery)).toContain(reason);
    }
    expectNoUpstream();
  });

  it('says where to open the gitspace from when it does not know the dashboard', async () => {
    const html = await signInPage(await open(bare));
    expect(html).not.toContain('<a ');
    expect(html).toContain('Open it again from the Gitspaces dashboard, or with <code>gitspaces open</code>');
    expectNoUpstream();
  });

  it('keeps the JSON errors exactly as they were for everything that is not a browser opening a page', async () => {
    const json = async (response: Response, status: number, body: unknown) => {
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(await response.json()).toEqual(body);
    };
    await json(await open(routed, `/gitspaces/${ID}/`, {}), 401, MISSING);
    await json(await open(routed, `/gitspaces/${ID}/`, { accept: 'application/json' }), 401, MISSING);
    await json(await open(routed, `/gitspaces/${ID}/`, { accept: '*/*', 'sec-fetch-mode': 'cors' }), 401, MISSING);
    await json(
      await open(routed, `/gitspaces/${ID}/api`, { ...NAVIGATION, 'content-type': 'text/plain' }, 'POST'),
      401,
      MISSING,
    );
    await json(await open(routed, `/gitspaces/${ID}/`, { accept: 'text/html' }, 'DELETE'), 401, MISSING);
    // A token for another gitspace is not a missing session: 403, in JSON, to a browser too.
    const others = await routed.h.token(OTHER);
    const wrong = await open(routed, `/gitspaces/${ID}/`, { ...NAVIGATION, authorization: `Bearer ${others}` });
    expect(wrong.status).toBe(403);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('token_other_gitspace');
    // Not a gitspace path, or a gitspace that is not running: as before.
    await json(await open(routed, '/elsewhere', NAVIGATION), 404, {
      error: { code: 'not_found', message: 'nothing here: gitspaces are under /gitspaces/<id>/' },
    });
    const token = await routed.h.token('gs-stopped');
    await json(await open(routed, '/gitspaces/gs-stopped/', { ...NAVIGATION, authorization: `Bearer ${token}` }), 404, {
      error: { code: 'gitspace_not_running', message: "gitspace 'gs-stopped' is not running (start it first)" },
    });
    // A WebSocket handshake from a browser: the raw JSON refusal.
    const upgrade = await rawRequest(
      routed.h.publicUrl,
      `GET /gitspaces/${ID}/pty HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAccept: text/html\r\n\r\n',
    );
    expect(statusOf(upgrade)).toBe(401);
    expect(upgrade).toContain('application/json');
    expect(upgrade).toContain('"token_missing"');
    expectNoUpstream();
  });

  it('puts only the gitspace id it routed into the page, escaped; an attack in the path, host or query never appears', async () => {
    const attack = '"><script>alert(1)</script>';
    for (const path of [
      `/gitspaces/${attack}/`,
      `/gitspaces/${encodeURIComponent(attack)}/`,
      `/gitspaces/gs-alpha"onmouseover="x/`,
      `/gitspaces/gs-alpha%22%3E%3Cscript%3E/`,
    ]) {
      const answer = await rawRequest(
        routed.h.publicUrl,
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\nSec-Fetch-Mode: navigate\r\nConnection: close\r\n\r\n`,
      );
      expect({ path, status: statusOf(answer) }).toEqual({ path, status: 404 });
      expect(answer).not.toContain('text/html');
      expect(answer.toLowerCase()).not.toContain('<script');
    }
    // The query and a token that is no token are never echoed.
    const html = await signInPage(
      await open(routed, `/gitspaces/${ID}/?next=${encodeURIComponent(attack)}&token=${encodeURIComponent(attack)}`),
    );
    expect(html).not.toContain('alert(1)');
    expect(html.toLowerCase()).not.toContain('<script');

    // Host routing: the id comes from the Host header, and only a valid one is routed.
    for (const host of [`${attack}.gitspaces.test`, `gs-alpha"><b>x.gitspaces.test`, 'gs-alpha.gitspaces.test"><b>']) {
      const answer = await rawRequest(
        routed.h.publicUrl,
        `GET / HTTP/1.1\r\nHost: ${host}\r\nAccept: text/html\r\nConnection: close\r\n\r\n`,
      );
      expect(answer).not.toContain('text/html');
      expect(answer).not.toContain('<b>');
    }
    const hosted = await rawRequest(
      routed.h.publicUrl,
      `GET /?q=${encodeURIComponent(attack)} HTTP/1.1\r\nHost: GS-ALPHA.gitspaces.test\r\nAccept: text/html\r\nConnection: close\r\n\r\n`,
    );
    expect(statusOf(hosted)).toBe(401);
    expect(hosted).toContain(`href="${DASHBOARD}/open/${ID}"`);
    expect(hosted).toContain(`You are not signed in to gitspace <code>${ID}</code>.`);
    expect(hosted).not.toContain('alert(1)');
    expectNoUpstream();
  });

  it('takes only an http(s) dashboard URL without credentials, query or fragment, and escapes it', () => {
    expect(parseDashboardUrl('https://gitspaces.example.com/')).toBe('https://gitspaces.example.com');
    expect(parseDashboardUrl('http://127.0.0.1:3000')).toBe('http://127.0.0.1:3000');
    expect(parseDashboardUrl('https://example.com/a b/"x')).toBe('https://example.com/a%20b/%22x');
    for (const bad of [
      'javascript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'https://user:pw@example.com',
      'https://example.com/?next=x',
      'https://example.com/#x',
      'example.com',
      '',
    ]) {
      expect(() => parseDashboardUrl(bad)).toThrow();
    }
  });
});
