import http from 'node:http';
import { type WebSocket } from 'ws';
import { ROUTE_SECRET_HEADER } from '../common/gateway-route';
import { GATEWAY_COOKIE } from './gateway';
import {
  rawRequest,
  startAgent,
  startHarness,
  startRecorder,
  startRouted,
  statusOf,
  type Harness,
  type Recorder,
  type TestAgent,
} from '../test/support/gateway-harness';
import { openWebSocket } from '../test/support/websocket';

const ID = 'gs-alpha';
const OTHER = 'gs-bravo';

/** Follows the token exchange like a browser: returns the session cookie (name=value). */
async function sessionCookie(h: Harness, gitspaceId: string): Promise<string> {
  const token = await h.token(gitspaceId);
  const response = await fetch(`${h.publicUrl}/gitspaces/${gitspaceId}/?token=${token}`, { redirect: 'manual' });
  expect(response.status).toBe(303);
  return response.headers.get('set-cookie')!.split(';')[0]!;
}

/** Collects terminal output until it matches. */
function waitForOutput(ws: WebSocket, pattern: RegExp, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(
      () => reject(new Error(`no ${pattern} in terminal output: ${JSON.stringify(output)}`)),
      timeoutMs,
    );
    const onMessage = (data: Buffer) => {
      output += data.toString();
      if (pattern.test(output)) {
        clearTimeout(timer);
        ws.off('message', onMessage);
        resolve(output);
      }
    };
    ws.on('message', onMessage);
  });
}

