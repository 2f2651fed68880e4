import net from 'node:net';
import tls from 'node:tls';
import {
  BodyDecoder,
  HEAD_END,
  HttpSyntaxError,
  TOKEN,
  checkOutgoingHeader,
  isHeaderNamed,
  listsToken,
  parseHeaderLines,
  type BodyFraming,
  type ParsedHeaders,
  type RawHeaders,
  type RequestFraming,
} from './http1';

/**
 * A small pooled HTTP/1.1 client for the proxy core (see http-proxy.ts): keep-alive connections per upstream origin,
 * no pipelining, one request per connection at a time. It exists because Node's `http.request` costs several times
 * what the rest of a proxied request does (ClientRequest, Agent bookkeeping, an IncomingMessage stream per response);
 * this client writes the request head in one write and parses the response head and framing itself.
 *
 * The response parser is strict: a malformed status line or header, obs-fold, conflicting Content-Length values or a
 * bad chunk size fail the exchange (502) and close the connection, rather than guessing where a message ends.
 */

/** Largest response head accepted (status line and headers). */
const MAX_HEAD_BYTES = 64 * 1024;

const INVALID_PATH = /[^\x21-\x7e\x80-\xff]/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([^\r\n]*))?$/;
/** Read buffer of every plain-TCP upstream connection (reads are handled one at a time, synchronously). */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
/** Methods that may be sent twice (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** A parsed response head. */
export interface ResponseHead {
  statusCode: number;
  statusMessage: string;
  rawHeaders: RawHeaders;
}

/** Receives one exchange's response. Exactly one of `onEnd` and `onError` is called, once. */
export interface ResponseHandler {
  onHead(head: ResponseHead): void;
  /** A piece of the (decoded) body; return false to stop reading until `resume()`. */
  onData(chunk: Buffer): boolean;
  /** Everything received so far was handed over and more of the response is to come: a moment to flush. */
  onWaiting(): void;
  /** The response is complete; `last` is its final piece of body, if any. */
  onEnd(last: Buffer | undefined): void;
  /** The connection failed or the response was malformed; `code` is the errno-style cause. */
  onError(code: string): void;
}

export interface RequestHead {
  method: string;
  /** Origin-form request target. */
  path: string;
  /** Headers to send (without hop-by-hop ones); `host` is added from the target when absent. */
  headers: RawHeaders;
  /** `none`: no body; a number: a body of that many bytes; `chunked`: a body of unknown length. */
  body: RequestFraming;
}

export interface UpstreamPoolOptions {
  /** Idle connections kept per origin. */
  maxIdlePerOrigin?: number;
  /** An idle connection is closed after this long (below Node's 5 s server keep-alive, to dodge its close race). */
  idleTimeoutMs?: number;
}

const origins = new WeakMap<URL, string>();

/**
 * `url.origin`, remembered per URL object: the getter builds a new string on every call, which a Map lookup must then
 * hash, and route targets are parsed once and used for every request.
 */
export function originOf(url: URL): string {
  let origin = origins.get(url);
  if (origin === undefined) origins.set(url, (origin = url.origin));
  return origin;
}

/** Keep-alive connections to upstream origins, and the way to send a request over one. */
export class UpstreamPool {
  private readonly idle = new Map<string, Connection[]>();
  private readonly all = new Set<Connection>();
  private readonly maxIdle: number;
  private readonly idleTimeoutMs: number;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(options: UpstreamPoolOptions = {}) {
    this.maxIdle = options.maxIdlePerOrigin ?? 256;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 4_000;
  }

  /** Sends a request head to `target`; the body, if any, follows with `write` and `end`. */
  request(target: URL, head: RequestHead, handler: ResponseHandler): UpstreamRequest {
    const exchange = new UpstreamRequest(this, target, head, handler);
    exchange.start(this.acquire(target));
    return exchange;
  }

