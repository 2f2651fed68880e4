/**
 * The SSH tunnel of `gitspaces ssh --stdio` (OpenSSH's ProxyCommand): an ssh access grant from the API, a WebSocket to
 * the gateway with its token as a bearer, the SSH bytes piped stdin → socket → stdout, and the tunnel renewed with a
 * fresh token before the one it was opened with expires.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWebSocketStream, WebSocket } from 'ws';
import { SSH_RENEW_PATH, SSH_TUNNEL_PATH, TUNNEL_ID_HEADER } from '../common/gateway-route';
import { gitspacePath, reasonOf, type ApiClient } from './api-client';
import { ApiError, ApiUnreachableError, CliError, EXIT_CODES } from './errors';
import type { AccessGrant, Gitspace } from './types';

/** When, as a share of the token's lifetime, the tunnel is renewed. */
const RENEW_AT = 0.8;
/** How long the gateway has to answer the upgrade. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/**
 * `POST /gitspaces/:id/access {scope:'ssh'}`: the gateway's SSH URL, an ssh-scope token and the gitspace's host key
 * as an OpenSSH public key line (`ssh-ed25519 AAAA…`), which an ssh grant always has.
 */
export type SshAccessGrant = AccessGrant & { hostKey: string };

export function requestSshAccess(client: ApiClient, gitspaceId: string): Promise<SshAccessGrant> {
  return client.post<SshAccessGrant>(gitspacePath(gitspaceId, '/access'), { scope: 'ssh' });
}

/**
 * Thrown when an SSH connection cannot be made or is cut: the gitspace is not running, the gateway refused the tunnel
 * or its renewal, or the tunnel ended before ssh ended it.
 */
export class SshError extends CliError {
  readonly exitCode = EXIT_CODES.api;
  constructor(
    readonly code: string,
    message: string,
    /** The gateway's HTTP status, when it answered one. */
    readonly status?: number,
  ) {
    super(message);
  }
  /** Whether asking again later may work: the gateway did not answer, or was busy or away. */
  get transient(): boolean {
    return this.code === 'unreachable' || this.status === 429 || (this.status ?? 0) >= 500;
  }
}

export interface TunnelIo {
  /** What ssh writes to the ProxyCommand. */
  stdin: Readable;
  /** Where the gitspace's SSH bytes go back to ssh. */
  stdout: Writable;
  /** A line on stderr (ssh shows the ProxyCommand's stderr). */
  note(line: string): void;
}

/**
 * Carries one SSH connection to the gitspace until ssh closes its end (resolves) or the tunnel is cut (throws
 * SshError, exit 3). A refused grant throws the API's error; a refused upgrade the gateway's.
 */
export async function openSshTunnel(
  client: ApiClient,
  gitspace: Pick<Gitspace, 'id' | 'name'>,
  io: TunnelIo,
): Promise<void> {
  const grant = await requestSshAccess(client, gitspace.id);
  const { socket, closed, tunnelId } = await connect(grant);
  // Whether ssh ended the connection (closed our stdin): then the tunnel's end is no news.
  let sshClosed = false;
  io.stdin.once('end', () => (sshClosed = true));
  const renewal = tunnelId
    ? keepRenewed(client, gitspace, grant, tunnelId, io)
    : { expiresAt: () => Date.parse(grant.expiresAt), stop: () => undefined };
  // Two pipelines, one per direction, so that the end of one (ssh closed its end, or the gateway its) is seen alone.
  const upstream = pipeline(io.stdin, socket);
  const downstream = pipeline(socket, io.stdout);
  try {
    await downstream;
  } catch (error) {
    throw new SshError('tunnel_failed', `the SSH tunnel to gitspace '${gitspace.name}' failed: ${reasonOf(error)}`);
  } finally {
    renewal.stop();
    // ssh may still hold its end open; the tunnel is over either way, and the process must be free to exit.
    upstream.catch(() => undefined);
    io.stdin.destroy();
  }
  const { code, reason } = await closed;
  if (sshClosed || code === 1000) return;
  const why = reason || (Date.now() >= renewal.expiresAt() ? 'its access expired' : 'the connection was lost');
  throw new SshError(
    'tunnel_closed',
    `the SSH tunnel to gitspace '${gitspace.name}' was closed (${why}); if the gitspace was stopped, start it again`,
  );
}

/**
 * The open tunnel as a stream, its close (code and reason), and the tunnel id the gateway answered the upgrade with
 * (none from an older gateway).
 */
