import { STATUS_CODES } from 'node:http';
import net from 'node:net';
import {
  BodyDecoder,
  HEAD_END,
  HttpSyntaxError,
  checkOutgoingHeader,
  headerLines,
  isHeaderNamed,
  listsToken,
  parseHeaderLines,
  statusLine,
  writeRawResponse,
  type RawHeaders,
  type RequestFraming,
} from './http1';
import type { ClientExchange, ClientListener } from './http-proxy';

/**
 * An HTTP/1.1 server on plain TCP sockets, for the gateway's public listener. It exists for the same reason as our
 * upstream client: Node's `http.Server` (an IncomingMessage and a ServerResponse stream per request, header objects,
 * validation we redo anyway) costs more CPU per proxied request than everything else the gateway does. This one parses
 * a request head into raw header lines and hands the handler one object that is both the request and its response.
 *
 * It is strict where leniency lets a request be read two ways: a malformed request line or header, obs-fold, a
 * missing or repeated Host (HTTP/1.1), Content-Length with Transfer-Encoding, a bad chunk size or a bare LF are
 * refused with 400 and the connection closed; a transfer coding other than `chunked` is 501, an HTTP version other than
 * 1.x is 505, a head over the limit 431, a head or body that does not arrive in time 408. Keep-alive and pipelining
 * (answered in order, one at a time), `Expect: 100-continue` (sent when the handler starts reading the body), HEAD and
 * HTTP/1.0 clients are handled as RFC 9112 asks.
 */

export interface Http1ServerOptions {
  /** Called for each request (including CONNECT, whose connection closes after the answer). */
  onRequest(exchange: ServerExchange): void;
  /**
   * Called for a request that asks to switch protocols (`Connection: upgrade` and `Upgrade`, no body): from here the
   * socket is the handler's, with `head` the bytes that followed the request head.
   */
  onUpgrade(request: RequestHead, socket: net.Socket, head: Buffer): void;
  /** Deadline for a request head, from its first byte (default 60 s, as Node's). */
  headersTimeoutMs?: number;
  /** Deadline for a whole request, head and body (default 300 s, as Node's). */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this long (default 5 s, as Node's). */
  keepAliveTimeoutMs?: number;
  /** Largest request head (request line and headers) accepted (default 16 KiB, as Node's). */
  maxHeadBytes?: number;
}

/** A parsed request head. */
export interface RequestHead {
  readonly method: string;
  /** The request target as sent (origin-form for anything but CONNECT, `*` and absolute-form requests). */
  readonly url: string;
  readonly httpVersion: '1.0' | '1.1';
  readonly rawHeaders: RawHeaders;
  readonly socket: net.Socket;
  /** A header's value, repeats joined (`, `; `; ` for Cookie); undefined when absent. */
  header(lowerName: string): string | undefined;
}

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e\x80-\xff]+) HTTP\/(\d)\.(\d)$/;
const MAX_HEADERS = 200;
/** How long a closing connection keeps reading (and dropping) what the client still sends, so it sees our answer. */
const LINGER_MS = 2_000;
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
/** Response pieces up to this size are copied into one buffer with their framing; larger ones are written beside it. */
const COPY_LIMIT = 16 * 1024;
/** The listener of an exchange whose handler never read the body: the rest of the body is read and dropped. */
const DISCARD: ClientListener = {
  clientData: () => undefined,
  clientEnd: () => undefined,
  clientDrain: () => undefined,
  clientClosed: () => undefined,
};

/** A refusal the server answers itself, then closes the connection. */
class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The server: a TCP listener whose connections speak HTTP/1.1 to the handlers in its options. */
export class Http1Server {
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  private sweeper: NodeJS.Timeout | undefined;
  /** @internal */ readonly headersTimeoutMs: number;
  /** @internal */ readonly requestTimeoutMs: number;
  /** @internal */ readonly keepAliveTimeoutMs: number;
  /** @internal */ readonly maxHeadBytes: number;

