import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { bearerToken } from '../common/bearer';
import type { Logger } from '../common/logger';
import { PayloadRefusedError } from '../common/payload-codec';

/**
 * The codec server: Temporal's remote codec protocol (`POST /encode`, `POST /decode`, `{ payloads: [...] }` with each
 * payload's metadata values and data in base64), for the Temporal Web UI and CLI. It runs in the customer's network
 * beside the keys; Temporal never sees them. Both endpoints need the codec token (`Authorization: Bearer`, or the
 * `gitspaces_codec` cookie that `POST /session` sets for a browser): decode shows plaintext, and encode makes payloads
 * every worker accepts.
 */
export interface CodecServerOptions {
  codec: PayloadCodec;
  /** The bearer token callers must present. */
  token: string;
  /** Web origins (scheme://host:port) allowed to call from a browser: the Temporal Web UI's. */
  allowedOrigins: readonly string[];
  logger: Logger;
  /** Largest request body; default 8 MiB (Temporal's own blob limit is 2 MiB a payload). */
  maxBodyBytes?: number;
}

export const CODEC_COOKIE = 'gitspaces_codec';
/** The Temporal Web UI's origins in the embedded default (GITSPACES_CODEC_ALLOWED_ORIGINS). */
export const DEFAULT_CODEC_ALLOWED_ORIGINS = 'http://127.0.0.1:8233,http://localhost:8233';
/** The codec server's port in the embedded default (GITSPACES_CODEC_PORT). */
export const DEFAULT_CODEC_PORT = 3003;
const DEFAULT_MAX_BODY = 8 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface WirePayload {
  metadata?: Record<string, string>;
  data?: string;
}