describe('gateway in front of a real agent', () => {
  let h: Harness;
  let agent: TestAgent;
  let other: TestAgent;

  beforeAll(async () => {
    h = await startHarness();
    agent = await startAgent(ID, { 'README.md': '# alpha\n', 'src/main.ts': 'export {};\n' });
    other = await startAgent(OTHER);
    expect((await h.route(ID, agent.url, { secret: agent.routeSecret })).status).toBe(201);
    expect((await h.route(OTHER, other.url, { secret: other.routeSecret })).status).toBe(201);
  });
  afterAll(async () => {
    await h.close();
    await agent.close();
    await other.close();
  });

  it('exchanges ?token= for an HttpOnly, SameSite cookie scoped to the gitspace and drops the token from the URL', async () => {
    const token = await h.token(ID);
    const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/?folder=x&token=${token}`, { redirect: 'manual' });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe(`/gitspaces/${ID}/?folder=x`);
    const cookie = response.headers.get('set-cookie')!;
    expect(cookie).toContain(`${GATEWAY_COOKIE}=${token}`);
    expect(cookie).toContain(`Path=/gitspaces/${ID}/`);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Lax');
    // Plain HTTP: no Secure flag (see hardening.test.ts for who may say otherwise).
    expect(cookie).not.toContain('Secure');
  });

  it('serves the IDE page and its assets with HTTP 200 through the gateway', async () => {
    const cookie = await sessionCookie(h, ID);
    const page = await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('assets/xterm.js');
    expect(html).toContain(ID);
    const asset = await fetch(`${h.publicUrl}/gitspaces/${ID}/assets/xterm.js`, { headers: { cookie } });
    expect(asset.status).toBe(200);
    expect((await asset.text()).length).toBeGreaterThan(100_000);
  });

  it('redirects /gitspaces/<id> to /gitspaces/<id>/ so relative URLs and the cookie path line up', async () => {
    const response = await fetch(`${h.publicUrl}/gitspaces/${ID}?a=1`, { redirect: 'manual' });
    expect(response.status).toBe(308);
    expect(response.headers.get('location')).toBe(`/gitspaces/${ID}/?a=1`);
  });

  it('runs a command in the shell over a WebSocket through the gateway and reads its output', async () => {
    const cookie = await sessionCookie(h, ID);
    const ws = await openWebSocket(h.wsUrl(`/gitspaces/${ID}/pty`), { cookie, origin: h.publicUrl });
    // One listener for both: ws can emit several frames in one tick, so a second listener could miss the ls output.
    const output = waitForOutput(ws, /answer-42[\s\S]*README\.md/);
    ws.send(JSON.stringify({ type: 'input', data: 'echo answer-$((6*7)); ls\r' }));
    expect(await output).toMatch(/answer-42[\s\S]*README\.md/);
    ws.close();
  });

  it('accepts the token as a bearer header, for clients that are not browsers', async () => {
    const token = await h.token(ID);
    const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
  });

  describe('refuses', () => {
    const page = (id: string, init: RequestInit = {}) =>
      fetch(`${h.publicUrl}/gitspaces/${id}/`, { redirect: 'manual', ...init });
    const withToken = (id: string, token: string) => page(id, { headers: { cookie: `${GATEWAY_COOKIE}=${token}` } });
    const now = () => Math.floor(Date.now() / 1000);
    const claims = (overrides: Record<string, unknown> = {}) => ({
      sub: 'user-1',
      gitspace_id: ID,
      aud: 'gitspaces-gateway',
      iss: 'gitspaces-control-plane',
      run_id: 'run-1',
      iat: now(),
      exp: now() + 600,
      ...overrides,
    });

    it('a request without a token: 401', async () => {
      const response = await page(ID);
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: { code: 'token_missing' } });
    });

    it('an expired token: 401', async () => {
      const token = await h.sign(claims({ iat: now() - 7200, exp: now() - 3600 }));
      const response = await withToken(ID, token);
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: { code: 'token_expired' } });
    });

    it('a token whose signature was tampered with: 401', async () => {
      const token = await h.token(ID);
      const [header, payload, signature] = token.split('.') as [string, string, string];
      const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
      expect((await withToken(ID, `${header}.${payload}.${flipped}`)).status).toBe(401);
      // A payload edited to name another gitspace, with the original signature.
      const forged = Buffer.from(
        JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), gitspace_id: OTHER }),
      );
      expect((await withToken(OTHER, `${header}.${forged.toString('base64url')}.${signature}`)).status).toBe(401);
      // No signature at all.
      const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`;
      expect((await withToken(ID, unsigned)).status).toBe(401);
    });

    it('a token for another audience or issuer: 401', async () => {
      const response = await withToken(ID, await h.sign(claims({ aud: 'gitspaces-api' })));
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: { code: 'token_invalid' } });
      expect((await withToken(ID, await h.sign(claims({ iss: 'someone-else' })))).status).toBe(401);
    });

    it('a token that names no run (issued before tokens were bound to runs): 401', async () => {
      const response = await withToken(ID, await h.sign(claims({ run_id: undefined })));
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: { code: 'token_invalid' } });
    });

    it('a valid token for another gitspace: 403', async () => {
      const token = await h.token(OTHER);
      const response = await withToken(ID, token);
      expect(response.status).toBe(403);
      expect(await response.json()).toMatchObject({ error: { code: 'token_other_gitspace' } });
      const ws = openWebSocket(h.wsUrl(`/gitspaces/${ID}/pty?token=${token}`));
      await expect(ws).rejects.toThrow(/403/);
    });

    it('a WebSocket without a token, or from another origin: 401 / 403', async () => {
      await expect(openWebSocket(h.wsUrl(`/gitspaces/${ID}/pty`))).rejects.toThrow(/401/);
      const cookie = await sessionCookie(h, ID);
      await expect(
        openWebSocket(h.wsUrl(`/gitspaces/${ID}/pty`), { cookie, origin: 'http://evil.example' }),
      ).rejects.toThrow(/403/);
    });

    it('a gitspace without a route (never started, stopped or unknown): 404', async () => {
      const token = await h.token('gs-unregistered');
      const response = await withToken('gs-unregistered', token);
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({ error: { code: 'gitspace_not_running' } });
    });

    it('the agent private API through the gateway: 404', async () => {
      const cookie = await sessionCookie(h, ID);
      const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/_agent/healthz`, { headers: { cookie } });
      expect(response.status).toBe(404);
    });
  });
});

describe('gateway: no open proxy, no leaked credentials', () => {
  let h: Harness;
  let upstream: Recorder;
  let canary: Recorder;
  let secret: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    const respond = (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.url?.startsWith('/redirect')) {
        res.writeHead(302, { location: '/inside/page' }).end();
        return;
      }
      res.writeHead(200, {
        'set-cookie': [`${GATEWAY_COOKIE}=planted; Path=/`, 'ide-session=1; Path=/; HttpOnly'],
        connection: 'x-secret-hop',
        'x-secret-hop': 'must-not-pass',
      });
      res.end('ok');
    };
    ({ h, upstream, secret, close } = await startRouted(ID, { respond }));
    canary = await startRecorder();
  });
  afterAll(async () => {
    await close();
    await canary.close();
  });

  it('never forwards the token, the gateway cookie or the bearer header to the machine, and adds the route secret to everything', async () => {
    const token = await h.token(ID);
    upstream.requests.length = 0;
    await fetch(`${h.publicUrl}/gitspaces/${ID}/a?x=1`, {
      headers: { cookie: `${GATEWAY_COOKIE}=${token}; ide=keep`, [ROUTE_SECRET_HEADER]: 'forged-by-the-client' },
    });
    await fetch(`${h.publicUrl}/gitspaces/${ID}/b?token=${token}&y=2`, { method: 'POST', body: 'payload' });
    await fetch(`${h.publicUrl}/gitspaces/${ID}/c`, { headers: { authorization: `Bearer ${token}` } });
    await openWebSocket(h.wsUrl(`/gitspaces/${ID}/ws?token=${token}`)).catch(() => undefined);
    expect(upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /a?x=1',
      'POST /b?y=2',
      'GET /c',
      'GET /ws',
    ]);
    for (const request of upstream.requests) {
      const seen = JSON.stringify(request);
      expect(seen).not.toContain(token);
      expect(seen).not.toContain(GATEWAY_COOKIE);
      expect(request.headers.authorization).toBeUndefined();
      expect(request.headers['x-forwarded-prefix']).toBe(`/gitspaces/${ID}`);
      // The gateway's secret, once: the client's own value was taken out.
      expect(request.headers[ROUTE_SECRET_HEADER]).toBe(secret);
    }
    expect(upstream.requests[0]!.headers.cookie).toBe('ide=keep');
    expect(upstream.requests[1]!.body).toBe('payload');
  });

  it('keeps the machine from planting the gateway cookie, and its cookies and redirects inside the prefix', async () => {
    const token = await h.token(ID);
    const headers = { cookie: `${GATEWAY_COOKIE}=${token}` };
    const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers });
    expect(response.headers.getSetCookie()).toEqual([`ide-session=1; Path=/gitspaces/${ID}/; HttpOnly`]);
    expect(response.headers.get('x-secret-hop')).toBeNull();
    const redirect = await fetch(`${h.publicUrl}/gitspaces/${ID}/redirect`, { headers, redirect: 'manual' });
    expect(redirect.headers.get('location')).toBe(`/gitspaces/${ID}/inside/page`);
  });

  it('only ever dials registered route targets, whatever the request target, Host or path says', async () => {
    const token = await h.token(ID);
    const cookie = `${GATEWAY_COOKIE}=${token}`;
    const canaryHost = new URL(canary.url).host;
    const attempts: Array<[string, string, number]> = [
      ['GET', `${canary.url}/`, 400],
      ['GET', `${canary.url}/gitspaces/${ID}/`, 400],
      ['GET', `//${canaryHost}/`, 400],
      ['GET', `/gitspaces/${ID}/../../`, 400],
      ['GET', `/gitspaces/${ID}/%2e%2e/%2E%2E/x`, 400],
      ['GET', `/gitspaces/${ID}/..%5c..%5cx`, 400],
      ['GET', `/gitspaces/../gitspaces/${ID}/`, 400],
      ['GET', '/', 404],
      ['GET', `/gitspaces/${encodeURIComponent(canaryHost)}/`, 404],
      ['GET', `/gitspaces/${ID}@${canaryHost}/`, 404],
      ['CONNECT', canaryHost, 405],
    ];
    upstream.requests.length = 0;
    for (const [method, target, expected] of attempts) {
      const answer = await rawRequest(
        h.publicUrl,
        `${method} ${target} HTTP/1.1\r\nHost: ${canaryHost}\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`,
      );
      expect([target, statusOf(answer)]).toEqual([target, expected]);
    }
    expect(canary.requests).toEqual([]);
    expect(upstream.requests).toEqual([]);
  });

  it('answers /healthz itself', async () => {
    const response = await fetch(`${h.publicUrl}/healthz`);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('answers HEAD requests, its own refusals included, with the head a GET would get', async () => {
    const health = await fetch(`${h.publicUrl}/healthz`, { method: 'HEAD' });
    expect(health.status).toBe(200);
    expect(Number(health.headers.get('content-length'))).toBeGreaterThan(0);
    expect(await health.text()).toBe('');
    expect((await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { method: 'HEAD' })).status).toBe(401);
    const token = await h.token(ID);
    const proxied = await fetch(`${h.publicUrl}/gitspaces/${ID}/`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(proxied.status).toBe(200);
  });
});

