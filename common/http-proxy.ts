import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { headerLines, isHeaderNamed, type RawHeaders } from './http1';
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

/** For `endToEndHeaders`: a refused upgrade is relayed until close, so its length goes. */
const CONTENT_LENGTH: ReadonlySet<string> = new Set(['content-length']);

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1); never forwarded. */
const HOP_BY_HOP = new Set([
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
]);

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

/**
 * Copies end-to-end headers (of a request's or response's `rawHeaders`): drops hop-by-hop ones, any the `Connection`
 * header names, and any named in `alsoDrop` (lower case), which the caller replaces with its own.
 */
export function endToEndHeaders(raw: readonly string[], alsoDrop?: ReadonlySet<string>): RawHeaders {
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (isHeaderNamed(raw[i]!, 'connection')) {
      named ??= new Set();
      for (const token of raw[i + 1]!.split(',')) named.add(token.trim().toLowerCase());
    }
  }
  const out: RawHeaders = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named?.has(lower) || alsoDrop?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
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
 * Proxies one HTTP request; request and response bodies stream through without buffering. Destroying the client's
 * connection ends the exchange and its upstream connection.
 */
export function proxyHttp(req: IncomingMessage, res: ServerResponse, options: HttpProxyOptions): void {
  new HttpExchange(req, res, options);
}

const EXCHANGE = Symbol('gitspaces.httpExchange');
type Tagged<T> = T & { [EXCHANGE]?: HttpExchange };

/**
 * One proxied HTTP request. Event listeners are shared functions that find the exchange on the emitter, and the
 * deadline timer gets it as an argument: nothing is allocated per request beyond this object and the pool's.
 */
class HttpExchange implements ResponseHandler {
  private readonly upstream: UpstreamRequest;
  private readonly timer: NodeJS.Timeout;
  /** The upstream answered or failed (the client has its answer, or `onError` was called). */
  private settled = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly options: HttpProxyOptions,
  ) {
    // Node has already checked the request's framing; a body of unknown length (chunked) is re-chunked upstream.
    const length = req.headers['content-length'];
    const body =
      length !== undefined ? Number(length) : req.headers['transfer-encoding'] !== undefined ? 'chunked' : 'none';
    this.timer = setTimeout(onDeadline, options.timeoutMs, this);
    (res as Tagged<ServerResponse>)[EXCHANGE] = this;
    res.on('close', onClientClose);
    this.upstream = options.pool.request(
      options.target,
      { method: req.method ?? 'GET', path: options.path, headers: options.headers, body },
      this,
    );
    // A request without a body needs nothing more: Node discards what is left of it once the response ends.
    if (body !== 'none') {
      (req as Tagged<IncomingMessage>)[EXCHANGE] = this;
      req.on('data', onClientData);
      req.on('end', onClientEnd);
    }
  }

  onHead(head: ResponseHead): void {
    clearTimeout(this.timer);
    if (this.settled) return;
    this.settled = true;
    let headers = endToEndHeaders(head.rawHeaders);
    if (this.options.responseHeaders) headers = this.options.responseHeaders(headers);
    try {
      this.res.writeHead(head.statusCode, head.statusMessage || undefined, headers);
    } catch {
      // A head Node will not send (the rewrite produced something invalid): nothing has gone out yet, so it is a 502.
      this.upstream.destroy();
      this.options.onError(new UpstreamUnreachableError(this.options.target.origin, 'EPROTO'));
    }
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    this.res.once('drain', onClientDrain);
    return false;
  }

  onEnd(last: Buffer | undefined): void {
    if (last) this.res.end(last);
    else this.res.end();
  }

  onError(code: string): void {
    clearTimeout(this.timer);
    // An upstream that dies mid-body must not look like a complete response to the client.
    if (this.settled || this.res.headersSent) return void this.res.destroy();
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
      this.req.pause();
      this.upstream.onDrain(() => this.req.resume());
    }
  }

  clientEnd(): void {
    this.upstream.end();
  }

  clientDrain(): void {
    this.upstream.resume();
  }

  /** The client's response is done or its connection went away. */
  clientClosed(): void {
    clearTimeout(this.timer);
    // A no-op once the response completed and the connection went back to the pool.
    this.upstream.destroy();
  }
}

function onDeadline(exchange: HttpExchange): void {
  exchange.deadline();
}
function onClientClose(this: Tagged<ServerResponse>): void {
  this[EXCHANGE]?.clientClosed();
}
function onClientDrain(this: Tagged<ServerResponse>): void {
  this[EXCHANGE]?.clientDrain();
}
function onClientData(this: Tagged<IncomingMessage>, chunk: Buffer): void {
  this[EXCHANGE]?.clientData(chunk);
}
function onClientEnd(this: Tagged<IncomingMessage>): void {
  this[EXCHANGE]?.clientEnd();
}

/**
 * Proxies a WebSocket (any HTTP/1.1 upgrade): opens the upgrade upstream, answers the client with the upstream's 101
 * and splices the two sockets. An upstream that refuses the upgrade has its answer relayed as is. Destroying the
 * client's socket ends both.
 */
export function proxyUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, options: ProxyOptions): void {
  const headers = [...options.headers, 'connection', 'Upgrade', 'upgrade', req.headers.upgrade ?? 'websocket'];
  const upstream = upgradeRequest(req.method ?? 'GET', { ...options, headers });
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
    upstreamSocket = upSocket;
    if (settled) return upSocket.destroy();
    settled = true;
    let responseHeaders = [
      ...endToEndHeaders(upstreamRes.rawHeaders),
      'connection',
      'Upgrade',
      'upgrade',
      upstreamRes.headers.upgrade ?? 'websocket',
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

/** Writes a complete HTTP/1.1 response on a raw socket (an upgrade the proxy refuses) and closes it. */
export function writeRawResponse(socket: Duplex, status: number, contentType: string, body: string): void {
  const payload = Buffer.from(body);
  socket.write(
    statusLine(status, http.STATUS_CODES[status]) +
      headerLines(['content-type', contentType, 'content-length', String(payload.length), 'connection', 'close']),
  );
  socket.end(payload);
}

function upgradeRequest(method: string, options: ProxyOptions): http.ClientRequest {
  const isHttps = options.target.protocol === 'https:';
  const requestOptions: http.RequestOptions = {
    protocol: options.target.protocol,
    hostname: options.target.hostname.replace(/^\[|\]$/g, ''),
    port: options.target.port || (isHttps ? 443 : 80),
    method,
    path: options.path,
    headers: options.headers,
    agent: false,
  };
  const upstream = isHttps ? https.request(requestOptions) : http.request(requestOptions);
  upstream.setNoDelay(true);
  return upstream;
}

function statusLine(status: number, message: string | undefined): string {
  return `HTTP/1.1 ${status} ${message ?? ''}\r\n`;
}
