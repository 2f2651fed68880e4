import net from 'node:net';
import { Http1Server, type Http1ServerOptions, type ServerExchange } from './http1-server';

/**
 * The gateway's HTTP/1.1 server, spoken to with hand-written bytes over real sockets: framing, keep-alive, pipelining,
 * 100-continue, HEAD, HTTP/1.0, upgrades, deadlines, and every malformed request it must refuse without calling the
 * handler.
 */

interface Seen {
  method: string;
  url: string;
  body: string;
}

interface Harness {
  port: number;
  seen: Seen[];
  /** Exchanges whose client side went away or completed (their listener heard `clientClosed`). */
  closed: number;
  upgrades: { url: string; head: string }[];
  pauses: number;
  piecesWhilePaused: number;
}

let server: Http1Server | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/**
 * A server whose handler answers each request with what it saw (method, target, body) as JSON. Targets choose other
 * behaviour: `/slow` answers after 100 ms, `/stream` answers in pieces without a length, `/no-read` answers without
 * reading the body, `/late` reads it only after 50 ms, `/pause` pauses it after every piece.
 */
async function start(options: Partial<Http1ServerOptions> = {}): Promise<Harness> {
  const harness: Harness = { port: 0, seen: [], closed: 0, upgrades: [], pauses: 0, piecesWhilePaused: 0 };
  const answer = (exchange: ServerExchange, body: string) => {
    const seen = { method: exchange.method, url: exchange.url, body };
    harness.seen.push(seen);
    const json = JSON.stringify(seen);
    if (exchange.url === '/slow')
      setTimeout(() => exchange.respond(200, ['content-type', 'application/json'], json), 100);
    else exchange.respond(200, ['content-type', 'application/json'], json);
  };
  server = new Http1Server({
    onRequest(exchange) {
      if (exchange.url === '/no-read') {
        harness.seen.push({ method: exchange.method, url: exchange.url, body: '' });
        return exchange.respond(401, [], 'no');
      }
      if (exchange.url === '/big') {
        // Pieces over the size the server copies next to their framing, chunked.
        exchange.writeHead(200, undefined, []);
        for (const letter of 'abc') exchange.write(Buffer.alloc(20_000, letter));
        return exchange.end(Buffer.alloc(30_000, 'd'));
      }
      if (exchange.url === '/stream') {
        exchange.writeHead(200, undefined, ['content-type', 'text/plain']);
        exchange.write(Buffer.from('hello '));
        exchange.write(Buffer.from('world'));
        return exchange.end();
      }
      const chunks: Buffer[] = [];
      let paused = false;
      const listener = {
        clientData: (chunk: Buffer) => {
          chunks.push(chunk);
          if (exchange.url !== '/pause') return;
          if (paused) harness.piecesWhilePaused++;
          paused = true;
          harness.pauses++;
          exchange.pauseBody();
          setTimeout(() => {
            paused = false;
            exchange.resumeBody();
          }, 5);
        },
        clientEnd: () => answer(exchange, Buffer.concat(chunks).toString()),
        clientDrain: () => undefined,
        clientClosed: () => harness.closed++,
      };
      // `/late` takes the body only after a while, as the gateway does when a token needs checking first.
      if (exchange.url === '/late') setTimeout(() => exchange.attach(listener), 50);
      else exchange.attach(listener);
      if (exchange.requestBody === 'none') answer(exchange, '');
    },
    onUpgrade(request, socket, head) {
      harness.upgrades.push({ url: request.url, head: head.toString() });
      socket.end('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: test\r\n\r\nswitched');
    },
    ...options,
  });
  await server.listen(0, '127.0.0.1');
  harness.port = server.address().port;
  return harness;
}

interface Conversation {
  /** Everything the server sent until it closed the connection (or until `settleMs` of silence). */
  text: string;
  closed: boolean;
}

