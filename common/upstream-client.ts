import net from 'node:net';
import tls from 'node:tls';

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
/** Largest chunk-size or trailer line accepted. */
const MAX_LINE_BYTES = 8 * 1024;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const INVALID_PATH = /[^\x21-\x7e\x80-\xff]/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([^\r\n]*))?$/;
const CRLF = Buffer.from('\r\n\r\n');
/** Methods that may be sent twice (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Thrown (to the handler) when the upstream's answer is not well-formed HTTP/1.1; the caller answers 502. */
export class UpstreamProtocolError extends Error {
  readonly code = 'EPROTO';
  constructor(readonly reason: string) {
    super(`the upstream sent a malformed response (${reason})`);
    this.name = 'UpstreamProtocolError';
  }
}

/**
 * Headers in the shape of Node's `rawHeaders`: name, value, name, value… Names keep the sender's case and repeats stay
 * separate lines, so a proxy relays them as they came without building an object per message.
 */
export type RawHeaders = string[];

/**
 * Whether a header name is `lowerName`, case-insensitively. Only a name of the right length is lower-cased, so the
 * check costs next to nothing for the many headers that are not the one looked for.
 */
export function isHeaderNamed(name: string, lowerName: string): boolean {
  return name.length === lowerName.length && name.toLowerCase() === lowerName;
}

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
  body: 'none' | 'chunked' | number;
}

export interface UpstreamPoolOptions {
  /** Idle connections kept per origin. */
  maxIdlePerOrigin?: number;
  /** An idle connection is closed after this long (below Node's 5 s server keep-alive, to dodge its close race). */
  idleTimeoutMs?: number;
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
    const list = fresh ? undefined : this.idle.get(target.origin);
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
    this.origin = target.origin;
    const host = target.hostname.replace(/^\[|\]$/g, '');
    if (target.protocol === 'https:') {
      this.socket = tls.connect({
        host,
        port: Number(target.port || 443),
        servername: net.isIP(host) ? undefined : host,
        ALPNProtocols: ['http/1.1'],
      });
    } else {
      this.socket = net.connect({ host, port: Number(target.port || 80) });
    }
    this.socket.setNoDelay(true);
    this.socket.on('data', (data: Buffer) => {
      if (this.exchange) this.exchange.feed(data);
      else this.socket.destroy(); // an idle connection has nothing to say
    });
    this.socket.on('end', () => this.exchange?.connectionEnded('ECONNRESET'));
    this.socket.on('error', (error: NodeJS.ErrnoException) => this.exchange?.connectionEnded(error.code ?? 'EIO'));
    this.socket.on('close', () => {
      this.pool.forget(this);
      this.exchange?.connectionEnded('ECONNRESET');
    });
  }
}

/** Where the response parser is. */
const State = {
  Head: 0,
  Length: 1,
  ChunkSize: 2,
  ChunkData: 3,
  ChunkDataEnd: 4,
  Trailers: 5,
  UntilClose: 6,
  Done: 7,
} as const;
type State = (typeof State)[keyof typeof State];

