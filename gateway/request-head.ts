import type { IncomingMessage } from 'node:http';
import { isHeaderNamed } from '../common/http1';
import type { Refusal } from './refusals';

/**
 * The public listener is Node's own HTTP/1.1 server (llhttp, strict mode): what it refuses while parsing, and the
 * checks of a request head it leaves to us.
 */

/** Largest request head (request line and headers), and most header lines, the public listener accepts. */
export const MAX_HEAD_BYTES = 16 * 1024;
export const MAX_HEADER_LINES = 200;

/**
 * What llhttp leaves to the server, checked before anything else: an HTTP version other than 1.0/1.1 (505), a missing
 * (HTTP/1.1) or repeated Host (400), more header lines than allowed (431), Transfer-Encoding in HTTP/1.0 (400) or with
 * a coding other than `chunked` (501). Each ends the connection.
 */
export function checkRequestHead(req: IncomingMessage): Refusal | undefined {
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor > 1) {
    return {
      status: 505,
      code: 'http_version_not_supported',
      message: `HTTP/${req.httpVersion} is not supported`,
      close: true,
    };
  }
  const raw = req.rawHeaders;
  if (raw.length > MAX_HEADER_LINES * 2) {
    return { status: 431, code: 'too_many_headers', message: 'the request has too many header lines', close: true };
  }
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) if (isHeaderNamed(raw[i]!, 'host')) hosts++;
  if (hosts > 1 || (hosts === 0 && req.httpVersionMinor === 1)) {
    return { status: 400, code: 'bad_host', message: 'exactly one Host header is required', close: true };
  }
  const codings = req.headers['transfer-encoding'];
  if (codings !== undefined) {
    if (req.httpVersionMinor === 0) {
      return {
        status: 400,
        code: 'bad_framing',
        message: 'Transfer-Encoding in an HTTP/1.0 request',
        close: true,
      };
    }
    if (!isHeaderNamed(codings.trim(), 'chunked')) {
      return {
        status: 501,
        code: 'transfer_coding_not_supported',
        message: `the transfer coding '${codings}' is not supported`,
        close: true,
      };
    }
  }
  return undefined;
}

/** The answer to a request llhttp would not parse, or one that did not arrive in time. */
export function clientErrorRefusal(error: NodeJS.ErrnoException): Refusal {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, code: 'head_too_large', message: 'the request head is too large' };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, code: 'chunk_extensions_too_large', message: 'the chunk extensions are too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, code: 'request_timeout', message: 'the request did not arrive in time' };
    default:
      return {
        status: 400,
        code: 'bad_request',
        message: `the request is not well-formed HTTP/1.1 (${(error as { reason?: string }).reason ?? error.code})`,
      };
  }
}