export function createCodecServer(options: CodecServerOptions): Server {
  const origins = new Set(options.allowedOrigins.map((o) => o.replace(/\/+$/, '')));
  const expected = digest(options.token);
  const authorised = (request: IncomingMessage) => {
    const given = bearerToken(request.headers.authorization) ?? cookie(request.headers.cookie, CODEC_COOKIE);
    return given !== undefined && timingSafeEqual(digest(given), expected);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const origin = request.headers.origin;
    const path = (request.url ?? '/').split('?')[0];
    // The sign-in page posts to its own origin; nothing else of the server's own origin is needed.
    const ownOrigin =
      path === '/session' &&
      (origin === `http://${request.headers.host}` || origin === `https://${request.headers.host}`);
    if (origin !== undefined && !ownOrigin) {
      // A browser on any other site gets nothing, not even a CORS answer.
      if (!origins.has(origin)) throw new HttpError(403, 'origin not allowed');
      response.setHeader('access-control-allow-origin', origin);
      response.setHeader('access-control-allow-credentials', 'true');
      response.setHeader('vary', 'Origin');
    }
    if (request.method === 'OPTIONS') {
      if (origin === undefined) throw new HttpError(400, 'a preflight needs an Origin');
      response.setHeader('access-control-allow-methods', 'POST, OPTIONS');
      response.setHeader('access-control-allow-headers', 'authorization, content-type, x-namespace');
      response.setHeader('access-control-max-age', '600');
      response.writeHead(204).end();
      return;
    }
    if (path === '/healthz' && request.method === 'GET') return send(response, 200, { ok: true });
    if (path === '/session') return session(request, response);
    // `/encode` and `/decode`, also under a namespace (`/default/decode`), as the CLI's --codec-endpoint templating uses.
    const operation = /^(?:\/[A-Za-z0-9._-]+)?\/(encode|decode)$/.exec(path ?? '')?.[1];
    if (!operation) throw new HttpError(404, 'not found');
    if (request.method !== 'POST') throw new HttpError(405, 'use POST');
    if (!authorised(request)) {
      response.setHeader('www-authenticate', 'Bearer');
      throw new HttpError(401, 'a codec token is required');
    }
    if (!/^application\/json\b/i.test(request.headers['content-type'] ?? '')) {
      throw new HttpError(415, 'send application/json');
    }
    const payloads = parsePayloads(await readBody(request, options.maxBodyBytes ?? DEFAULT_MAX_BODY));
    const result = operation === 'encode' ? await options.codec.encode(payloads) : await decodeForDisplay(payloads);
    send(response, 200, { payloads: result.map(toWire) });
  };

  /** One payload at a time: a payload the codec refuses (plaintext, another key) is shown as it is. */
  const decodeForDisplay = async (payloads: Payload[]) =>
    Promise.all(
      payloads.map(async (payload) => {
        try {
          return (await options.codec.decode([payload]))[0]!;
        } catch (error) {
          if (error instanceof PayloadRefusedError) return payload;
          throw error;
        }
      }),
    );

  /** `POST /session` with the token (bearer or a form's `token` field) sets the cookie a browser's UI sends along. */
  const session = async (request: IncomingMessage, response: ServerResponse) => {
    if (request.method === 'GET') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(SESSION_PAGE);
      return;
    }
    if (request.method === 'DELETE') {
      response.setHeader('set-cookie', `${CODEC_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
      return send(response, 200, { ok: true });
    }
    if (request.method !== 'POST') throw new HttpError(405, 'use GET, POST or DELETE');
    const body = await readBody(request, 4096);
    const token = bearerToken(request.headers.authorization) ?? new URLSearchParams(body).get('token')?.trim();
    if (!token || !timingSafeEqual(digest(token), expected)) {
      response.setHeader('www-authenticate', 'Bearer');
      throw new HttpError(401, 'a codec token is required');
    }
    const secure = request.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
    response.setHeader(
      'set-cookie',
      `${CODEC_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200${secure}`,
    );
    send(response, 200, { ok: true });
  };

  return createServer((request, response) => {
    handle(request, response).then(
      () => options.logger.debug('codec request', { method: request.method, status: response.statusCode }),
      (error: unknown) => {
        const status = error instanceof HttpError ? error.status : 500;
        const message = error instanceof HttpError ? error.message : 'the codec failed';
        if (status === 500) options.logger.error('codec request failed', { error: String(error) });
        if (!response.headersSent) send(response, status, { error: { message } });
        else response.destroy();
        // Whatever is left of a refused body is not read.
        if (!request.complete) request.resume();
      },
    );
  });
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) {
      try {
        return decodeURIComponent(rest.join('=')) || undefined;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  response.end(JSON.stringify(body));
}

async function readBody(request: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new HttpError(413, `the body exceeds ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `the body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function fromBase64(value: unknown, where: string): Uint8Array {
  if (typeof value !== 'string' || !BASE64.test(value)) throw new HttpError(400, `${where} must be base64`);
  return new Uint8Array(Buffer.from(value, 'base64'));
}

function parsePayloads(body: string): Payload[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new HttpError(400, 'the body is not JSON');
  }
  const payloads = (parsed as { payloads?: unknown } | null)?.payloads;
  if (!Array.isArray(payloads)) throw new HttpError(400, 'expected { "payloads": [...] }');
  return payloads.map((raw: unknown, index) => {
    if (raw === null || typeof raw !== 'object') throw new HttpError(400, `payloads[${index}] must be an object`);
    const { metadata = {}, data = '' } = raw as WirePayload;
    if (metadata === null || typeof metadata !== 'object') {
      throw new HttpError(400, `payloads[${index}].metadata must be an object`);
    }
    return {
      metadata: Object.fromEntries(
        Object.entries(metadata).map(([key, value]) => [key, fromBase64(value, `payloads[${index}].metadata.${key}`)]),
      ),
      data: fromBase64(data, `payloads[${index}].data`),
    };
  });
}

function toWire(payload: Payload): WirePayload {
  return {
    metadata: Object.fromEntries(
      Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
    ),
    data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64'),
  };
}

const SESSION_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gitspaces codec server</title></head>
<body>
<h1>Gitspaces codec server</h1>
<p>Sign this browser in to decode payloads in the Temporal Web UI (turn on "include cross-origin credentials" in the
UI's codec server settings). The token is in the codec server's data dir (<code>codec-token</code>).</p>
<form method="post" action="/session"><input type="password" name="token" autocomplete="off" placeholder="codec token">
<button type="submit">Sign in</button></form>
</body></html>
`;