  /** Closes every connection, idle or busy. */
  destroy(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const connection of this.all) connection.socket.destroy();
    this.all.clear();
    this.idle.clear();
  }

  /** @internal */
  acquire(target: URL, fresh = false): Connection {
    const list = fresh ? undefined : this.idle.get(originOf(target));
    while (list && list.length > 0) {
      const connection = list.pop()!;
      if (!connection.socket.destroyed) return connection;
    }
    const connection = new Connection(this, target);
    this.all.add(connection);
    return connection;
  }

  /** @internal A connection whose exchange completed cleanly goes back to the idle list. */
  release(connection: Connection): void {
    let list = this.idle.get(connection.origin);
    if (!list) this.idle.set(connection.origin, (list = []));
    if (list.length >= this.maxIdle) {
      connection.socket.destroy();
      return;
    }
    connection.idleSince = Date.now();
    list.push(connection);
    this.sweeper ??= setInterval(() => this.sweep(), Math.max(250, this.idleTimeoutMs / 4)).unref();
  }

  /** @internal */
  forget(connection: Connection): void {
    this.all.delete(connection);
  }

  private sweep(): void {
    const cutoff = Date.now() - this.idleTimeoutMs;
    for (const [origin, list] of this.idle) {
      // Oldest first: released connections are pushed, so the stale ones sit at the front.
      let stale = 0;
      while (stale < list.length && (list[stale]!.idleSince <= cutoff || list[stale]!.socket.destroyed)) stale++;
      for (const connection of list.splice(0, stale)) connection.socket.destroy();
      if (list.length === 0) this.idle.delete(origin);
    }
    if (this.idle.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }
}

/** One upstream connection; its listeners are set once and forward to the exchange it currently serves. */
class Connection {
  readonly socket: net.Socket;
  readonly origin: string;
  exchange: UpstreamRequest | undefined;
  /** Has served a request before, so a failure before any answer may be the upstream closing it while idle. */
  reused = false;
  idleSince = 0;

  constructor(
    private readonly pool: UpstreamPool,
    target: URL,
  ) {
    this.origin = originOf(target);
    const host = target.hostname.replace(/^\[|\]$/g, '');
    if (target.protocol === 'https:') {
      this.socket = tls.connect({
        host,
        port: Number(target.port || 443),
        servername: net.isIP(host) ? undefined : host,
        ALPNProtocols: ['http/1.1'],
      });
      this.socket.on('data', (data: Buffer) => this.received(data));
    } else {
      // Plain TCP reads into one shared buffer and copies out what arrived (small reads land in Node's buffer pool),
      // rather than a new ArrayBuffer and a trip through the stream machinery per read.
      this.socket = net.connect({
        host,
        port: Number(target.port || 80),
        onread: {
          buffer: SHARED_READ_BUFFER,
          callback: (length: number, buffer: Uint8Array) => {
            const data = Buffer.allocUnsafe(length);
            data.set(buffer.subarray(0, length));
            this.received(data);
            return true;
          },
        },
      });
    }
    this.socket.setNoDelay(true);
    this.socket.on('end', () => this.exchange?.connectionEnded('ECONNRESET'));
    this.socket.on('error', (error: NodeJS.ErrnoException) => this.exchange?.connectionEnded(error.code ?? 'EIO'));
    this.socket.on('close', () => {
      this.pool.forget(this);
      this.exchange?.connectionEnded('ECONNRESET');
    });
  }

  private received(data: Buffer): void {
    if (this.exchange) this.exchange.feed(data);
    else this.socket.destroy(); // an idle connection has nothing to say
  }
}

/** One request/response exchange over a pooled connection. */
export class UpstreamRequest {
  private connection: Connection | undefined;
  /** The response's body, once its head was read. */
  private body: BodyDecoder | undefined;
  /** A response head not yet complete. */
  private pending: Buffer | undefined;
  private untilClose = false;
  private responseDone = false;
  private keepAlive = true;
  private requestDone: boolean;
  private received = false;
  private readonly headText: string;

  constructor(
    private readonly pool: UpstreamPool,
    private readonly target: URL,
    private readonly head: RequestHead,
    private readonly handler: ResponseHandler,
  ) {
    this.headText = serializeHead(head, target);
    this.requestDone = head.body === 'none' || head.body === 0;
  }