describe('gateway upstream failures', () => {
  let h: Harness;
  let silent: http.Server;

  beforeAll(async () => {
    h = await startHarness({ upstreamTimeoutMs: 300 });
    silent = http.createServer(() => undefined); // accepts and never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    await h.close();
    silent.closeAllConnections();
    silent.close();
  });

  it('answers 504 with a short explanation when the machine does not answer in time', async () => {
    const port = (silent.address() as { port: number }).port;
    await h.route(ID, `http://127.0.0.1:${port}`);
    const token = await h.token(ID);
    const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(504);
    expect(await response.json()).toMatchObject({
      error: { code: 'machine_timeout', message: expect.stringContaining('300 ms') },
    });
  });

  it('answers 502 when the machine is unreachable', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    await h.route(ID, `http://127.0.0.1:${port}`);
    const token = await h.token(ID);
    const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({
      error: { code: 'machine_unreachable', message: expect.stringContaining('ECONNREFUSED') },
    });
    await expect(openWebSocket(h.wsUrl(`/gitspaces/${ID}/pty?token=${token}`))).rejects.toThrow(/502/);
  });
});

describe('gateway routes lifecycle', () => {
  let h: Harness;
  let agent: TestAgent;

  beforeAll(async () => {
    h = await startHarness();
    agent = await startAgent(ID);
  });
  afterAll(async () => {
    await h.close();
    await agent.close();
  });

  it('keeps its routes across a restart', async () => {
    expect((await h.route(ID, agent.url, { secret: agent.routeSecret })).status).toBe(201);
    await h.restart();
    const listed = await h.admin('GET', '/routes');
    expect(listed.body).toEqual({
      routes: [{ gitspaceId: ID, target: agent.url, runId: 'run-1', updatedAt: expect.any(String) }],
    });
    // The route secret went in and never comes out.
    expect(JSON.stringify(listed.body)).not.toContain(agent.routeSecret);
    const cookie = await sessionCookie(h, ID);
    expect((await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { cookie } })).status).toBe(200);
  });

  it('closes open WebSockets at once when the route is deleted (a stop), and refuses new ones with 404', async () => {
    await h.route(ID, agent.url, { secret: agent.routeSecret });
    const cookie = await sessionCookie(h, ID);
    // Keep-alive connections of earlier requests count too: the WebSocket adds one.
    const before = h.gateway.connectionCount(ID);
    const ws = await openWebSocket(h.wsUrl(`/gitspaces/${ID}/pty`), { cookie });
    const ready = waitForOutput(ws, /ready-1/);
    ws.send(JSON.stringify({ type: 'input', data: 'echo ready-$((0+1))\r' }));
    await ready;
    expect(h.gateway.connectionCount(ID)).toBe(before + 1);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    const started = Date.now();
    expect((await h.admin('DELETE', `/routes/${ID}`)).status).toBe(204);
    await closed;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(h.gateway.connectionCount(ID)).toBe(0);
    await expect(openWebSocket(h.wsUrl(`/gitspaces/${ID}/pty`), { cookie })).rejects.toThrow(/404/);
    expect((await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { cookie } })).status).toBe(404);
    expect((await h.admin('DELETE', `/routes/${ID}`)).status).toBe(204);
  });
});

