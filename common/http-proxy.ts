import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { HeaderNames, headerLines, isHeaderNamed, statusLine, type RawHeaders, type RequestFraming } from './http1';
import { type ResponseHandler, type ResponseHead, type UpstreamPool, type UpstreamRequest } from './upstream-client';

export type { RawHeaders } from './http1';

/**
 * The proxy core shared by the gateway (user → gitspace agent) and the agent (agent → VS Code server): HTTP with
 * streaming bodies in both directions, WebSocket upgrades spliced socket to socket, hop-by-hop headers dropped, and a
 * deadline for the upstream's response headers. Routing, auth and header hygiene are the caller's.
 *
 * HTTP requests go over an {@link UpstreamPool} (a pooled HTTP/1.1 client of our own, several times cheaper per
 * request than `http.request`); upgrades use a one-off `http.request`, as they are rare and long-lived.
 */

/** What the proxy needs from the client side of an exchange: a Node request/response pair (see {@link nodeClient}). */
export interface ClientExchange {
  readonly method: string;
  readonly requestBody: RequestFraming;
  readonly headSent: boolean;
  /** From now on `listener` hears of the request body (which starts flowing), drains and the exchange's end. */
  attach(listener: ClientListener): void;
  pauseBody(): void;
  resumeBody(): void;
  /** Sets the response head (sent with the first body bytes or by `flush`); throws on an invalid one. */
  writeHead(status: number, message: string | undefined, headers: RawHeaders): void;
  /** Sends a response head that is still waiting for body bytes. */
  flush(): void;
  /** Sends a piece of the response body; false means wait for `clientDrain`. */
  write(chunk: Buffer): boolean;
  end(last?: Buffer): void;
  /** Abandons the exchange: the client's connection closes. */
  destroy(): void;
}

export interface ClientListener {
  clientData(chunk: Buffer): void;
  clientEnd(): void;
  clientDrain(): void;
  /** The response ended or the client's connection went away; called once. */
  clientClosed(): void;
}

/** For `endToEndHeaders`: a refused upgrade is relayed until close, so its length goes. */
const CONTENT_LENGTH: readonly string[] = ['content-length'];

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1); never forwarded. */
const HOP_BY_HOP: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
];

/** Thrown (to `onError`) when the upstream cannot be connected to or drops the connection before answering: 502. */
export class UpstreamUnreachableError extends Error {
  constructor(
    readonly target: string,
    readonly causeCode: string,
  ) {
    super(`the upstream ${target} is unreachable (${causeCode})`);
    this.name = 'UpstreamUnreachableError';
  }
}

/** Thrown (to `onError`) when the upstream accepted the request but did not answer within the deadline: 504. */
export class UpstreamTimeoutError extends Error {
  constructor(
    readonly target: string,
    readonly timeoutMs: number,
  ) {
    super(`the upstream ${target} did not answer within ${timeoutMs} ms`);
    this.name = 'UpstreamTimeoutError';
  }
}

export type UpstreamError = UpstreamUnreachableError | UpstreamTimeoutError;

/** {@link HOP_BY_HOP} as a set, and with each list of names to drop as well (see {@link endToEndHeaders}). */
const HOP_BY_HOP_NAMES = new HeaderNames(HOP_BY_HOP);
const dropSets = new WeakMap<readonly string[], HeaderNames>();

/**
 * Copies end-to-end headers (of a request's or response's `rawHeaders`): drops hop-by-hop ones, any the `Connection`
 * header names, and any named in `alsoDrop` (lower case), which the caller replaces with its own. Names are compared
 * with {@link isHeaderNamed}, without lower-casing them.
 */
