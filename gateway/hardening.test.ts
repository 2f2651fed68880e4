import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { ROUTE_SECRET_HEADER } from '../common/gateway-route';
import { GATEWAY_COOKIE } from './gateway';
import {
  startHarness,
  startRecorder,
  startRouted,
  statusOf,
  type Harness,
  type Recorder,
} from '../test/support/gateway-harness';
import { openWebSocket } from '../test/support/websocket';
import { TrustedProxies } from '../common/client-address';

/**
 * Attacks on the gateway's public listener, each written as an attacker would try it (issue 10): malformed and
 * smuggling requests, upgrades other than WebSocket, the agent's private API by other spellings, encoded token
 * parameters, spoofed forwarding headers, connection floods, token guessing, sessions outliving their token, and
 * tokens of an earlier run. Every one must be refused without anything reaching the machine.
 */

const ID = 'gs-alpha';

interface Conversation {
  /** Everything the gateway sent until it closed the connection (or until `settleMs` of silence). */
  text: string;
  closed: boolean;
}

/** Sends `parts` over one connection (with `gapMs` between them) and collects the answer until close or silence. */
function talk(url: string, parts: string[], { gapMs = 20, settleMs = 400 } = {}): Promise<Conversation> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let text = '';
    let timer: NodeJS.Timeout | undefined;
    const settle = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        socket.destroy();
        resolve({ text, closed: false });
      }, settleMs);
    };
    socket.on('data', (data) => {
      text += data.toString('latin1');
      settle();
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? undefined : reject(error)));
    socket.on('connect', async () => {
      for (const [i, part] of parts.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (!socket.destroyed) socket.write(part, 'latin1');
      }
      settle();
    });
  });
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