/** One request/response exchange over a pooled connection. */
export class UpstreamRequest {
  private connection: Connection | undefined;
  private state: State = State.Head;
  private pending: Buffer | undefined;
  /** A chunk-size or trailer line being read, and the last complete one. */
  private partial = '';
  private line = '';
  private remaining = 0;
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
    if (this.state === State.Done && this.connection) this.finish();
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
    while (offset < data.length) {
      switch (this.state) {
        case State.Head: {
          const buffer = this.pending ? Buffer.concat([this.pending, data.subarray(offset)]) : data.subarray(offset);
          const end = buffer.indexOf(CRLF, this.pending ? Math.max(0, this.pending.length - 3) : 0);
          if (end < 0) {
            if (buffer.length > MAX_HEAD_BYTES) return this.fail(new UpstreamProtocolError('head too large'));
            this.pending = buffer;
            return;
          }
          this.pending = undefined;
          data = buffer;
          offset = end + 4;
          if (end > MAX_HEAD_BYTES) return this.fail(new UpstreamProtocolError('head too large'));
          const parsed = parseHead(buffer.toString('latin1', 0, end));
          if (parsed instanceof UpstreamProtocolError) return this.fail(parsed);
          const { head } = parsed;
          if (head.statusCode < 200) {
            // 100 Continue, 103 Early Hints: informational, the real answer follows. 101 is for upgrades only.
            if (head.statusCode === 101) return this.fail(new UpstreamProtocolError('101 without an upgrade'));
            continue;
          }
          const framing = this.frame(parsed);
          if (framing) return this.fail(framing);
          this.handler.onHead(head);
          if (this.finished()) return this.complete(undefined, data.length - offset);
          break;
        }
        case State.Length: {
          const take = Math.min(this.remaining, data.length - offset);
          const piece = data.subarray(offset, offset + take);
          offset += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            this.state = State.Done;
            return this.complete(piece, data.length - offset);
          }
          this.deliver(piece);
          break;
        }
        case State.ChunkSize: {
          const next = this.readLine(data, offset);
          if (next < 0) return;
          offset = next;
          const size = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(this.line);
          if (!size) return this.fail(new UpstreamProtocolError('bad chunk size'));
          this.remaining = parseInt(size[1]!, 16);
          this.state = this.remaining === 0 ? State.Trailers : State.ChunkData;
          break;
        }
        case State.ChunkData: {
          const take = Math.min(this.remaining, data.length - offset);
          this.deliver(data.subarray(offset, offset + take));
          offset += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = State.ChunkDataEnd;
          break;
        }
        case State.ChunkDataEnd:
        case State.Trailers: {
          const next = this.readLine(data, offset);
          if (next < 0) return;
          offset = next;
          if (this.state === State.ChunkDataEnd) {
            if (this.line !== '') return this.fail(new UpstreamProtocolError('chunk without CRLF'));
            this.state = State.ChunkSize;
          } else if (this.line === '') {
            // Trailers are dropped: the response head is already on its way to the client.
            this.state = State.Done;
            return this.complete(undefined, data.length - offset);
          }
          break;
        }
        case State.UntilClose:
          this.deliver(offset === 0 ? data : data.subarray(offset));
          return;
        case State.Done:
          return;
      }
    }
  }

  /** @internal The connection ended or failed while this exchange owned it. */
  connectionEnded(code: string): void {
    if (!this.connection) return;
    if (this.state === State.UntilClose) {
      this.state = State.Done;
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

  private frame({
    head,
    http10,
    connection,
    transferEncoding,
    contentLength,
  }: ParsedHead): UpstreamProtocolError | undefined {
    if (http10 || (connection && /(?:^|,)\s*close\s*(?:,|$)/i.test(connection))) this.keepAlive = false;
    if (this.head.method === 'HEAD' || head.statusCode === 204 || head.statusCode === 304) {
      this.state = State.Done;
      return undefined;
    }
    if (transferEncoding !== undefined) {
      // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3); a message with both is not trusted for reuse.
      if (contentLength !== undefined) {
        this.keepAlive = false;
        head.rawHeaders = withoutHeader(head.rawHeaders, 'content-length');
      }
      if (/(?:^|,)[ \t]*chunked[ \t]*$/i.test(transferEncoding)) {
        this.state = State.ChunkSize;
      } else {
        this.state = State.UntilClose;
        this.keepAlive = false;
      }
      return undefined;
    }
    if (contentLength !== undefined) {
      if (!/^\d{1,15}$/.test(contentLength)) return new UpstreamProtocolError('bad content-length');
      this.remaining = Number(contentLength);
      this.state = this.remaining === 0 ? State.Done : State.Length;
      return undefined;
    }
    this.state = State.UntilClose;
    this.keepAlive = false;
    return undefined;
  }

  private finished(): boolean {
    return this.state === State.Done;
  }

  /** Reads up to the next CRLF into `line`; returns the offset after it, or -1 when more data is needed. */
  private readLine(data: Buffer, offset: number): number {
    const lf = data.indexOf(10, offset);
    const end = lf < 0 ? data.length : lf;
    this.partial += data.toString('latin1', offset, end);
    if (this.partial.length > MAX_LINE_BYTES) {
      this.fail(new UpstreamProtocolError('line too long'));
      return -1;
    }
    if (lf < 0) return -1;
    if (!this.partial.endsWith('\r')) {
      this.fail(new UpstreamProtocolError('bare LF'));
      return -1;
    }
    this.line = this.partial.slice(0, -1);
    this.partial = '';
    return lf + 1;
  }

  private deliver(piece: Buffer): void {
    if (piece.length > 0 && !this.handler.onData(piece)) this.connection?.socket.pause();
  }

  /** The response is complete: hand the connection back if it is clean, then tell the handler. */
  private complete(last: Buffer | undefined, extraBytes: number): void {
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

  private fail(error: UpstreamProtocolError | string): void {
    const connection = this.detach();
    if (!connection) return;
    connection.socket.destroy();
    this.state = State.Done;
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
    if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (INVALID_VALUE.test(value)) throw new TypeError(`invalid value for header ${name}`);
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

/** A response head and the header values that decide its framing (repeats joined with `, `). */
interface ParsedHead {
  head: ResponseHead;
  http10: boolean;
  connection: string | undefined;
  transferEncoding: string | undefined;
  contentLength: string | undefined;
}

/** Parses a response head (without its final CRLF CRLF). */
function parseHead(text: string): ParsedHead | UpstreamProtocolError {
  const lines = text.split('\r\n');
  const status = STATUS_LINE.exec(lines[0]!);
  if (!status) return new UpstreamProtocolError('bad status line');
  const rawHeaders: RawHeaders = [];
  let connection: string | undefined;
  let transferEncoding: string | undefined;
  let contentLength: string | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return new UpstreamProtocolError('bad header line');
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return new UpstreamProtocolError('bad header name');
    const value = trimOws(line, colon + 1);
    if (INVALID_VALUE.test(value)) return new UpstreamProtocolError('bad header value');
    if (isHeaderNamed(name, 'connection')) {
      connection = connection === undefined ? value : `${connection}, ${value}`;
    } else if (isHeaderNamed(name, 'transfer-encoding')) {
      transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
    } else if (isHeaderNamed(name, 'content-length')) {
      if (contentLength !== undefined) {
        // A repeat with the same value is harmless and dropped; different values leave the length unknown.
        if (contentLength !== value) return new UpstreamProtocolError('conflicting content-length');
        continue;
      }
      contentLength = value;
    }
    rawHeaders.push(name, value);
  }
  return {
    head: { statusCode: Number(status[2]), statusMessage: status[3] ?? '', rawHeaders },
    http10: status[1] === '0',
    connection,
    transferEncoding,
    contentLength,
  };
}

/** `line` from `start`, without leading and trailing spaces and tabs (optional whitespace, RFC 9110 §5.6.3). */
function trimOws(line: string, start: number): string {
  let end = line.length;
  while (start < end && (line.charCodeAt(start) === 32 || line.charCodeAt(start) === 9)) start++;
  while (end > start && (line.charCodeAt(end - 1) === 32 || line.charCodeAt(end - 1) === 9)) end--;
  return line.slice(start, end);
}