/** Sends `parts` (with `gapMs` between them) and collects the answer until close or `settleMs` of silence. */
function talk(port: number, parts: string[], { gapMs = 20, settleMs = 300 } = {}): Promise<Conversation> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
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
    socket.on('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed: true });
    });
    socket.on('error', reject);
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
const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: example\r\n${extra}\r\n`;

describe('HTTP/1.1 server', () => {
  it('serves several requests over one keep-alive connection', async () => {
    const h = await start();
    const reply = await talk(h.port, [get('/a'), get('/b'), get('/c')]);
    expect(statuses(reply.text)).toEqual([200, 200, 200]);
    expect(reply.closed).toBe(false);
    expect(h.seen.map((s) => s.url)).toEqual(['/a', '/b', '/c']);
  });

  it('answers pipelined requests in order, one at a time', async () => {
    const h = await start();
    const reply = await talk(h.port, [
      get('/slow') + get('/fast') + get('/slow') + 'GET /last HTTP/1.1\r\nHost: x\r\n\r\n',
    ]);
    const bodies = [...reply.text.matchAll(/\{"method":"GET","url":"([^"]+)"/g)].map((m) => m[1]);
    expect(bodies).toEqual(['/slow', '/fast', '/slow', '/last']);
  });

  it('reads request bodies of known length and chunked ones (extensions and trailers dropped)', async () => {
    const h = await start();
    const reply = await talk(h.port, [
      'POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello',
      ' world',
      'POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n',
      '6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n',
    ]);
    expect(statuses(reply.text)).toEqual([200, 200]);
    expect(h.seen).toEqual([
      { method: 'POST', url: '/len', body: 'hello world' },
      { method: 'POST', url: '/chunked', body: 'hello world' },
    ]);
  });

  it('holds a body until the handler asks for it, and stops reading it while the handler pauses it', async () => {
    const h = await start();
    const big = 'x'.repeat(1024 * 1024);
    const reply = await talk(h.port, [
      'POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nearly',
      `POST /pause HTTP/1.1\r\nHost: x\r\nContent-Length: ${big.length}\r\n\r\n${big}`,
    ]);
    expect(statuses(reply.text)).toEqual([200, 200]);
    expect(h.seen.map((s) => [s.url, s.body.length])).toEqual([
      ['/late', 5],
      ['/pause', big.length],
    ]);
    expect(h.seen[1]!.body === big).toBe(true);
    expect(h.pauses).toBeGreaterThan(1);
    expect(h.piecesWhilePaused).toBe(0);
  });

  it('drops the body a handler did not read and serves the next request on the same connection', async () => {
    const h = await start();
    const reply = await talk(h.port, [
      'POST /no-read HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789' + get('/after'),
    ]);
    expect(statuses(reply.text)).toEqual([401, 200]);
    expect(h.seen.map((s) => s.url)).toEqual(['/no-read', '/after']);
  });

  it('sends 100 Continue only when the handler reads the body', async () => {
    const h = await start();
    const asked = await talk(h.port, [
      'PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n',
      'ok',
    ]);
    expect(statuses(asked.text)).toEqual([100, 200]);
    expect(h.seen[0]).toEqual({ method: 'PUT', url: '/x', body: 'ok' });

    const refused = await talk(h.port, [
      'PUT /no-read HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n',
    ]);
    expect(statuses(refused.text)).toEqual([401]);
    // The client never got its 100: whether it sends the body now is unknown, so the connection ends.
    expect(refused.text).toMatch(/\r\nconnection: close\r\n/);
    expect(refused.closed).toBe(true);
  });

  it('writes a response of unknown length chunked to HTTP/1.1 and until close to HTTP/1.0', async () => {
    const h = await start();
    const modern = await talk(h.port, [get('/stream')]);
    expect(modern.text).toMatch(/\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n$/);
    expect(modern.closed).toBe(false);
    const old = await talk(h.port, ['GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n']);
    expect(old.text).toMatch(/\r\nconnection: close\r\n\r\nhello world$/);
    expect(old.closed).toBe(true);
  });

  it('frames large response pieces the same way', async () => {
    const h = await start();
    const reply = await talk(h.port, [get('/big') + get('/after')]);
    const body = reply.text.slice(reply.text.indexOf('\r\n\r\n') + 4);
    const expected =
      ['a', 'b', 'c'].map((l) => `4e20\r\n${l.repeat(20_000)}\r\n`).join('') +
      `7530\r\n${'d'.repeat(30_000)}\r\n0\r\n\r\n`;
    expect(body.startsWith(expected)).toBe(true);
    expect(statuses(reply.text)).toEqual([200, 200]);
    expect(h.seen.map((s) => s.url)).toEqual(['/after']);
  });

  it('keeps HTTP/1.0 connections only when asked, and closes on Connection: close', async () => {
    const h = await start();
    const plain = await talk(h.port, ['GET /a HTTP/1.0\r\n\r\n']);
    expect(plain.closed).toBe(true);
    const kept = await talk(h.port, ['GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', 'GET /b HTTP/1.0\r\n\r\n']);
    expect(kept.text).toMatch(/\r\nconnection: keep-alive\r\n/);
    expect(statuses(kept.text)).toEqual([200, 200]);
    expect(kept.closed).toBe(true);
    const closing = await talk(h.port, [get('/a', 'Connection: close\r\n'), get('/never')]);
    expect(statuses(closing.text)).toEqual([200]);
    expect(closing.closed).toBe(true);
    expect(h.seen.map((s) => s.url)).not.toContain('/never');
  });

  it('sends no body for HEAD, with the length a GET would have', async () => {
    const h = await start();
    const reply = await talk(h.port, ['HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n' + get('/y')]);
    const [head] = reply.text.split('HTTP/1.1 200 OK').filter(Boolean);
    const getBody = JSON.stringify({ method: 'HEAD', url: '/x', body: '' });
    expect(head).toMatch(new RegExp(`content-length: ${getBody.length}\r\n\r\n$`));
    expect(statuses(reply.text)).toEqual([200, 200]);
  });

  it('hands an upgrade request its socket with the bytes that followed the head', async () => {
    const h = await start();
    const reply = await talk(h.port, [get('/ws', 'Connection: Upgrade\r\nUpgrade: test\r\n') + 'early']);
    expect(reply.text).toMatch(/^HTTP\/1\.1 101 /);
    expect(h.upgrades).toEqual([{ url: '/ws', head: 'early' }]);
    expect(h.seen).toEqual([]);
  });

  it('tells the handler when the client goes away in the middle of a request', async () => {
    const h = await start();
    await talk(h.port, ['POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part'], { settleMs: 50 });
    await new Promise((r) => setTimeout(r, 100));
    expect(h.closed).toBe(1);
    expect(h.seen).toEqual([]);
  });

  describe('refuses, closes the connection and never calls the handler for', () => {
    const cases: [string, string, number][] = [
      ['a malformed request line', 'GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n', 400],
      ['a request line without a version', 'GET /\r\nHost: x\r\n\r\n', 400],
      ['whitespace in the target', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', 400],
      ['whitespace before a colon', 'GET / HTTP/1.1\r\nHost : x\r\n\r\n', 400],
      ['obs-fold', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n', 400],
      ['a bare LF in a header', 'GET / HTTP/1.1\r\nHost: x\nX-A: a\r\n\r\n', 400],
      ['a control character in a value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n', 400],
      ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\nX-A: a\r\n\r\n', 400],
      ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
      [
        'Content-Length with Transfer-Encoding',
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        400,
      ],
      [
        'different Content-Length values',
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
        400,
      ],
      ['a Content-Length that is not a number', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc', 400],
      ['Transfer-Encoding in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
      [
        'a transfer coding other than chunked',
        'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
        501,
      ],
      ['an HTTP version other than 1.x', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505],
      ['an expectation other than 100-continue', 'GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n', 417],
      ['a head over 16 KiB', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, 431],
      ['more than 200 header lines', `GET / HTTP/1.1\r\nHost: x\r\n${'X-A: a\r\n'.repeat(201)}\r\n`, 431],
    ];
    it.each(cases)('%s', async (_name, request, status) => {
      const h = await start();
      const reply = await talk(h.port, [request + get('/smuggled')]);
      expect(statuses(reply.text)).toEqual([status]);
      expect(reply.text).toMatch(/\r\nconnection: close\r\n/);
      expect(reply.closed).toBe(true);
      expect(h.seen).toEqual([]);
    });

    it.each([
      ['a bad chunk size', 'zz\r\nhello\r\n0\r\n\r\n'],
      ['a chunk without its CRLF', '5\r\nhelloXX0\r\n\r\n'],
    ])('%s in a chunked body (the handler hears the client is gone)', async (_name, body) => {
      const h = await start();
      const reply = await talk(h.port, [
        `POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}` + get('/smuggled'),
      ]);
      expect(statuses(reply.text)).toEqual([400]);
      expect(reply.closed).toBe(true);
      expect(h.seen).toEqual([]);
      expect(h.closed).toBe(1);
    });
  });

  it('answers 408 to a head that does not arrive in time, and closes idle keep-alive connections', async () => {
    const h = await start({ headersTimeoutMs: 200, keepAliveTimeoutMs: 200 });
    const slow = await talk(h.port, ['GET / HTTP/1.1\r\nHost: x\r\n'], { settleMs: 3_000 });
    expect(statuses(slow.text)).toEqual([408]);
    expect(slow.closed).toBe(true);
    const idle = await talk(h.port, [get('/a')], { settleMs: 3_000 });
    expect(statuses(idle.text)).toEqual([200]);
    expect(idle.closed).toBe(true);
  });

  it('ignores empty lines before a request line', async () => {
    const h = await start();
    const reply = await talk(h.port, ['\r\n\r\n' + get('/a')]);
    expect(statuses(reply.text)).toEqual([200]);
  });
});