export function endToEndHeaders(raw: readonly string[], alsoDrop?: readonly string[]): RawHeaders {
  // One pass, each name looked up once in one set (hop-by-hop and `alsoDrop` together, made once per list); names
  // that a Connection header adds (rare) are taken out after.
  let drop = HOP_BY_HOP_NAMES;
  if (alsoDrop) {
    drop = dropSets.get(alsoDrop)!;
    if (!drop) dropSets.set(alsoDrop, (drop = new HeaderNames([...HOP_BY_HOP, ...alsoDrop])));
  }
  let named: string[] | undefined;
  const out: RawHeaders = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (drop.has(name)) {
      if (isHeaderNamed(name, 'connection')) named = connectionOptions(raw[i + 1]!, named);
      continue;
    }
    out.push(name, raw[i + 1]!);
  }
  if (!named) return out;
  const kept: RawHeaders = [];
  for (let i = 0; i < out.length; i += 2) if (!isNamedIn(out[i]!, named)) kept.push(out[i]!, out[i + 1]!);
  return kept;
}

/** Adds the header names a Connection header lists (other than hop-by-hop ones, dropped anyway) to `named`. */
function connectionOptions(value: string, named: string[] | undefined): string[] | undefined {
  for (let start = 0; start <= value.length;) {
    let end = value.indexOf(',', start);
    if (end < 0) end = value.length;
    const name = value.slice(start, end).trim();
    if (name && !HOP_BY_HOP_NAMES.has(name)) (named ??= []).push(name.toLowerCase());
    start = end + 1;
  }
  return named;
}

function isNamedIn(name: string, lowerNames: readonly string[]): boolean {
  for (let i = 0; i < lowerNames.length; i++) if (isHeaderNamed(name, lowerNames[i]!)) return true;
  return false;
}

export interface ProxyOptions {
  /** Origin of the upstream (`http://host:port`); only its protocol, host and port are used. */
  target: URL;
  /** Request target sent upstream (origin-form: path and query). */
  path: string;
  /** Request headers to send, already cleaned by the caller (see {@link endToEndHeaders}). */
  headers: RawHeaders;
  /** Deadline for the upstream's response headers (or its 101), in milliseconds. */
  timeoutMs: number;
  /** Rewrites the upstream's response headers (already without hop-by-hop ones) before they reach the client. */
  responseHeaders?: (headers: RawHeaders) => RawHeaders;
  /** Called once when the upstream fails before anything was sent to the client; the caller answers. */
  onError: (error: UpstreamError) => void;
}

export interface HttpProxyOptions extends ProxyOptions {
  /** Keep-alive connections to the upstream (upgrades always get their own connection). */
  pool: UpstreamPool;
}

/**
 * Proxies one HTTP request; request and response bodies stream through without buffering. The client side is a Node
 * request/response pair wrapped by {@link nodeClient} (the gateway's public listener, the agent). Destroying the
 * client's connection ends the exchange and its upstream connection.
 */
export function proxyHttp(client: ClientExchange, options: HttpProxyOptions): void {
  new HttpExchange(client, options);
}

/** One proxied HTTP request: a listener of its client side and a handler of its upstream response. */
class HttpExchange implements ResponseHandler, ClientListener {
  private readonly upstream: UpstreamRequest;
  private readonly timer: NodeJS.Timeout;
  /** The upstream answered or failed (the client has its answer, or `onError` was called). */
  private settled = false;

  constructor(
    private readonly client: ClientExchange,
    private readonly options: HttpProxyOptions,
  ) {
    this.timer = setTimeout(onDeadline, options.timeoutMs, this);
    this.upstream = options.pool.request(
      options.target,
      { method: client.method, path: options.path, headers: options.headers, body: client.requestBody },
      this,
    );
    client.attach(this);
  }

  onHead(head: ResponseHead): void {
    clearTimeout(this.timer);
    if (this.settled) return;
    this.settled = true;
    let headers = endToEndHeaders(head.rawHeaders);
    if (this.options.responseHeaders) headers = this.options.responseHeaders(headers);
    try {
      this.client.writeHead(head.statusCode, head.statusMessage || undefined, headers);
    } catch {
      // A head we will not send (the rewrite produced something invalid): nothing has gone out yet, so it is a 502.
      this.upstream.destroy();
      this.options.onError(new UpstreamUnreachableError(this.options.target.origin, 'EPROTO'));
    }
  }

  onData(chunk: Buffer): boolean {
    return this.client.write(chunk);
  }