describe('gateway host routing', () => {
  let h: Harness;
  let upstream: Recorder;
  let close: () => Promise<void>;

  beforeAll(async () => ({ h, upstream, close } = await startRouted(ID, { domain: 'gitspaces.test' })));
  afterAll(() => close());

  const get = (host: string, path: string, headers: Record<string, string> = {}) =>
    rawRequest(
      h.publicUrl,
      `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}Connection: close\r\n\r\n`,
    );

  it('routes <id>.<domain> with a host-only cookie and forwards the path unchanged', async () => {
    const token = await h.token(ID);
    const exchange = await get(`${ID}.gitspaces.test`, `/some/page?token=${token}`);
    expect(statusOf(exchange)).toBe(303);
    expect(exchange).toMatch(/location: \/some\/page\r\n/i);
    expect(exchange).toMatch(
      new RegExp(`set-cookie: ${GATEWAY_COOKIE}=[^;]+; Path=/; Max-Age=\\d+; HttpOnly; SameSite=Lax\\r\\n`, 'i'),
    );
    expect(exchange).not.toMatch(/domain=/i);
    upstream.requests.length = 0;
    const answer = await get(`${ID}.gitspaces.test:8080`, '/some/page', { cookie: `${GATEWAY_COOKIE}=${token}` });
    expect(statusOf(answer)).toBe(200);
    expect(upstream.requests.map((r) => r.url)).toEqual(['/some/page']);
  });

  it('does not route look-alike hosts', async () => {
    const token = await h.token(ID);
    upstream.requests.length = 0;
    for (const host of [`${ID}.gitspaces.test.evil.example`, `x.${ID}.gitspaces.test`, `${ID}gitspaces.test`]) {
      expect(statusOf(await get(host, '/', { cookie: `${GATEWAY_COOKIE}=${token}` }))).toBe(404);
    }
    expect(upstream.requests).toEqual([]);
  });
});