  /** @internal */
  start(connection: Connection): void {
    this.connection = connection;
    connection.exchange = this;
    connection.socket.write(this.headText, 'latin1');
  }

  /** Sends a piece of the request body; false means wait for `drain` (see `onDrain`). */
  write(chunk: Buffer): boolean {
    const socket = this.connection?.socket;
    if (!socket || socket.destroyed || chunk.length === 0) return true;
    if (this.head.body !== 'chunked') return socket.write(chunk);
    socket.cork();
    socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    socket.write(chunk);
    const ok = socket.write('\r\n', 'latin1');
    socket.uncork();
    return ok;
  }

  /** Calls `listener` once when the connection can take more request body. */
  onDrain(listener: () => void): void {
    this.connection?.socket.once('drain', listener);
  }

  /** The request body is complete. */
  end(): void {
    this.requestDone = true;
    const socket = this.connection?.socket;
    if (this.head.body === 'chunked' && socket && !socket.destroyed) socket.write('0\r\n\r\n', 'latin1');
    // The response may have completed before the body did; the connection can only go back now.
    if (this.responseDone && this.connection) this.finish();
  }

  /** Lets the response body flow again after `onData` returned false. */
  resume(): void {
    this.connection?.socket.resume();
  }

  /** Abandons the exchange and its connection (client gone, deadline passed, route removed). */
  destroy(): void {
    const connection = this.detach();
    connection?.socket.destroy();
  }

  /** @internal */
  feed(data: Buffer): void {
    this.received = true;
    let offset = 0;
    while (!this.body) {
      const buffer = this.pending ? Buffer.concat([this.pending, data.subarray(offset)]) : data.subarray(offset);
      const end = buffer.indexOf(HEAD_END, this.pending ? Math.max(0, this.pending.length - 3) : 0);
      if (end < 0) {
        if (buffer.length > MAX_HEAD_BYTES) return this.fail(new HttpSyntaxError('head too large'));
        this.pending = buffer;
        return;
      }
      this.pending = undefined;
      data = buffer;
      offset = end + 4;
      if (end > MAX_HEAD_BYTES) return this.fail(new HttpSyntaxError('head too large'));
      const parsed = parseResponseHead(buffer.toString('latin1', 0, end));
      if (parsed instanceof HttpSyntaxError) return this.fail(parsed);
      const { head } = parsed;
      if (head.statusCode < 200) {
        // 100 Continue, 103 Early Hints: informational, the real answer follows. 101 is for upgrades only.
        if (head.statusCode === 101) return this.fail(new HttpSyntaxError('101 without an upgrade'));
        if (offset === data.length) return;
        continue;
      }
      this.body = new BodyDecoder(this.frame(parsed));
      this.handler.onHead(head);
      if (!this.connection) return; // the handler gave up on the exchange
      if (this.body.done) return this.complete(undefined, data.length - offset);
    }
    while (offset < data.length) {
      const piece = this.body.next(data, offset);
      if (piece instanceof HttpSyntaxError) return this.fail(piece);
      offset = this.body.offset;
      if (this.body.done) return this.complete(piece, data.length - offset);
      if (piece && piece.length > 0 && !this.handler.onData(piece)) this.connection?.socket.pause();
    }
    if (this.connection) this.handler.onWaiting();
  }

  /** @internal The connection ended or failed while this exchange owned it. */
  connectionEnded(code: string): void {
    if (!this.connection) return;
    if (this.untilClose) {
      this.keepAlive = false;
      return this.complete(undefined, 0);
    }
    // A reused connection that dies before answering was most likely closed by the upstream while idle: an
    // idempotent request without a body is sent again, once, on a new connection (as browsers do).
    if (!this.received && this.connection.reused && this.head.body === 'none' && IDEMPOTENT.has(this.head.method)) {
      this.detach()?.socket.destroy();
      return this.start(this.pool.acquire(this.target, true));
    }
    this.fail(code);
  }