  onWaiting(): void {
    this.client.flush();
  }

  onEnd(last: Buffer | undefined): void {
    this.client.end(last);
  }

  onError(code: string): void {
    clearTimeout(this.timer);
    // An upstream that dies mid-body must not look like a complete response to the client.
    if (this.settled || this.client.headSent) return void this.client.destroy();
    this.settled = true;
    this.options.onError(new UpstreamUnreachableError(this.options.target.origin, code));
  }

  deadline(): void {
    if (this.settled) return;
    this.settled = true;
    this.upstream.destroy();
    this.options.onError(new UpstreamTimeoutError(this.options.target.origin, this.options.timeoutMs));
  }

  clientData(chunk: Buffer): void {
    if (!this.upstream.write(chunk)) {
      this.client.pauseBody();
      this.upstream.onDrain(() => this.client.resumeBody());
    }
  }

  clientEnd(): void {
    this.upstream.end();
  }

  clientDrain(): void {
    this.upstream.resume();
  }

  clientClosed(): void {
    clearTimeout(this.timer);
    // A no-op once the response completed and the connection went back to the pool.
    this.upstream.destroy();
  }
}

function onDeadline(exchange: HttpExchange): void {
  exchange.deadline();
}

/**
 * The client side of a proxied exchange on Node's own HTTP server (the gateway's public listener, the agent's), for
 * {@link proxyHttp}.
 */
export function nodeClient(req: IncomingMessage, res: ServerResponse): ClientExchange {
  return new NodeClient(req, res);
}

const CLIENT = Symbol('gitspaces.nodeClient');
type Tagged<T> = T & { [CLIENT]?: NodeClient };

/** Event listeners are shared functions that find the client on the emitter: nothing is allocated per event. */
class NodeClient implements ClientExchange {
  readonly method: string;
  readonly requestBody: RequestFraming;
  listener: ClientListener | undefined;
  private flushed = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    this.method = req.method ?? 'GET';
    // Node has already checked the request's framing; a body of unknown length (chunked) is re-chunked upstream.
    const length = req.headers['content-length'];
    this.requestBody =
      length !== undefined ? Number(length) : req.headers['transfer-encoding'] !== undefined ? 'chunked' : 'none';
  }

  get headSent(): boolean {
    return this.res.headersSent;
  }

  attach(listener: ClientListener): void {
    this.listener = listener;
    (this.res as Tagged<ServerResponse>)[CLIENT] = this;
    this.res.on('close', onResponseClose);
    this.res.on('drain', onResponseDrain);
    // A request without a body needs nothing more: Node discards what is left of it once the response ends.
    if (this.requestBody !== 'none') {
      (this.req as Tagged<IncomingMessage>)[CLIENT] = this;
      this.req.on('data', onRequestData);
      this.req.on('end', onRequestEnd);
    }
  }

  pauseBody(): void {
    this.req.pause();
  }

  resumeBody(): void {
    this.req.resume();
  }

  writeHead(status: number, message: string | undefined, headers: RawHeaders): void {
    this.res.writeHead(status, message, headers);
  }

  flush(): void {
    if (this.flushed || this.res.writableEnded) return;
    this.flushed = true;
    this.res.flushHeaders();
  }

  write(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  end(last?: Buffer): void {
    if (last) this.res.end(last);
    else this.res.end();
  }

  destroy(): void {
    this.res.destroy();
  }
}

function onResponseClose(this: Tagged<ServerResponse>): void {
  this[CLIENT]?.listener?.clientClosed();
}
function onResponseDrain(this: Tagged<ServerResponse>): void {
  this[CLIENT]?.listener?.clientDrain();
}
function onRequestData(this: Tagged<IncomingMessage>, chunk: Buffer): void {
  this[CLIENT]?.listener?.clientData(chunk);
}
function onRequestEnd(this: Tagged<IncomingMessage>): void {
  this[CLIENT]?.listener?.clientEnd();
}

export interface UpgradeOptions extends ProxyOptions {
  method: string;
  /** The protocol the client asked to switch to (its `Upgrade` header). */
  protocol: string;
}