/** An upstream that speaks raw TCP: answers any request head with `answer` and counts the bytes it received. */
async function rawUpstream(answer: string): Promise<{ url: string; received: () => string; close(): Promise<void> }> {
  let received = '';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on('data', (data) => {
      const first = received === '';
      received += data.toString('latin1');
      if (first) socket.write(answer);
      else socket.write(data); // a tunnel: everything after the switch comes back
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: () => received,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A WebSocket echo upstream that records each handshake's headers. Like a careless IDE, it sends the route secret it
 * got back in every answer: plain responses, redirects (`/redirect`), 101s and refused upgrades (`/refused`).
 */
async function echoUpstream(): Promise<{
  url: string;
  handshakes: http.IncomingHttpHeaders[];
  close(): Promise<void>;
}> {
  const handshakes: http.IncomingHttpHeaders[] = [];
  const echoed = (req: http.IncomingMessage) => ({ [ROUTE_SECRET_HEADER]: String(req.headers[ROUTE_SECRET_HEADER]) });
  const server = http.createServer((req, res) => {
    if (req.url === '/redirect') res.writeHead(302, { ...echoed(req), location: '/elsewhere' }).end();
    else res.writeHead(200, echoed(req)).end('plain');
  });
  const wss = new WebSocketServer({
    server,
    verifyClient: ({ req }, done) => (req.url === '/refused' ? done(false, 403, 'Forbidden', echoed(req)) : done(true)),
  });
  wss.on('headers', (headers, req) => headers.push(`${ROUTE_SECRET_HEADER}: ${echoed(req)[ROUTE_SECRET_HEADER]}`));
  wss.on('connection', (ws, req) => {
    handshakes.push(req.headers);
    ws.on('message', (data, binary) => ws.send(data, { binary }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    handshakes,
    close: () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const host = (h: Harness) => new URL(h.publicUrl).host;
const WS_HANDSHAKE = 'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

describe('the public listener refuses malformed and smuggling requests before anything reaches the machine', () => {
  let h: Harness;
  let upstream: Recorder;
  let cookie: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    let token: string;
    ({ h, upstream, token, close } = await startRouted(ID, { timeouts: { headersMs: 1_000, keepAliveMs: 400 } }));
    cookie = `Cookie: ${GATEWAY_COOKIE}=${token}\r\n`;
  });
  afterAll(() => close());
  beforeEach(() => {
    upstream.requests.length = 0;
    upstream.heads.length = 0;
  });

  // Each would reach the machine if it were read leniently; the request after it would be the smuggled one.
  const path = `/gitspaces/${ID}/x`;
  const smuggled = (c: string) => `GET /gitspaces/${ID}/smuggled HTTP/1.1\r\nHost: x\r\n${c}\r\n`;
  // Where llhttp answers differently from the parser it replaced, the comment says what the old answer was.
  const cases: [string, (c: string) => string, number][] = [
    ['a malformed request line', (c) => `GET ${path} HTTP/1.1 extra\r\nHost: x\r\n${c}\r\n`, 400],
    // llhttp reads a request line without a version as HTTP/0.9, which the gateway refuses (was 400).
    ['a request line without a version', (c) => `GET ${path}\r\nHost: x\r\n${c}\r\n`, 505],
    ['whitespace in the target', (c) => `GET ${path} b HTTP/1.1\r\nHost: x\r\n${c}\r\n`, 400],
    ['whitespace before a colon', (c) => `GET ${path} HTTP/1.1\r\nHost : x\r\n${c}\r\n`, 400],
    ['obs-fold', (c) => `GET ${path} HTTP/1.1\r\nHost: x\r\n${c}X-A: a\r\n b\r\n\r\n`, 400],
    ['a bare LF in a header', (c) => `GET ${path} HTTP/1.1\r\nHost: x\n${c}X-A: a\r\n\r\n`, 400],
    ['a control character in a value', (c) => `GET ${path} HTTP/1.1\r\nHost: x\r\n${c}X-A: a\x01b\r\n\r\n`, 400],
    ['HTTP/1.1 without Host', (c) => `GET ${path} HTTP/1.1\r\n${c}\r\n`, 400],
    ['two Host headers', (c) => `GET ${path} HTTP/1.1\r\nHost: a\r\nHost: b\r\n${c}\r\n`, 400],
    [
      'Content-Length with Transfer-Encoding',
      (c) => `POST ${path} HTTP/1.1\r\nHost: x\r\n${c}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      400,
    ],
    [
      'different Content-Length values',
      (c) => `POST ${path} HTTP/1.1\r\nHost: x\r\n${c}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`,
      400,
    ],
    [
      'the same Content-Length twice',
      (c) => `POST ${path} HTTP/1.1\r\nHost: x\r\n${c}Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd`,
      400,
    ],
    [
      'a Content-Length that is not a number',
      (c) => `POST ${path} HTTP/1.1\r\nHost: x\r\n${c}Content-Length: +3\r\n\r\nabc`,
      400,
    ],
    [
      'Transfer-Encoding in HTTP/1.0',
      (c) => `POST ${path} HTTP/1.0\r\n${c}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      400,
    ],
    [
      'a transfer coding other than chunked',
      (c) => `POST ${path} HTTP/1.1\r\nHost: x\r\n${c}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
      501,
    ],
    [
      'two Transfer-Encoding headers',
      (c) =>
        `POST ${path} HTTP/1.1\r\nHost: x\r\n${c}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      400,
    ],
    ['an HTTP version other than 1.x', (c) => `GET ${path} HTTP/2.0\r\nHost: x\r\n${c}\r\n`, 505],
    // llhttp knows no HTTP/1.2 at all (was 505).
    ['HTTP/1.2', (c) => `GET ${path} HTTP/1.2\r\nHost: x\r\n${c}\r\n`, 400],
    [
      'an expectation other than 100-continue',
      (c) => `GET ${path} HTTP/1.1\r\nHost: x\r\n${c}Expect: magic\r\n\r\n`,
      417,
    ],
    [
      'a head over 16 KiB',
      (c) => `GET ${path} HTTP/1.1\r\nHost: x\r\n${c}X-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`,
      431,
    ],
    [
      'more than 200 header lines',
      (c) => `GET ${path} HTTP/1.1\r\nHost: x\r\n${c}${'X-A: a\r\n'.repeat(200)}\r\n`,
      431,
    ],
    // llhttp knows the methods it parses; any other is refused (the old parser took any token).
    ['an unknown method', (c) => `FROB ${path} HTTP/1.1\r\nHost: x\r\n${c}\r\n`, 400],
    ['HTTP/2 prior knowledge', () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400],
  ];
  it.each(cases)('%s', async (_name, request, status) => {
    const reply = await talk(h.publicUrl, [request(cookie) + smuggled(cookie)]);
    expect(statuses(reply.text)).toEqual([status]);
    expect(reply.closed).toBe(true);
    expect(upstream.heads).toEqual([]);
  });

  it.each([
    ['a bad chunk size', 'zz\r\nhello\r\n0\r\n\r\n'],
    ['a chunk without its CRLF', '5\r\nhelloXX0\r\n\r\n'],
    ['a chunk size ended by a bare LF', '5\nhello\r\n0\r\n\r\n'],
  ])('%s in a chunked body: the request never completes upstream', async (_name, body) => {
    const reply = await talk(h.publicUrl, [
      `POST ${path} HTTP/1.1\r\nHost: x\r\n${cookie}Transfer-Encoding: chunked\r\n\r\n${body}` + smuggled(cookie),
    ]);
    expect(statuses(reply.text)).toEqual([400]);
    expect(reply.closed).toBe(true);
    // Whatever the gateway sent upstream before the refusal lands there now: checked here, not leaked into the next test.
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The head may have been forwarded while the body streamed; the body never completed and nothing followed it.
    expect(upstream.requests).toEqual([]);
    expect(upstream.heads.filter((head) => head.includes('smuggled'))).toEqual([]);
  });

  it('answers 408 to a head that does not arrive in time, and closes idle connections, new or kept alive', async () => {
    const slow = await talk(h.publicUrl, [`GET ${path} HTTP/1.1\r\nHost: x\r\n`], { settleMs: 3_000 });
    expect(statuses(slow.text)).toEqual([408]);
    expect(slow.closed).toBe(true);
    // A connection that never sends anything is held no longer than a head may take (Node says 408 to it too).
    const silent = await talk(h.publicUrl, [], { settleMs: 3_000 });
    expect(statuses(silent.text)).toEqual([408]);
    expect(silent.closed).toBe(true);
    const idle = await talk(h.publicUrl, [`GET ${path} HTTP/1.1\r\nHost: x\r\n${cookie}\r\n`], { settleMs: 3_000 });
    expect(statuses(idle.text)).toEqual([200]);
    expect(idle.closed).toBe(true);
    expect(upstream.heads).toEqual(['GET /x']);
  });

  it('answers pipelined requests in order, and sends 100 Continue only once a request is authorised', async () => {
    const get = (p: string) => `GET /gitspaces/${ID}/${p} HTTP/1.1\r\nHost: x\r\n${cookie}\r\n`;
    const pipelined = await talk(h.publicUrl, [get('one') + get('two') + get('three')]);
    expect(statuses(pipelined.text)).toEqual([200, 200, 200]);
    expect(upstream.heads).toEqual(['GET /one', 'GET /two', 'GET /three']);

    const put = (c: string) =>
      `PUT ${path} HTTP/1.1\r\nHost: x\r\n${c}Expect: 100-continue\r\nContent-Length: 2\r\n\r\n`;
    const refused = await talk(h.publicUrl, [put('')]);
    expect(statuses(refused.text)).toEqual([401]);
    expect(refused.closed).toBe(true);
    const asked = await talk(h.publicUrl, [put(cookie), 'ok']);
    expect(statuses(asked.text)).toEqual([100, 200]);
    expect(upstream.requests.at(-1)).toMatchObject({ method: 'PUT', url: '/x', body: 'ok' });
  });
});

describe('only WebSocket upgrades are tunnelled', () => {
  let h: Harness;
  let tunnel: Awaited<ReturnType<typeof rawUpstream>>;
  let cookie: string;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    h = await startHarness();
    // An upstream that switches to anything it is asked for and then echoes raw bytes: a tunnel past the gateway.
    tunnel = await rawUpstream('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    await h.route(ID, tunnel.url);
    cookie = `Cookie: ${GATEWAY_COOKIE}=${await h.token(ID)}\r\n`;
  });
  afterAll(async () => {
    await h.close();
    await tunnel.close();
    for (const cleanup of cleanups) await cleanup();
  });

  it.each([
    [
      'h2c',
      'GET',
      'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n',
    ],
    ['a custom protocol', 'GET', 'Connection: upgrade\r\nUpgrade: raw-tcp\r\n'],
    ['websocket listed with another protocol', 'GET', 'Connection: upgrade\r\nUpgrade: websocket, h2c\r\n'],
    ['websocket with another method', 'POST', `Connection: upgrade\r\nUpgrade: websocket\r\n${WS_HANDSHAKE}`],
  ])('%s: refused, nothing reaches the machine', async (_name, method, upgrade) => {
    const reply = await talk(h.publicUrl, [
      `${method} /gitspaces/${ID}/ws HTTP/1.1\r\nHost: ${host(h)}\r\n${cookie}${upgrade}\r\nPRI * HTTP/2.0\r\n\r\n`,
    ]);
    expect(statuses(reply.text)).toEqual([400]);
    expect(reply.text).toContain('upgrade_refused');
    expect(reply.closed).toBe(true);
    expect(tunnel.received()).toBe('');
  });

  it('an upstream that switches a WebSocket request to another protocol: 502, no tunnel', async () => {
    const other = await rawUpstream('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    cleanups.push(other.close);
    await h.route(ID, other.url);
    const reply = await talk(h.publicUrl, [
      `GET /gitspaces/${ID}/ws HTTP/1.1\r\nHost: ${host(h)}\r\n${cookie}Connection: Upgrade\r\nUpgrade: WebSocket\r\n${WS_HANDSHAKE}\r\n`,
      'tunnelled bytes',
    ]);
    expect(statuses(reply.text)).toEqual([502]);
    expect(reply.text).not.toContain('tunnelled bytes');
    // The upstream got the (WebSocket) upgrade request, with the gateway's own Upgrade value, and nothing after it.
    expect(other.received()).toMatch(/^GET \/ws HTTP\/1\.1\r\n/);
    expect(other.received()).toMatch(/\r\nupgrade: websocket\r\n/i);
    expect(other.received()).not.toContain('tunnelled bytes');
  });
});

describe('WebSockets', () => {
  let h: Harness;
  let echo: Awaited<ReturnType<typeof echoUpstream>>;

  beforeAll(async () => {
    h = await startHarness();
    echo = await echoUpstream();
  });
  afterAll(async () => {
    await h.close();
    await echo.close();
  });

  it('are tunnelled whatever the letter case of Upgrade, with the route secret and the forwarding headers', async () => {
    const { secret } = await h.route(ID, echo.url);
    const token = await h.token(ID);
    const reply = await talk(h.publicUrl, [
      `GET /gitspaces/${ID}/ws HTTP/1.1\r\nHost: ${host(h)}\r\nCookie: ${GATEWAY_COOKIE}=${token}\r\n` +
        `Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n${WS_HANDSHAKE}` +
        `${ROUTE_SECRET_HEADER}: forged\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n`,
    ]);
    expect(statuses(reply.text)).toEqual([101]);
    expect(echo.handshakes.at(-1)).toMatchObject({
      [ROUTE_SECRET_HEADER]: secret,
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-prefix': `/gitspaces/${ID}`,
    });
    expect(JSON.stringify(echo.handshakes.at(-1))).not.toContain(token);
  });

  it('never show the client the route secret, though the machine echoes it in every answer', async () => {
    const { secret } = await h.route(ID, echo.url);
    const cookie = `Cookie: ${GATEWAY_COOKIE}=${await h.token(ID)}\r\n`;
    // The machine does echo it (asked directly, with the header the gateway adds).
    const direct = await talk(echo.url, [
      `GET /page HTTP/1.1\r\nHost: x\r\n${ROUTE_SECRET_HEADER}: ${secret}\r\nConnection: close\r\n\r\n`,
    ]);
    expect(direct.text).toContain(secret);
    const through = (path: string, extra = '') =>
      talk(h.publicUrl, [`GET /gitspaces/${ID}${path} HTTP/1.1\r\nHost: ${host(h)}\r\n${cookie}${extra}\r\n`]);
    const upgrade = `Connection: Upgrade\r\nUpgrade: websocket\r\n${WS_HANDSHAKE}`;
    const answers = {
      page: await through('/page', 'Connection: close\r\n'),
      redirect: await through('/redirect', 'Connection: close\r\n'),
      switched: await through('/ws', upgrade),
      refused: await through('/refused', upgrade),
    };
    expect(Object.values(answers).map((answer) => statusOf(answer.text))).toEqual([200, 302, 101, 403]);
    for (const answer of Object.values(answers)) {
      expect(answer.text).not.toContain(secret);
      expect(answer.text.toLowerCase()).not.toContain(ROUTE_SECRET_HEADER);
    }
  });

  it('close by themselves when their token expires', async () => {
    await h.route(ID, echo.url);
    const token = await h.token(ID, { expiresInSeconds: 2 });
    const ws = await openWebSocket(h.wsUrl(`/gitspaces/${ID}/ws?token=${token}`));
    const echoed = new Promise((resolve) => ws.once('message', resolve));
    ws.send('still here');
    expect(String(await echoed)).toBe('still here');
    const opened = Date.now();
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 6_000);
      ws.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    ws.terminate();
    expect(closed).toBe(true);
    expect(Date.now() - opened).toBeLessThan(3_500);
  });

  it('of an earlier run are refused (401 token_revoked) and closed when the route is registered by a new start', async () => {
    await h.route(ID, echo.url, { runId: 'run-2' });
    const current = await h.token(ID);
    const ws = await openWebSocket(h.wsUrl(`/gitspaces/${ID}/ws`), { authorization: `Bearer ${current}` });
    const earlier = await h.token(ID, { runId: 'run-1' });
    await expect(openWebSocket(h.wsUrl(`/gitspaces/${ID}/ws`), { authorization: `Bearer ${earlier}` })).rejects.toThrow(
      /401.*token_revoked/,
    );
    // The next start registers the route again (same agent address, new secret and run): the session of run-2 ends.
    const closed = new Promise((resolve) => ws.once('close', resolve));
    await h.route(ID, echo.url, { runId: 'run-3' });
    await closed;
  });
});

describe('tokens of an earlier run', () => {
  let h: Harness;
  let upstream: Recorder;

  beforeAll(async () => {
    h = await startHarness();
    upstream = await startRecorder();
  });
  afterAll(async () => {
    await h.close();
    await upstream.close();
  });

  it('are refused after the next start with 401 token_revoked, by cookie, bearer or query', async () => {
    await h.route(ID, upstream.url, { runId: 'run-1' });
    const beforeStop = await h.token(ID);
    expect(
      (await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { cookie: `${GATEWAY_COOKIE}=${beforeStop}` } }))
        .status,
    ).toBe(200);
    // Stop, then start again: a new run registers the route.
    await h.admin('DELETE', `/routes/${ID}`);
    await h.route(ID, upstream.url, { runId: 'run-2' });
    upstream.requests.length = 0;
    const ways: Record<string, string>[] = [
      { cookie: `${GATEWAY_COOKIE}=${beforeStop}` },
      { authorization: `Bearer ${beforeStop}` },
    ];
    for (const headers of ways) {
      const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({
        error: { code: 'token_revoked', message: expect.stringMatching(/earlier run.*ask the API for a new one/) },
      });
    }
    const exchange = await fetch(`${h.publicUrl}/gitspaces/${ID}/?token=${beforeStop}`, { redirect: 'manual' });
    expect(exchange.status).toBe(401);
    expect(exchange.headers.get('set-cookie')).toBeNull();
    expect(upstream.requests).toEqual([]);
    const fresh = await h.token(ID);
    expect(
      (await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { authorization: `Bearer ${fresh}` } })).status,
    ).toBe(200);
  });
});

describe("the agent's private API is not reachable by another spelling", () => {
  let h: Harness;
  let upstream: Recorder;
  let token: string;
  let close: () => Promise<void>;

  beforeAll(async () => ({ h, upstream, token, close } = await startRouted(ID)));
  afterAll(() => close());

  const spellings = [
    '/_agent/healthz',
    '/_Agent/healthz',
    '/%5Fagent/healthz',
    '/%5fAGENT/x',
    '//_agent/workspace',
    '/%255Fagent/healthz',
    '/_agent',
    '/%2F_agent/route',
  ];
  it.each(spellings)('%s: 404 for requests and upgrades', async (spelling) => {
    upstream.heads.length = 0;
    const response = await fetch(`${h.publicUrl}/gitspaces/${ID}${spelling}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(404);
    await expect(
      openWebSocket(h.wsUrl(`/gitspaces/${ID}${spelling}`), { authorization: `Bearer ${token}` }),
    ).rejects.toThrow(/404/);
    expect(upstream.heads).toEqual([]);
  });

  it('under host routing too', async () => {
    const hosted = await startHarness({ domain: 'gitspaces.test' });
    try {
      await hosted.route(ID, upstream.url);
      const hostedToken = await hosted.token(ID);
      upstream.heads.length = 0;
      const reply = await talk(hosted.publicUrl, [
        `GET /%5FAgent/healthz HTTP/1.1\r\nHost: ${ID}.gitspaces.test\r\nAuthorization: Bearer ${hostedToken}\r\nConnection: close\r\n\r\n`,
      ]);
      expect(statusOf(reply.text)).toBe(404);
      expect(upstream.heads).toEqual([]);
    } finally {
      await hosted.close();
    }
  });
});

describe('token parameters are found however they are encoded, and never forwarded', () => {
  let h: Harness;
  let upstream: Recorder;
  let token: string;
  let close: () => Promise<void>;

  beforeAll(async () => ({ h, upstream, token, close } = await startRouted(ID)));
  afterAll(() => close());

  it('?%74oken= on a first visit is exchanged for the cookie and leaves the address', async () => {
    const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/?a=1&%74oken=${token}`, { redirect: 'manual' });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe(`/gitspaces/${ID}/?a=1`);
    expect(response.headers.get('set-cookie')).toContain(`${GATEWAY_COOKIE}=${token}`);
  });

  it.each(['%74oken', 'tok%65n', '%74%6F%6B%65%6E', 'TOKEN', 'token+', '+token', 'a=1;token'])(
    '?%s= on a request the gateway forwards',
    async (name) => {
      upstream.requests.length = 0;
      await fetch(`${h.publicUrl}/gitspaces/${ID}/b?${name}=${token}&y=2`, {
        method: 'POST',
        body: 'payload',
        headers: { cookie: `${GATEWAY_COOKIE}=${token}` },
      });
      expect(upstream.requests).toHaveLength(1);
      expect(upstream.requests[0]!.url).toMatch(/^\/b\?(?:a=1&)?y=2$/);
      expect(JSON.stringify(upstream.requests[0])).not.toContain(token);
    },
  );
});

describe('forwarding headers come from the connection unless it is a trusted proxy', () => {
  let upstream: Recorder;
  const spoofed = {
    'x-forwarded-proto': 'https',
    'x-forwarded-for': '6.6.6.6',
    'x-forwarded-host': 'evil.example',
    forwarded: 'for=6.6.6.6;proto=https',
    'x-real-ip': '6.6.6.6',
  };

  beforeAll(async () => {
    upstream = await startRecorder();
  });
  afterAll(() => upstream.close());

  it('a client that claims https gets no Secure cookie, and the machine sees http and its real address', async () => {
    const h = await startHarness();
    try {
      await h.route(ID, upstream.url);
      const token = await h.token(ID);
      const exchange = await fetch(`${h.publicUrl}/gitspaces/${ID}/?token=${token}`, {
        redirect: 'manual',
        headers: spoofed,
      });
      expect(exchange.status).toBe(303);
      expect(exchange.headers.get('set-cookie')).not.toMatch(/Secure/i);
      upstream.requests.length = 0;
      await fetch(`${h.publicUrl}/gitspaces/${ID}/`, {
        headers: { ...spoofed, cookie: `${GATEWAY_COOKIE}=${token}` },
      });
      const seen = upstream.requests[0]!.headers;
      expect(seen['x-forwarded-proto']).toBe('http');
      expect(seen['x-forwarded-for']).toBe('127.0.0.1');
      expect(seen['x-forwarded-host']).toBe(host(h));
      expect(seen.forwarded).toBeUndefined();
      expect(seen['x-real-ip']).toBeUndefined();
    } finally {
      await h.close();
    }
  });

  it('a configured trusted proxy is believed: Secure cookie, https, the client it forwarded for', async () => {
    const h = await startHarness({ trustedProxies: new TrustedProxies(['10.0.0.0/8', '127.0.0.1']) });
    try {
      await h.route(ID, upstream.url);
      const token = await h.token(ID);
      const exchange = await fetch(`${h.publicUrl}/gitspaces/${ID}/?token=${token}`, {
        redirect: 'manual',
        headers: spoofed,
      });
      expect(exchange.headers.get('set-cookie')).toMatch(/; Secure/);
      upstream.requests.length = 0;
      await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { ...spoofed, cookie: `${GATEWAY_COOKIE}=${token}` } });
      const seen = upstream.requests[0]!.headers;
      expect(seen['x-forwarded-proto']).toBe('https');
      expect(seen['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1');
      expect(seen['x-forwarded-host']).toBe('evil.example');
    } finally {
      await h.close();
    }
  });
});

