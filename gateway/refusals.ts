import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { UpstreamTimeoutError, type RawHeaders, type UpstreamError } from '../common/http-proxy';
import { writeRawResponse } from '../common/http1';
import type { Logger } from '../common/logger';
import { markClosing } from './connections';
import type { ExchangeKind, GatewayMetrics } from './metrics';
import { isBrowserNavigation, sendSignInPage, wantsSignIn } from './sign-in-page';

/**
 * The answers the gateway gives itself instead of forwarding: what a refusal is, the common ones, and how it is sent —
 * as a JSON error on an HTTP exchange, or written raw on a socket that is no exchange (an upgrade, CONNECT, a request
 * llhttp would not parse).
 */

/** A refusal the gateway answers itself: status, machine-readable code and a sentence for the user. */
export interface Refusal {
  status: number;
  code: string;
  message: string;
  /** The connection ends after the answer (a request we will not read further, or the pipeline behind it). */
  close?: boolean;
  /** For 429: seconds to wait. */
  retryAfter?: number;
}

/** How long a refused connection keeps reading (and dropping) what the client still sends, so it sees our answer. */
const LINGER_MS = 2_000;

/** Sends refusals, each counted by its code in the metrics. */
export interface Refusals {
  /** Refuses an HTTP request. */
  refuse(req: IncomingMessage, res: ServerResponse, refusal: Refusal): void;
  /**
   * Refuses an HTTP request to a gitspace for its access token: a browser opening the page gets the sign-in page
   * (sign-in-page.ts) for a 401, everything else the JSON error.
   */
  refuseToken(req: IncomingMessage, res: ServerResponse, refusal: Refusal, gitspaceId: string): void;
  /** Refuses on the raw socket (an upgrade, by default, or CONNECT and unparsable requests as `http`) and closes it. */
  refuseRaw(socket: Duplex, refusal: Refusal, kind?: ExchangeKind): void;
}

/**
 * `dashboardUrl`: the dashboard's base URL, where the sign-in page sends a browser (its `/open/<gitspace id>`); without
 * it the page says where to open the gitspace from.
 */
export function createRefusals(metrics: GatewayMetrics, dashboardUrl?: string): Refusals {
  return {
    refuse(req, res, refusal) {
      metrics.refused('http', refusal.code);
      sendRefusal(req, res, refusal);
    },
    refuseToken(req, res, refusal, gitspaceId) {
      metrics.refused('http', refusal.code);
      if (wantsSignIn(refusal) && isBrowserNavigation(req)) sendSignInPage(req, res, gitspaceId, refusal, dashboardUrl);
      else sendRefusal(req, res, refusal);
    },
    refuseRaw(socket, refusal, kind = 'websocket') {
      metrics.refused(kind, refusal.code);
      sendRawRefusal(socket, refusal);
    },
  };
}

export function notRunning(gitspaceId: string): Refusal {
  return {
    status: 404,
    code: 'gitspace_not_running',
    message: `gitspace '${gitspaceId}' is not running (start it first)`,
  };
}

export function notIdePath(): Refusal {
  return { status: 404, code: 'not_found', message: 'not a path of the IDE' };
}

export function upstreamRefusal(error: UpstreamError, gitspaceId: string, logger: Logger): Refusal {
  logger.warn('gitspace machine did not answer', { gitspaceId, error });
  return error instanceof UpstreamTimeoutError
    ? { status: 504, code: 'machine_timeout', message: `the gitspace machine did not answer in ${error.timeoutMs} ms` }
    : { status: 502, code: 'machine_unreachable', message: `the gitspace machine is unreachable (${error.causeCode})` };
}

function sendRefusal(req: IncomingMessage, res: ServerResponse, refusal: Refusal): void {
  const headers: RawHeaders = [];
  if (refusal.status === 401) headers.push('www-authenticate', 'Bearer');
  if (refusal.retryAfter !== undefined) headers.push('retry-after', String(refusal.retryAfter));
  if (refusal.close) {
    markClosing(req.socket);
    headers.push('connection', 'close');
  }
  sendJson(res, refusal.status, { error: { code: refusal.code, message: refusal.message } }, headers);
}

/** Answers on a socket that is no HTTP exchange (an upgrade, CONNECT, a parse error) and closes it. */
function sendRawRefusal(socket: Duplex, refusal: Refusal): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify({ error: { code: refusal.code, message: refusal.message } });
  writeRawResponse(socket, refusal.status, 'application/json; charset=utf-8', body);
  // Whatever the client still sends is read and dropped for a moment, so it gets to read the answer, then it ends.
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** A JSON answer that is not cached; a HEAD request gets its head only. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: RawHeaders = []): void {
  if (res.headersSent) return void res.destroy();
  const payload = Buffer.from(JSON.stringify(body));
  headers.push(
    'content-type',
    'application/json; charset=utf-8',
    'cache-control',
    'no-store',
    'content-length',
    String(payload.length),
  );
  res.writeHead(status, headers);
  // A HEAD answer has the length a GET would have and no body (Node refuses one: rejectNonStandardBodyWrites).
  if (res.req.method === 'HEAD') res.end();
  else res.end(payload);
}
