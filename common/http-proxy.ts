import http, {
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';

/**
 * The proxy core shared by the gateway (user → gitspace agent) and the agent (agent → VS Code server): HTTP with
 * streaming bodies in both directions, WebSocket upgrades spliced socket to socket, hop-by-hop headers dropped, and a
 * deadline for the upstream's response headers. Routing, auth and header hygiene are the caller's.
 */

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

/** Copies end-to-end headers: drops hop-by-hop ones and any the `Connection` header names. */
export function endToEndHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const named = headers.connection
    ? new Set(headers.connection.split(',').map((token) => token.trim().toLowerCase()))
    : undefined;
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out[name] = headers[name];
  }
  return out;
}

export interface ProxyOptions {
  /** Origin of the upstream (`http://host:port`); only its protocol, host and port are used. */
  target: URL;
  /** Request target sent upstream (origin-form: path and query). */
  path: string;
  /** Request headers to send, already cleaned by the caller (see {@link endToEndHeaders}). */
  headers: OutgoingHttpHeaders;
  /** Deadline for the upstream's response headers (or its 101), in milliseconds. */
  timeoutMs: number;
  /** Connection pool for HTTP requests (keep-alive); upgrades always get their own connection. */
  agent?: http.Agent;
  /** Rewrites the upstream's response headers (already without hop-by-hop ones) before they reach the client. */
  responseHeaders?: (headers: OutgoingHttpHeaders) => OutgoingHttpHeaders;
  /** Called once when the upstream fails before anything was sent to the client; the caller answers. */
  onError: (error: UpstreamError) => void;
}

/** Lets the caller end a proxied exchange at once (the route was removed). */
export interface ProxiedExchange {
  close(): void;
}

/** Proxies one HTTP request; request and response bodies stream through without buffering. */
export function proxyHttp(req: IncomingMessage, res: ServerResponse, options: ProxyOptions): ProxiedExchange {
  const upstream = request(req.method ?? 'GET', options, options.agent);
  let settled = false;
  const fail = (error: UpstreamError) => {
    if (settled) return;
    settled = true;
    upstream.destroy();
    if (res.headersSent) res.destroy();
    else options.onError(error);
  };
  const timer = setTimeout(
    () => fail(new UpstreamTimeoutError(options.target.origin, options.timeoutMs)),
    options.timeoutMs,
  );

  upstream.on('response', (upstreamRes) => {
    clearTimeout(timer);
    if (settled) return upstreamRes.resume();
    settled = true;
    let headers = endToEndHeaders(upstreamRes.headers);
    if (options.responseHeaders) headers = options.responseHeaders(headers);
    res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, headers);
    // Forwarded by hand rather than with pipe(): same backpressure, a fraction of the per-request listener churn.
    upstreamRes.on('data', (chunk: Buffer) => {
      if (!res.write(chunk)) {
        upstreamRes.pause();
        res.once('drain', () => upstreamRes.resume());
      }
    });
    upstreamRes.on('end', () => res.end());
    // An upstream that dies mid-body must not look like a complete response to the client.
    upstreamRes.on('error', () => res.destroy());
    upstreamRes.on('aborted', () => res.destroy());
  });
  upstream.on('error', (error: NodeJS.ErrnoException) => {
    clearTimeout(timer);
    fail(new UpstreamUnreachableError(options.target.origin, error.code ?? error.message));
  });
  res.on('close', () => {
    clearTimeout(timer);
    if (!res.writableFinished) upstream.destroy();
  });
  // A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 §6.3): send it at once.
  if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) {
    upstream.end();
    req.resume();
  } else {
    req.pipe(upstream);
  }
  return {
    close: () => {
      clearTimeout(timer);
      settled = true;
      upstream.destroy();
      res.destroy();
    },
  };
}

/**
 * Proxies a WebSocket (any HTTP/1.1 upgrade): opens the upgrade upstream, answers the client with the upstream's 101
 * and splices the two sockets. An upstream that refuses the upgrade has its answer relayed as is.
 */
export function proxyUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: ProxyOptions,
): ProxiedExchange {
  const headers = { ...options.headers, connection: 'Upgrade', upgrade: req.headers.upgrade ?? 'websocket' };
  const upstream = request(req.method ?? 'GET', { ...options, headers }, false);
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
    let responseHeaders: OutgoingHttpHeaders = {
      ...endToEndHeaders(upstreamRes.headers),
      connection: 'Upgrade',
      upgrade: upstreamRes.headers.upgrade ?? 'websocket',
    };
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
    let responseHeaders = endToEndHeaders(upstreamRes.headers);
    if (options.responseHeaders) responseHeaders = options.responseHeaders(responseHeaders);
    delete responseHeaders['content-length'];
    socket.write(
      statusLine(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage) +
        headerLines({ ...responseHeaders, connection: 'close' }),
    );
    upstreamRes.pipe(socket);
  });
  upstream.on('error', (error: NodeJS.ErrnoException) => {
    clearTimeout(timer);
    fail(new UpstreamUnreachableError(options.target.origin, error.code ?? error.message));
  });
  upstream.end();
  return { close: closeAll };
}

/** Writes a complete HTTP/1.1 response on a raw socket (an upgrade the proxy refuses) and closes it. */
export function writeRawResponse(socket: Duplex, status: number, headers: OutgoingHttpHeaders, body: string): void {
  const payload = Buffer.from(body);
  socket.write(
    statusLine(status, http.STATUS_CODES[status]) +
      headerLines({ ...headers, 'content-length': payload.length, connection: 'close' }),
  );
  socket.end(payload);
}

function request(method: string, options: ProxyOptions, agent: http.Agent | false | undefined): http.ClientRequest {
  const isHttps = options.target.protocol === 'https:';
  const requestOptions: http.RequestOptions = {
    protocol: options.target.protocol,
    hostname: options.target.hostname.replace(/^\[|\]$/g, ''),
    port: options.target.port || (isHttps ? 443 : 80),
    method,
    path: options.path,
    headers: options.headers,
    agent,
  };
  const upstream = isHttps ? https.request(requestOptions) : http.request(requestOptions);
  // Pooled sockets already have Nagle off (the agent's default); a one-off upgrade connection needs it set.
  if (agent === false) upstream.setNoDelay(true);
  return upstream;
}

function statusLine(status: number, message: string | undefined): string {
  return `HTTP/1.1 ${status} ${message ?? ''}\r\n`;
}

function headerLines(headers: OutgoingHttpHeaders): string {
  let out = '';
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value])
      out += `${name}: ${String(one).replace(/[\r\n]/g, '')}\r\n`;
  }
  return out + '\r\n';
}
