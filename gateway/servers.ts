import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { destroySelf, type Connections } from './connections';
import type { Refusals } from './refusals';
import { MAX_HEAD_BYTES, MAX_HEADER_LINES, clientErrorRefusal } from './request-head';
import type { RequestHandlers } from './requests';

/**
 * The gateway's Node servers: the public listener's settings (llhttp in strict mode, deadlines) and the events it
 * answers itself, and starting and stopping a listener.
 */

/** Deadlines of the public listener (tests shorten them); Node's defaults otherwise. */
export interface ListenerTimeouts {
  headersMs?: number;
  requestMs?: number;
  keepAliveMs?: number;
}

export interface PublicServerOptions {
  requests: RequestHandlers;
  upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  refusals: Refusals;
  connections: Connections;
  timeouts?: ListenerTimeouts;
}

/** The public listener, not yet listening. */
export function createPublicServer(options: PublicServerOptions): http.Server {
  const { requests, refusals, connections, timeouts } = options;
  const headersMs = timeouts?.headersMs ?? 60_000;
  const server = http.createServer(
    {
      // llhttp in strict mode: no lenient flags, whatever NODE_OPTIONS says.
      insecureHTTPParser: false,
      maxHeaderSize: MAX_HEAD_BYTES,
      headersTimeout: headersMs,
      requestTimeout: timeouts?.requestMs ?? 300_000,
      keepAliveTimeout: timeouts?.keepAliveMs ?? 5_000,
      // Deadlines are checked this often over all connections (Node's default, 30 s, would stretch a 60 s deadline).
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersMs / 4))),
      // Host is checked by checkRequestHead (exactly one), which also stops the requests pipelined behind a refusal.
      requireHostHeader: false,
      // Repeated headers stay separate lines in rawHeaders (what is forwarded); `headers` keeps Node's rules.
      joinDuplicateHeaders: false,
      rejectNonStandardBodyWrites: true,
      noDelay: true,
    },
    requests.request,
  );
  // One more than allowed, so that a request with too many is seen (and refused) rather than silently cut.
  server.maxHeadersCount = MAX_HEADER_LINES + 1;
  server.on('checkContinue', requests.checkContinue);
  server.on('checkExpectation', requests.checkExpectation);
  server.on('upgrade', options.upgrade);
  // A gateway is not a forward proxy. Node hands every CONNECT here, never to the request handler.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', destroySelf);
    refusals.refuseRaw(
      socket,
      { status: 405, code: 'method_not_allowed', message: 'CONNECT is not supported' },
      'http',
    );
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // A request llhttp would not parse, or one that did not arrive in time. Answered only when nothing of a response
    // has gone out on this connection yet (a second head in the middle of a body would corrupt what the client reads).
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (error.code === 'ECONNRESET') return void socket.destroy();
    // Our answer to an earlier error on this connection is on its way; the linger timer ends the connection.
    if (socket.writableEnded) return;
    if (!socket.writable || inFlight?.headersSent) return void socket.destroy();
    refusals.refuseRaw(socket, clientErrorRefusal(error), 'http');
  });
  // Every public connection, upgraded ones included (Node's server forgets those), so that closing ends them all.
  server.on('connection', connections.admit);
  return server;
}

/** Stops a listener and ends its connections; at once when it is not listening. */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
