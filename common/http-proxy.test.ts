import http from 'node:http';
import net from 'node:net';
import { endToEndHeaders, nodeClient, proxyHttp, type UpstreamError } from './http-proxy';
import { UpstreamPool } from './upstream-client';

/**
 * The proxy core against upstreams that answer with hand-written bytes: every framing the pooled client must get
 * right (length, chunked, until close, no body), reuse and the idle-close race, request bodies, and refusals.
 */

interface Upstream {
  url: URL;
  /** Requests as received (head and body bytes), one string per connection. */
  received: string[];
  connections: number;
  close(): Promise<void>;
}

/**
 * A TCP server that answers each request with `answer(head)` (raw bytes, written as they are; an answer with
 * `connection: close` is followed by closing); `null` closes the connection without an answer.
 */
async function rawUpstream(answer: (head: string, connection: number) => string | null): Promise<Upstream> {
  const state = { received: [] as string[], connections: 0 };
  const server = net.createServer((socket) => {
    const index = state.connections++;
    state.received[index] = '';
    let buffered = '';
    socket.on('data', (data) => {
      state.received[index] += data.toString('latin1');
      buffered += data.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
        const head = buffered.slice(0, end);
        const length = /content-length: (\d+)/i.exec(head);
        const chunked = /transfer-encoding: chunked/i.test(head);
        const bodyEnd = length ? end + 4 + Number(length[1]) : chunked ? buffered.indexOf('0\r\n\r\n') + 5 : end + 4;
        if ((length || chunked) && (bodyEnd < end + 4 || buffered.length < bodyEnd)) return;
        buffered = buffered.slice(bodyEnd);
        const reply = answer(head, index);
        if (reply === null) socket.destroy();
        else if (/\r\nconnection: close\r\n/i.test(reply)) socket.end(reply, 'latin1');
        else socket.write(reply, 'latin1');
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: new URL(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`),
    get received() {
      return state.received;
    },
    get connections() {
      return state.connections;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  } as Upstream;
}

interface Front {
  url: string;
  errors: UpstreamError[];
  close(): Promise<void>;
}

/** A server that proxies every request to `target` with the core, as the gateway and agent do. */
async function front(target: URL, pool: UpstreamPool, timeoutMs = 2_000): Promise<Front> {
  const errors: UpstreamError[] = [];
  const server = http.createServer((req, res) =>
    proxyHttp(nodeClient(req, res), {
      target,
      path: req.url ?? '/',
      headers: endToEndHeaders(req.rawHeaders),
      timeoutMs,
      pool,
      onError: (error) => {
        errors.push(error);
        res.writeHead(error.name === 'UpstreamTimeoutError' ? 504 : 502).end(error.message);
      },
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    errors,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const ok = (body: string, extra = '') =>
  `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n${extra}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

describe('proxy core with the pooled upstream client', () => {
  let pool: UpstreamPool;
  const cleanups: (() => Promise<void>)[] = [];
  beforeEach(() => {
    pool = new UpstreamPool({ idleTimeoutMs: 2_000 });
  });
  afterEach(async () => {
    pool.destroy();
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });
  async function setup(answer: (head: string, connection: number) => string | null, timeoutMs?: number) {
    const upstream = await rawUpstream(answer);
    const proxy = await front(upstream.url, pool, timeoutMs);
    cleanups.push(proxy.close, upstream.close);
    return { upstream, proxy };
  }

  it('relays a Content-Length response and reuses the upstream connection for the next request', async () => {
    const { upstream, proxy } = await setup(() => ok('hello', 'set-cookie: a=1\r\nset-cookie: b=2\r\n'));
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${proxy.url}/x?q=${i}`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('hello');
      expect(response.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    }
    expect(upstream.connections).toBe(1);
    expect(upstream.received[0]).toContain('GET /x?q=2 HTTP/1.1\r\n');
  });

  it('decodes a chunked response, with chunk extensions and trailers', async () => {
    const { proxy } = await setup(
      () =>
        'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n' +
        '5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n',
    );
    expect(await (await fetch(`${proxy.url}/`)).text()).toBe('hello world');
  });

  it('relays a body delimited by the upstream closing the connection, and does not reuse it', async () => {
    const { upstream, proxy } = await setup(() => 'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil close');
    for (let i = 0; i < 2; i++) expect(await (await fetch(`${proxy.url}/`)).text()).toBe('until close');
    expect(upstream.connections).toBe(2);
  });

  it('sends no body for HEAD, 204 and 304, and keeps the connection', async () => {
    const { upstream, proxy } = await setup((head) =>
      head.startsWith('HEAD')
        ? 'HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n'
        : head.includes('/none')
          ? 'HTTP/1.1 204 No Content\r\n\r\n'
          : 'HTTP/1.1 304 Not Modified\r\ncontent-length: 50\r\n\r\n',
    );
    const head = await fetch(`${proxy.url}/`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe('50');
    expect((await fetch(`${proxy.url}/none`)).status).toBe(204);
    expect((await fetch(`${proxy.url}/cached`)).status).toBe(304);
    expect(upstream.connections).toBe(1);
  });

  it('skips 100 Continue and 103 Early Hints before the real answer', async () => {
    const { proxy } = await setup(
      () => 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n' + ok('x'),
    );
    const response = await fetch(`${proxy.url}/`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('x');
  });

  it('streams request bodies of known and unknown length to the upstream', async () => {
    const { upstream, proxy } = await setup(() => ok('got it'));
    await fetch(`${proxy.url}/upload`, { method: 'POST', body: 'a=1&b=2' });
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(Buffer.from('part one,'));
        controller.enqueue(Buffer.from('part two'));
        controller.close();
      },
    });
    const response = await fetch(`${proxy.url}/stream`, { method: 'PUT', body: stream, duplex: 'half' } as RequestInit);
    expect(await response.text()).toBe('got it');
    const received = upstream.received.join('');
    expect(received).toContain('POST /upload HTTP/1.1\r\n');
    expect(received).toContain('content-length: 7\r\n');
    expect(received).toContain('\r\n\r\na=1&b=2');
    expect(received).toMatch(/PUT \/stream HTTP\/1\.1\r\n[^]*transfer-encoding: chunked\r\n/);
    expect(received).toContain('part one,');
    expect(received).toContain('part two');
    expect(received).toContain('\r\n0\r\n\r\n');
  });

  it('sends a request again on a new connection when an idle one was closed by the upstream', async () => {
    // The upstream answers the first request and then closes the kept connection as the second request arrives.
    const { upstream, proxy } = await setup((_head, connection) =>
      connection === 0 && served++ > 0 ? null : ok('fine'),
    );
    let served = 0;
    expect(await (await fetch(`${proxy.url}/`)).text()).toBe('fine');
    expect(await (await fetch(`${proxy.url}/`)).text()).toBe('fine');
    expect(upstream.connections).toBe(2);
    expect(proxy.errors).toEqual([]);
  });

  it.each([
    ['conflicting lengths', 'HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab'],
    ['a bad length', 'HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n'],
    ['a folded header', 'HTTP/1.1 200 OK\r\nx-a: 1\r\n  folded\r\ncontent-length: 0\r\n\r\n'],
    ['a bad status line', 'HTTP/2 200 OK\r\ncontent-length: 0\r\n\r\n'],
  ])('answers 502 for a malformed response head (%s)', async (_name, reply) => {
    const { proxy } = await setup(() => reply);
    expect((await fetch(`${proxy.url}/`)).status).toBe(502);
    expect(proxy.errors[0]).toMatchObject({ name: 'UpstreamUnreachableError', causeCode: 'EPROTO' });
  });

  it('relays response headers line by line: names as sent, hop-by-hop and Connection-named ones dropped', async () => {
    const { proxy } = await setup(
      () =>
        'HTTP/1.1 200 OK\r\nX-Ide-Version:  1.2 \r\nVary: a\r\nVary: b\r\nConnection: keep-alive, X-Secret\r\n' +
        'X-Secret: internal\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok',
    );
    const socket = net.connect(Number(new URL(proxy.url).port), '127.0.0.1');
    socket.write('GET / HTTP/1.1\r\nhost: front\r\nconnection: close\r\n\r\n');
    const raw = await new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (data) => (text += data.toString('latin1')));
      socket.on('end', () => resolve(text));
    });
    const head = raw.slice(0, raw.indexOf('\r\n\r\n'));
    expect(head).toContain('\r\nX-Ide-Version: 1.2\r\n');
    expect(head).toContain('\r\nVary: a\r\nVary: b\r\n');
    expect(head.match(/content-length/gi)).toHaveLength(1);
    expect(head).not.toMatch(/x-secret|keep-alive/i);
    expect(raw.endsWith('\r\n\r\nok')).toBe(true);
  });

  it('never lets a malformed chunked body look complete', async () => {
    const { proxy } = await setup(() => 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n');
    // The head may or may not have reached the client before the failure: either way the exchange is broken.
    await expect(fetch(`${proxy.url}/`).then((response) => response.text())).rejects.toThrow();
  });

  it('breaks the client response when the upstream dies mid-body', async () => {
    const { proxy } = await setup(() => 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part');
    const response = await fetch(`${proxy.url}/`);
    expect(response.status).toBe(200);
    const text = response.text();
    await new Promise((resolve) => setTimeout(resolve, 50));
    pool.destroy();
    await expect(text).rejects.toThrow();
  });

  it('answers 504 when the upstream does not answer in time', async () => {
    const { proxy } = await setup(() => '', 200);
    const response = await fetch(`${proxy.url}/`);
    expect(response.status).toBe(504);
    expect(proxy.errors[0]).toMatchObject({ name: 'UpstreamTimeoutError', timeoutMs: 200 });
  });

  it('answers 502 with the cause when the upstream refuses connections', async () => {
    const upstream = await rawUpstream(() => ok(''));
    await upstream.close();
    const proxy = await front(upstream.url, pool);
    cleanups.push(proxy.close);
    expect((await fetch(`${proxy.url}/`)).status).toBe(502);
    expect(proxy.errors[0]).toMatchObject({ causeCode: 'ECONNREFUSED' });
  });
});