/**
 * Proxies an HTTP/1.1 upgrade to `protocol` (which upgrades to accept is the caller's decision: the gateway takes only
 * WebSockets): opens the upgrade upstream, answers the client with the upstream's 101 and splices the two sockets. An
 * upstream that switches to any other protocol fails the exchange (502); one that refuses the upgrade has its answer
 * relayed as is. Destroying the client's socket ends both.
 */
export function proxyUpgrade(socket: Duplex, head: Buffer, options: UpgradeOptions): void {
  const headers = [...options.headers, 'connection', 'Upgrade', 'upgrade', options.protocol];
  const upstream = upgradeRequest({ ...options, headers });
  let upstreamSocket: Duplex | undefined;
  let settled = false;
  const closeAll = () => {
    clearTimeout(timer);
    settled = true;
    upstream.destroy();
    upstreamSocket?.destroy();
    socket.destroy();
  };
  const fail = (error: UpstreamError) => {
    if (settled) return;
    settled = true;
    upstream.destroy();
    options.onError(error);
  };
  const timer = setTimeout(
    () => fail(new UpstreamTimeoutError(options.target.origin, options.timeoutMs)),
    options.timeoutMs,
  );
  socket.on('error', closeAll);
  socket.on('close', closeAll);

  upstream.on('upgrade', (upstreamRes, upSocket, upstreamHead) => {
    clearTimeout(timer);
    if (settled) return upSocket.destroy();
    if (!isHeaderNamed(upstreamRes.headers.upgrade?.trim() ?? '', options.protocol.toLowerCase())) {
      // Switching to something the client did not ask for (and the caller did not allow) is not relayed.
      upSocket.destroy();
      return fail(new UpstreamUnreachableError(options.target.origin, 'EPROTO'));
    }
    upstreamSocket = upSocket;
    settled = true;
    let responseHeaders = [
      ...endToEndHeaders(upstreamRes.rawHeaders),
      'connection',
      'Upgrade',
      'upgrade',
      options.protocol,
    ];
    if (options.responseHeaders) responseHeaders = options.responseHeaders(responseHeaders);
    socket.write(statusLine(101, upstreamRes.statusMessage || 'Switching Protocols') + headerLines(responseHeaders));
    if (upstreamHead.length > 0) socket.write(upstreamHead);
    if (head.length > 0) upSocket.write(head);
    upSocket.on('error', closeAll);
    upSocket.on('close', closeAll);
    upSocket.pipe(socket);
    socket.pipe(upSocket);
  });
  upstream.on('response', (upstreamRes) => {
    // The upstream answered without switching protocols: relay its answer and end the connection.
    clearTimeout(timer);
    if (settled) return upstreamRes.resume();
    settled = true;
    // The body is relayed until the connection closes, so any length the upstream gave is dropped.
    let responseHeaders = endToEndHeaders(upstreamRes.rawHeaders, CONTENT_LENGTH);
    if (options.responseHeaders) responseHeaders = options.responseHeaders(responseHeaders);
    socket.write(
      statusLine(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage) +
        headerLines([...responseHeaders, 'connection', 'close']),
    );
    upstreamRes.pipe(socket);
  });
  upstream.on('error', (error: NodeJS.ErrnoException) => {
    clearTimeout(timer);
    fail(new UpstreamUnreachableError(options.target.origin, error.code ?? error.message));
  });
  upstream.end();
}

function upgradeRequest(options: UpgradeOptions): http.ClientRequest {
  const isHttps = options.target.protocol === 'https:';
  const requestOptions: http.RequestOptions = {
    protocol: options.target.protocol,
    hostname: options.target.hostname.replace(/^\[|\]$/g, ''),
    port: options.target.port || (isHttps ? 443 : 80),
    method: options.method,
    path: options.path,
    headers: options.headers,
    agent: false,
  };
  const upstream = isHttps ? https.request(requestOptions) : http.request(requestOptions);
  upstream.setNoDelay(true);
  return upstream;
}