  constructor(/** @internal */ readonly options: Http1ServerOptions) {
    this.headersTimeoutMs = options.headersTimeoutMs ?? 60_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 300_000;
    this.keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 5_000;
    this.maxHeadBytes = options.maxHeadBytes ?? 16 * 1024;
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      this.connections.add(new Connection(this, socket));
    });
  }

  listen(port: number, host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        // Deadlines are checked once a second over all connections, not with a timer per request.
        this.sweeper = setInterval(() => this.sweep(), 1_000).unref();
        resolve();
      });
    });
  }

  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  /** Stops accepting connections and ends every open one. */
  close(): Promise<void> {
    clearInterval(this.sweeper);
    for (const connection of this.connections) connection.socket.destroy();
    return new Promise((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  /** @internal */
  forget(connection: Connection): void {
    this.connections.delete(connection);
  }

  private sweep(): void {
    const now = Date.now();
    for (const connection of this.connections) {
      if (connection.deadline !== 0 && now >= connection.deadline) connection.timedOut();
    }
  }
}

/** One client connection: reads requests one after another and writes their responses in order. */
class Connection {
  /** When the current phase (head, request, keep-alive idle, lingering close) times out; 0 for never. */
  deadline: number;
  /** Unparsed bytes: an incomplete head, or what waits for the handler or the current response. */
  private pending: Buffer | undefined;
  /** The exchange whose response is not yet complete. */
  private current: ServerExchange | undefined;
  /** The current request's body, while it is being read. */
  private body: BodyDecoder | undefined;
  private bodyPaused = false;
  private parsing = false;
  private closing = false;
  /** The client sent FIN: no more requests, close after the current response. */
  private clientEnded = false;
  /** A request head has started arriving. */
  private inHead = false;

  constructor(
    private readonly server: Http1Server,
    readonly socket: net.Socket,
  ) {
    this.deadline = Date.now() + server.headersTimeoutMs;
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('drain', () => this.current?.listener?.clientDrain());
    socket.on('end', () => this.onEnd());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.onClose());
  }

  /** @internal The exchange's listener was attached or resumed: the body can flow again. */
  bodyWanted(): void {
    this.bodyPaused = false;
    this.resumeParsing();
  }

  pauseBody(): void {
    this.bodyPaused = true;
  }

  /** The current exchange's response was written completely. */
  responseDone(exchange: ServerExchange): void {
    if (this.current !== exchange) return;
    if (!exchange.keepAlive || this.clientEnded) {
      this.close(this.body !== undefined);
    } else if (this.body) {
      // The handler answered without reading the whole body: it is read and dropped, and the connection kept.
      exchange.listener = DISCARD;
      this.bodyPaused = false;
    }
    this.finishIfDone();
  }

  timedOut(): void {
    this.deadline = 0;
    const exchange = this.current;
    if (this.closing || (!exchange && !this.inHead)) return void this.socket.destroy();
    this.refuse(new RequestError(408, 'the request did not arrive in time'));
  }

  private onData(data: Buffer): void {
    if (this.closing) return; // lingering: what the client still sends is dropped
    if (this.pending) {
      data = Buffer.concat([this.pending, data]);
      this.pending = undefined;
    }
    this.parse(data);
  }

  private parse(data: Buffer): void {
    this.parsing = true;
    let offset = 0;
    while (offset < data.length && !this.closing) {
      if (this.body) {
        const listener = this.current?.listener;
        if (!listener || this.bodyPaused) break; // the handler has not asked for the body (yet)
        const piece = this.body.next(data, offset);
        if (piece instanceof HttpSyntaxError) {
          this.parsing = false;
          return this.refuse(new RequestError(400, piece.message));
        }
        offset = this.body.offset;
        if (piece && piece.length > 0) listener.clientData(piece);
        if (this.body?.done) this.bodyDone();
        continue;
      }
      if (this.current) break; // the next request waits for this response
      const next = this.readHead(data, offset);
      if (next < 0) {
        this.parsing = false;
        return;
      }
      offset = next;
    }
    this.parsing = false;
    if (offset < data.length && !this.closing && !this.socket.destroyed) {
      this.pending = data.subarray(offset);
      this.socket.pause();
    }
  }

  private resumeParsing(): void {
    if (this.parsing) return; // the parse loop on the stack goes on by itself
    const pending = this.pending;
    this.pending = undefined;
    this.socket.resume();
    if (pending) this.parse(pending);
  }

  /** Reads one request head at `offset` and starts its exchange; -1 when it needs more bytes or the request failed. */
  private readHead(data: Buffer, offset: number): number {
    // RFC 9112 §2.2: empty lines before a request line are ignored.
    while (data[offset] === 13 && data[offset + 1] === 10) offset += 2;
    if (offset >= data.length) return data.length;
    const end = data.indexOf(HEAD_END, offset);
    const max = this.server.maxHeadBytes;
    if (end < 0 || end - offset > max) {
      if (data.length - offset > max) this.refuse(new RequestError(431, 'the request head is too large'));
      else {
        this.pending = data.subarray(offset);
        if (!this.inHead) {
          this.inHead = true;
          this.deadline = Date.now() + this.server.headersTimeoutMs;
        }
      }
      return -1;
    }
    this.inHead = false;
    const head = parseRequestHead(data.toString('latin1', offset, end));
    if (head instanceof RequestError) {
      this.refuse(head);
      return -1;
    }
    offset = end + 4;
    const server = this.server;
    if (head.upgrade) {
      this.handOver();
      server.options.onUpgrade(
        new ServerExchange(this, head.method, head.url, head.version, head.rawHeaders, 'none', false, false),
        this.socket,
        data.subarray(offset),
      );
      return -1;
    }
    const exchange = new ServerExchange(
      this,
      head.method,
      head.url,
      head.version,
      head.rawHeaders,
      head.body,
      head.keepAlive && head.method !== 'CONNECT',
      head.expectContinue,
    );
    this.current = exchange;
    if (head.body !== 'none') {
      this.body = new BodyDecoder(head.body);
      this.bodyPaused = false;
      this.deadline = Date.now() + server.requestTimeoutMs;
    } else {
      this.deadline = 0;
    }
    server.options.onRequest(exchange);
    return offset;
  }

  private bodyDone(): void {
    this.body = undefined;
    const exchange = this.current!;
    if (!exchange.finished) this.deadline = 0;
    exchange.listener!.clientEnd();
    this.finishIfDone();
  }

  /** Once both the request body and the response are complete, the connection serves the next request. */
  private finishIfDone(): void {
    const exchange = this.current;
    if (!exchange || !exchange.finished || this.body) return;
    this.current = undefined;
    exchange.listener?.clientClosed();
    if (this.closing) return;
    this.deadline = Date.now() + this.server.keepAliveTimeoutMs;
    if (this.pending) this.resumeParsing();
  }

  /** The socket now belongs to an upgrade handler. */
  private handOver(): void {
    this.closing = true;
    this.deadline = 0;
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('drain');
    this.socket.removeAllListeners('end');
    // From here a FIN from the client ends our side too, as on any plain socket.
    this.socket.allowHalfOpen = false;
    this.server.forget(this);
  }

  /** Answers a request the server refuses itself and closes the connection. */
  private refuse(error: RequestError): void {
    const exchange = this.current;
    if (exchange?.headSent) return void this.socket.destroy();
    const body = `${STATUS_CODES[error.status]}: ${error.message}\n`;
    writeRawResponse(this.socket, error.status, 'text/plain; charset=utf-8', body);
    this.close(true);
    if (exchange) exchange.abandon();
  }

  /**
   * Ends the connection after what was written. With `linger`, what the client may still be sending is read and
   * dropped for a moment first, so closing with unread data does not reset the connection before it reads the answer.
   */
  private close(linger: boolean): void {
    if (this.closing) return;
    this.closing = true;
    this.pending = undefined;
    this.body = undefined;
    this.socket.end();
    if (linger) {
      this.socket.resume();
      this.deadline = Date.now() + LINGER_MS;
    } else {
      this.deadline = 0;
      this.socket.destroySoon();
    }
  }

  private onEnd(): void {
    this.clientEnded = true;
    if (this.closing) return void this.socket.destroy();
    // An idle connection has nothing left to do; a request cut short by the client's FIN cannot complete.
    if (!this.current) this.close(false);
    else if (this.body) this.socket.destroy();
  }

  private onClose(): void {
    this.server.forget(this);
    this.closing = true;
    this.current?.abandon();
    this.current = undefined;
  }
}

/** One request and its response. */
export class ServerExchange implements RequestHead, ClientExchange {
  /** @internal */ listener: ClientListener | undefined;
  /** @internal The response was written completely. */ finished = false;
  headSent = false;
  private head: string | undefined;
  /** How the response body is written: with its own length, chunked, not at all, or until the connection closes. */
  private responseBody: 'length' | 'chunked' | 'none' | 'close' = 'length';
  private continueSent = false;

  constructor(
    private readonly connection: Connection,
    readonly method: string,
    readonly url: string,
    readonly httpVersion: '1.0' | '1.1',
    readonly rawHeaders: RawHeaders,
    readonly requestBody: RequestFraming,
    /** @internal */ public keepAlive: boolean,
    private readonly expectContinue: boolean,
  ) {}

  get socket(): net.Socket {
    return this.connection.socket;
  }

  header(lowerName: string): string | undefined {
    const headers = this.rawHeaders;
    let value: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      if (!isHeaderNamed(headers[i]!, lowerName)) continue;
      value =
        value === undefined ? headers[i + 1]! : `${value}${lowerName === 'cookie' ? '; ' : ', '}${headers[i + 1]}`;
    }
    return value;
  }

  attach(listener: ClientListener): void {
    this.listener = listener;
    if (this.requestBody === 'none') return;
    if (this.expectContinue && !this.continueSent && !this.headSent) {
      this.continueSent = true;
      this.socket.write(CONTINUE, 'latin1');
    }
    this.connection.bodyWanted();
  }

  pauseBody(): void {
    this.connection.pauseBody();
  }

  resumeBody(): void {
    this.connection.bodyWanted();
  }

  /** A complete response with a body of known length (none for HEAD). */
  respond(status: number, headers: RawHeaders, body: string | Buffer = ''): void {
    const payload = typeof body === 'string' ? Buffer.from(body) : body;
    headers.push('content-length', String(payload.length));
    this.writeHead(status, undefined, headers);
    this.end(payload);
  }

  writeHead(status: number, message: string | undefined, headers: RawHeaders): void {
    if (this.head !== undefined || this.headSent) throw new Error('the response head was already written');
    let hasLength = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      checkOutgoingHeader(name, headers[i + 1]!);
      if (isHeaderNamed(name, 'content-length')) hasLength = true;
    }
    if (this.method === 'HEAD' || status === 204 || status === 304) this.responseBody = 'none';
    else if (hasLength) this.responseBody = 'length';
    else if (this.httpVersion === '1.1') {
      this.responseBody = 'chunked';
      headers.push('transfer-encoding', 'chunked');
    } else {
      this.responseBody = 'close';
      this.keepAlive = false;
    }
    // A client that was told to wait for 100 Continue and was not may still send the body, or may not: close.
    if (this.expectContinue && !this.continueSent && this.requestBody !== 'none') this.keepAlive = false;
    if (!this.keepAlive) headers.push('connection', 'close');
    else if (this.httpVersion === '1.0') headers.push('connection', 'keep-alive');
    this.head = statusLine(status, message) + headerLines(headers);
  }

  flush(): void {
    if (this.head !== undefined && !this.finished) this.send(undefined, false);
  }

  write(chunk: Buffer): boolean {
    if (this.finished || chunk.length === 0) return true;
    if (this.responseBody !== 'none') return this.send(chunk, false);
    this.flush();
    return true;
  }

  end(last?: Buffer): void {
    if (this.finished) return;
    if (this.head === undefined && !this.headSent) this.writeHead(200, undefined, ['content-length', '0']);
    this.send(last && last.length > 0 && this.responseBody !== 'none' ? last : undefined, true);
    this.finished = true;
    this.connection.responseDone(this);
  }

  /**
   * Writes whatever is due in one write: the head if it still waits, a piece of body in the response's framing, and
   * the end of a chunked body when `last`. A small piece is copied next to its framing rather than written beside it
   * (a vectored write costs more than copying a few KiB).
   */
  private send(piece: Buffer | undefined, last: boolean): boolean {
    let prefix = this.head ?? '';
    this.head = undefined;
    this.headSent = true;
    let suffix = '';
    if (this.responseBody === 'chunked') {
      if (piece) {
        prefix += `${piece.length.toString(16)}\r\n`;
        suffix = '\r\n';
      }
      if (last) suffix += '0\r\n\r\n';
    }
    const socket = this.socket;
    if (!piece) return prefix.length + suffix.length === 0 || socket.write(prefix + suffix, 'latin1');
    if (piece.length > COPY_LIMIT) {
      socket.cork();
      if (prefix) socket.write(prefix, 'latin1');
      let ok = socket.write(piece);
      if (suffix) ok = socket.write(suffix, 'latin1');
      socket.uncork();
      return ok;
    }
    const out = Buffer.allocUnsafe(prefix.length + piece.length + suffix.length);
    out.write(prefix, 0, 'latin1');
    piece.copy(out, prefix.length);
    out.write(suffix, prefix.length + piece.length, 'latin1');
    return socket.write(out);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** @internal The connection is gone (or refused the request) before the exchange completed. */
  abandon(): void {
    const listener = this.listener;
    this.listener = undefined;
    this.finished = true;
    listener?.clientClosed();
  }
}