  /** How the response body is delimited (RFC 9112 §6.3), and whether the connection can serve another request. */
  private frame({ head, http10, headers }: ParsedResponseHead): BodyFraming {
    const { connection, transferEncoding, contentLength } = headers;
    if (http10 || listsToken(connection, 'close')) this.keepAlive = false;
    if (this.head.method === 'HEAD' || head.statusCode === 204 || head.statusCode === 304) return 'none';
    if (transferEncoding !== undefined) {
      // Transfer-Encoding overrides Content-Length; a message with both is not trusted for reuse.
      if (contentLength !== undefined) {
        this.keepAlive = false;
        head.rawHeaders = withoutHeader(head.rawHeaders, 'content-length');
      }
      if (/(?:^|,)[ \t]*chunked[ \t]*$/i.test(transferEncoding)) return 'chunked';
    } else if (contentLength !== undefined) {
      return Number(contentLength);
    }
    this.untilClose = true;
    this.keepAlive = false;
    return 'until-close';
  }

  /** The response is complete: hand the connection back if it is clean, then tell the handler. */
  private complete(last: Buffer | undefined, extraBytes: number): void {
    this.responseDone = true;
    // Bytes after the end of the message are a protocol error on a connection without pipelining.
    if (extraBytes > 0) this.keepAlive = false;
    if (this.requestDone || !this.keepAlive) this.finish();
    this.handler.onEnd(last && last.length > 0 ? last : undefined);
  }

  private finish(): void {
    const connection = this.detach();
    if (!connection) return;
    if (this.keepAlive && this.requestDone && !connection.socket.destroyed) {
      connection.reused = true;
      connection.socket.resume();
      this.pool.release(connection);
    } else {
      connection.socket.destroy();
    }
  }

  private fail(error: HttpSyntaxError | string): void {
    const connection = this.detach();
    if (!connection) return;
    connection.socket.destroy();
    this.responseDone = true;
    this.handler.onError(typeof error === 'string' ? error : error.code);
  }

  private detach(): Connection | undefined {
    const connection = this.connection;
    if (connection?.exchange === this) connection.exchange = undefined;
    this.connection = undefined;
    return connection;
  }
}

function serializeHead(head: RequestHead, target: URL): string {
  if (!TOKEN.test(head.method)) throw new TypeError(`invalid method ${JSON.stringify(head.method)}`);
  if (INVALID_PATH.test(head.path) || !head.path.startsWith('/')) {
    throw new TypeError(`invalid request target ${JSON.stringify(head.path)}`);
  }
  let lines = '';
  let hasHost = false;
  let hasLength = false;
  const headers = head.headers;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    checkOutgoingHeader(name, value);
    if (isHeaderNamed(name, 'host')) hasHost = true;
    else if (isHeaderNamed(name, 'content-length')) hasLength = true;
    lines += `${name}: ${value}\r\n`;
  }
  let text = `${head.method} ${head.path} HTTP/1.1\r\n`;
  if (!hasHost) text += `host: ${target.host}\r\n`;
  text += lines;
  if (head.body === 'chunked') text += 'transfer-encoding: chunked\r\n';
  else if (typeof head.body === 'number' && !hasLength) text += `content-length: ${head.body}\r\n`;
  return text + '\r\n';
}

/** The list without any header of that (lower-case) name. */
function withoutHeader(headers: RawHeaders, lowerName: string): RawHeaders {
  const kept: RawHeaders = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!isHeaderNamed(headers[i]!, lowerName)) kept.push(headers[i]!, headers[i + 1]!);
  }
  return kept;
}

/** A response head, and its header values that decide the framing. */
interface ParsedResponseHead {
  head: ResponseHead;
  http10: boolean;
  headers: ParsedHeaders;
}

/** Parses a response head (without its final CRLF CRLF). */
function parseResponseHead(text: string): ParsedResponseHead | HttpSyntaxError {
  const lines = text.split('\r\n');
  const status = STATUS_LINE.exec(lines[0]!);
  if (!status) return new HttpSyntaxError('bad status line');
  const headers = parseHeaderLines(lines, 1);
  if (headers instanceof HttpSyntaxError) return headers;
  return {
    head: { statusCode: Number(status[2]), statusMessage: status[3] ?? '', rawHeaders: headers.rawHeaders },
    http10: status[1] === '0',
    headers,
  };
}