describe('per-client connection cap', () => {
  it('closes connections over the cap at once, and takes new ones when some have closed', async () => {
    const h = await startHarness({ maxConnectionsPerClient: 3 });
    const { hostname, port } = new URL(h.publicUrl);
    const connect = () =>
      new Promise<net.Socket>((resolve) => {
        const socket = net.connect(Number(port), hostname, () => resolve(socket));
        socket.on('error', () => undefined);
      });
    const held = [await connect(), await connect(), await connect()];
    try {
      const over = await talk(h.publicUrl, ['GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'], { settleMs: 2_000 });
      expect(over).toEqual({ text: '', closed: true });
      held.pop()!.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const fine = await talk(h.publicUrl, ['GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
      expect(statuses(fine.text)).toEqual([200]);
    } finally {
      for (const socket of held) socket.destroy();
      await h.close();
    }
  });
});

describe('failed token checks slow a client down', () => {
  it('1,000 wrong tokens do not all get 401: after 20, 429 with Retry-After, without verifying', async () => {
    // The slow-down's clock stands still, so the allowance does not refill while the flood is sent.
    const h = await startHarness({ now: () => 0 });
    const upstream = await startRecorder();
    try {
      await h.route(ID, upstream.url);
      // A session verified before the flood keeps working through it (its token is not checked again).
      const session = await h.token(ID);
      expect(
        (await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { authorization: `Bearer ${session}` } })).status,
      ).toBe(200);
      const [header, payload, signature] = session.split('.') as [string, string, string];
      const counts: Record<number, number> = {};
      let retryAfter: string | null = null;
      for (let i = 0; i < 1000; i++) {
        // A forged signature: the verifier would have to check every one of them.
        const forged = `${header}.${payload}.${signature.slice(0, -6)}${String(i).padStart(6, 'A')}`;
        const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/`, {
          headers: { authorization: `Bearer ${forged}` },
        });
        counts[response.status] = (counts[response.status] ?? 0) + 1;
        if (response.status === 429) retryAfter ??= response.headers.get('retry-after');
        await response.arrayBuffer();
      }
      expect(counts).toEqual({ 401: 20, 429: 980 });
      expect(Number(retryAfter)).toBeGreaterThan(0);
      expect(Number(retryAfter)).toBeLessThanOrEqual(60);
      expect(
        (await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { authorization: `Bearer ${session}` } })).status,
      ).toBe(200);
      // A token never seen before is not even verified while the client is slowed down, upgrades included.
      const fresh = await h.token(ID, { userId: 'user-2' });
      const refused = await fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { authorization: `Bearer ${fresh}` } });
      expect(refused.status).toBe(429);
      expect(await refused.json()).toMatchObject({ error: { code: 'too_many_failures' } });
      await expect(openWebSocket(h.wsUrl(`/gitspaces/${ID}/ws`), { authorization: `Bearer ${fresh}` })).rejects.toThrow(
        /429/,
      );
    } finally {
      await h.close();
      await upstream.close();
    }
  });

  it('counts the connection, not what a client says in X-Forwarded-For', async () => {
    const h = await startHarness({ authFailureLimit: { max: 3, windowMs: 60_000 }, now: () => 0 });
    try {
      await h.route(ID, 'http://127.0.0.1:9');
      const seen: number[] = [];
      for (let i = 1; i <= 5; i++) {
        // A new address claimed on every attempt: the gateway trusts no proxy, so this is one client throughout.
        const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/`, {
          headers: { authorization: 'Bearer not.a.token', 'x-forwarded-for': `198.51.100.${i}` },
        });
        seen.push(response.status);
      }
      expect(seen).toEqual([401, 401, 401, 429, 429]);
    } finally {
      await h.close();
    }
  });

  it('behind a trusted proxy, counts each client it forwards for, by the address the proxy added', async () => {
    const h = await startHarness({
      trustedProxies: new TrustedProxies(['127.0.0.1']),
      authFailureLimit: { max: 3, windowMs: 60_000 },
      now: () => 0,
    });
    try {
      await h.route(ID, 'http://127.0.0.1:9');
      // The proxy (this test, on 127.0.0.1) appends the address it saw; whatever the client sent stays to the left.
      const attempt = (forwardedFor: string) =>
        fetch(`${h.publicUrl}/gitspaces/${ID}/`, {
          headers: { authorization: 'Bearer not.a.token', 'x-forwarded-for': forwardedFor },
        }).then((response) => response.status);
      const flood = [];
      for (let i = 1; i <= 4; i++) flood.push(await attempt(`198.51.100.${i}, 203.0.113.6`));
      expect(flood).toEqual([401, 401, 401, 429]);
      // Another client behind the same proxy is not slowed down by the first one.
      expect(await attempt('203.0.113.7')).toBe(401);
    } finally {
      await h.close();
    }
  });

  it('lets the client try again once the window has passed', async () => {
    const h = await startHarness({ authFailureLimit: { max: 3, windowMs: 1_000 } });
    try {
      await h.route(ID, 'http://127.0.0.1:9');
      const attempt = () =>
        fetch(`${h.publicUrl}/gitspaces/${ID}/`, { headers: { authorization: 'Bearer not.a.token' } }).then(
          (response) => response.status,
        );
      expect([await attempt(), await attempt(), await attempt(), await attempt()]).toEqual([401, 401, 401, 429]);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect(await attempt()).toBe(401);
    } finally {
      await h.close();
    }
  });
});