interface ParsedRequestHead {
  method: string;
  url: string;
  version: '1.0' | '1.1';
  rawHeaders: RawHeaders;
  body: RequestFraming;
  keepAlive: boolean;
  upgrade: boolean;
  expectContinue: boolean;
}

/** Parses a request head (without its final CRLF CRLF) and decides its framing (RFC 9112 §6.3). */
function parseRequestHead(text: string): ParsedRequestHead | RequestError {
  const lines = text.split('\r\n');
  const line = REQUEST_LINE.exec(lines[0]!);
  if (!line) return new RequestError(400, 'malformed request line');
  if (line[3] !== '1' || (line[4] !== '0' && line[4] !== '1')) {
    return new RequestError(505, `HTTP/${line[3]}.${line[4]} is not supported`);
  }
  if (lines.length - 1 > MAX_HEADERS) return new RequestError(431, 'too many header lines');
  const headers = parseHeaderLines(lines, 1);
  if (headers instanceof HttpSyntaxError) return new RequestError(400, headers.message);
  const version = line[4] === '1' ? '1.1' : '1.0';
  const { rawHeaders, connection, transferEncoding, contentLength } = headers;
  let hosts = 0;
  let upgrade = false;
  let expect: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (isHeaderNamed(name, 'host')) hosts++;
    else if (isHeaderNamed(name, 'upgrade')) upgrade = true;
    else if (isHeaderNamed(name, 'expect')) expect = rawHeaders[i + 1]!.toLowerCase();
  }
  if (hosts > 1 || (hosts === 0 && version === '1.1'))
    return new RequestError(400, 'exactly one Host header is required');
  let body: RequestFraming = 'none';
  if (transferEncoding !== undefined) {
    if (version === '1.0') return new RequestError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    if (contentLength !== undefined) return new RequestError(400, 'both Content-Length and Transfer-Encoding');
    if (!isHeaderNamed(transferEncoding, 'chunked')) {
      return new RequestError(501, `the transfer coding '${transferEncoding}' is not supported`);
    }
    body = 'chunked';
  } else if (contentLength !== undefined && contentLength !== '0') {
    body = Number(contentLength);
  }
  if (expect !== undefined && expect !== '100-continue') return new RequestError(417, `Expect: ${expect}`);
  return {
    method: line[1]!,
    url: line[2]!,
    version,
    rawHeaders,
    body,
    keepAlive: version === '1.1' ? !listsToken(connection, 'close') : listsToken(connection, 'keep-alive'),
    upgrade: upgrade && body === 'none' && listsToken(connection, 'upgrade'),
    expectContinue: expect !== undefined && version === '1.1',
  };
}