function connect(grant: SshAccessGrant): Promise<{
  socket: Duplex;
  closed: Promise<{ code: number; reason: string }>;
  tunnelId?: string;
}> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(grant.url, {
      headers: { authorization: `Bearer ${grant.token}` },
      perMessageDeflate: false,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    let tunnelId: string | undefined;
    ws.once('upgrade', (response: IncomingMessage) => {
      const header = response.headers[TUNNEL_ID_HEADER];
      tunnelId = typeof header === 'string' && header ? header : undefined;
    });
    ws.once('open', () => {
      ws.off('error', failed);
      // The stream takes the messages from here on, in this very tick: the SSH server speaks first (its banner), and
      // a message that came before anyone listened would be lost.
      const socket = createWebSocketStream(ws);
      const closed = new Promise<{ code: number; reason: string }>((done) =>
        ws.once('close', (code, reason) => done({ code, reason: reason.toString() })),
      );
      resolve({ socket, closed, ...(tunnelId ? { tunnelId } : {}) });
    });
    ws.once('unexpected-response', (_request, response: IncomingMessage) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        reject(gatewayRefusal(response.statusCode ?? 0, response.statusMessage ?? '', Buffer.concat(chunks)));
        ws.terminate();
      });
    });
    const failed = (error: Error) =>
      reject(new SshError('unreachable', `cannot reach the gateway at ${hostOf(grant.url)}: ${reasonOf(error)}`));
    ws.on('error', failed);
  });
}

/** The gateway's refusal (`{ error: { code, message } }`), or what can be said of an answer without one. */
function gatewayRefusal(status: number, statusText: string, body: Buffer): SshError {
  try {
    const { error } = JSON.parse(body.toString('utf8')) as { error?: { code?: unknown; message?: unknown } };
    if (error && typeof error.message === 'string') {
      return new SshError(typeof error.code === 'string' ? error.code : `http_${status}`, error.message, status);
    }
  } catch {
    // A proxy's page, or no body.
  }
  return new SshError(`http_${status}`, `the gateway answered ${status} ${statusText}`.trim(), status);
}

/**
 * Renews the tunnel at 80 % of each token's lifetime: a fresh ssh grant from the API, sent to the gateway's renew
 * path with the tunnel id. A refusal (the API token was revoked, the gitspace restarted) is said once and the tunnel
 * then ends at its expiry; a transient failure is tried again at half the time left.
 */
function keepRenewed(
  client: ApiClient,
  gitspace: Pick<Gitspace, 'id' | 'name'>,
  first: SshAccessGrant,
  tunnelId: string,
  io: Pick<TunnelIo, 'note'>,
) {
  const renewUrl = renewUrlOf(first.url);
  let expiresAt = Date.parse(first.expiresAt);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = (delayMs: number) => {
    if (stopped) return;
    timer = setTimeout(() => void renew(), Math.max(0, delayMs));
  };
  const renew = async () => {
    try {
      const grant = await requestSshAccess(client, gitspace.id);
      const response = await fetch(renewUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${grant.token}`, [TUNNEL_ID_HEADER]: tunnelId },
      }).catch((error: unknown) => {
        throw new SshError('unreachable', `cannot reach the gateway at ${hostOf(renewUrl)}: ${reasonOf(error)}`);
      });
      if (!response.ok) {
        throw gatewayRefusal(response.status, response.statusText, Buffer.from(await response.arrayBuffer()));
      }
      expiresAt = Date.now() + lifetimeMs(grant);
      schedule(lifetimeMs(grant) * RENEW_AT);
    } catch (error) {
      const left = expiresAt - Date.now();
      const transient =
        error instanceof ApiUnreachableError ||
        ((error instanceof ApiError || error instanceof SshError) && error.transient);
      if (transient && left > 2_000) return schedule(left / 2);
      io.note(
        `gitspaces: could not renew the SSH tunnel to gitspace '${gitspace.name}' (${error instanceof Error ? error.message : String(error)}); it ends at ${new Date(expiresAt).toISOString()}`,
      );
    }
  };
  schedule(lifetimeMs(first) * RENEW_AT);
  return {
    expiresAt: () => expiresAt,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** `ws://gw/gitspaces/<id>/_gitspaces/ssh` → `http://gw/gitspaces/<id>/_gitspaces/ssh/renew`. */
export function renewUrlOf(tunnelUrl: string): string {
  const url = new URL(tunnelUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  const prefix = url.pathname.endsWith(SSH_TUNNEL_PATH) ? url.pathname.slice(0, -SSH_TUNNEL_PATH.length) : url.pathname;
  url.pathname = prefix + SSH_RENEW_PATH;
  return url.toString();
}

/**
 * How long a token lives, from its own `iat` and `exp` (the issuer's clock on both ends, so a skewed local clock does
 * not matter); from `expiresAt` and the local clock when the token does not say.
 */
export function lifetimeMs(grant: Pick<AccessGrant, 'token' | 'expiresAt'>): number {
  try {
    const payload = JSON.parse(Buffer.from(grant.token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      iat?: unknown;
      exp?: unknown;
    };
    if (typeof payload.iat === 'number' && typeof payload.exp === 'number' && payload.exp > payload.iat) {
      return (payload.exp - payload.iat) * 1000;
    }
  } catch {
    // Not a JWT we can read: fall back to expiresAt.
  }
  return Math.max(0, Date.parse(grant.expiresAt) - Date.now());
}

const hostOf = (url: string) => new URL(url).host;
