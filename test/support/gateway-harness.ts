import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SignJWT, createLocalJWKSet, importPKCS8, type JWTPayload } from 'jose';
import { serveAgent } from './agent';
import { ACCESS_TOKEN_KEY_FILE, createAccessTokenIssuer, type AccessTokenIssuer } from '../../api/access-tokens';
import {
  ACCESS_TOKEN_ALGORITHM,
  ACCESS_TOKEN_AUDIENCE,
  ACCESS_TOKEN_CLAIMS,
  ACCESS_TOKEN_ISSUER,
} from '../../contracts/access-token';
import { ROUTE_SECRET_HEADER } from '../../common/gateway-route';
import { silentLogger } from '../../common/logger';
import { createAccessTokenVerifier } from '../../gateway/auth';
import { createGateway, type Gateway, type GatewayOptions } from '../../gateway/gateway';
import { createFileRoutesStore } from '../../gateway/routes-store';

/**
 * Real parts for gateway tests: the control plane's signing key in a temp data dir, real agents (terminal IDE, real
 * shell) on loopback, and the real gateway with both listeners on loopback ports chosen by the OS. Routes are
 * registered as the runner does (target, a random route secret, a run id) and tokens signed as the control plane does
 * (for a gitspace and a run).
 */

/** The run id routes are registered with unless a test says otherwise. */
export const DEFAULT_RUN_ID = 'run-1';

/** A fresh route secret, as the runner makes one per start. */
export function newRouteSecret(): string {
  return randomBytes(32).toString('base64url');
}

export interface Harness {
  dataDir: string;
  issuer: AccessTokenIssuer;
  gateway: Gateway;
  publicUrl: string;
  adminUrl: string;
  /** The `ws://` URL of a path on the public listener. */
  wsUrl(path: string): string;
  adminToken: string;
  /** Calls the admin API. */
  admin(method: string, route: string, body?: unknown, token?: string): Promise<{ status: number; body: unknown }>;
  /** A token signed by the control plane's key with any payload and header the test wants (for forgeries). */
  sign(payload: JWTPayload, header?: Record<string, unknown>): Promise<string>;
  /**
   * Registers a route as the runner does: `PUT /routes/:id { target, secret, runId }` with a fresh secret (or the
   * given one, say an agent's) and run id {@link DEFAULT_RUN_ID} unless told otherwise.
   */
  route(
    gitspaceId: string,
    target: string,
    options?: { secret?: string; runId?: string },
  ): Promise<{ status: number; secret: string; runId: string }>;
  /**
   * An access token as the control plane issues it, for the run the gitspace's route was last registered with here
   * (or `runId`), valid for an hour (or `expiresInSeconds`).
   */
  token(gitspaceId: string, options?: { runId?: string; userId?: string; expiresInSeconds?: number }): Promise<string>;
  /** Stops the gateway and starts a new one on the same data dir and ports (a restart). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(
  options: Partial<
    Pick<
      GatewayOptions,
      | 'domain'
      | 'upstreamTimeoutMs'
      | 'trustedProxies'
      | 'maxConnectionsPerClient'
      | 'authFailureLimit'
      | 'now'
      | 'timeouts'
      | 'dashboardUrl'
    >
  > = {},
): Promise<Harness> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-gateway-'));
  const issuer = await createAccessTokenIssuer({ dataDir, ttlSeconds: 3600 });
  const privateKey = await importPKCS8(
    await readFile(path.join(dataDir, ACCESS_TOKEN_KEY_FILE), 'utf8'),
    ACCESS_TOKEN_ALGORITHM,
  );
  const adminToken = 'test-admin-token-0123456789';
  let ports = { port: 0, adminPort: 0 };

  const build = async () => {
    const gateway = createGateway({
      logger: silentLogger,
      routes: await createFileRoutesStore(dataDir),
      verifier: createAccessTokenVerifier({ keys: createLocalJWKSet(issuer.jwks()) }),
      adminToken,
      ...options,
    });
    const urls = await gateway.listen({ host: '127.0.0.1', ...ports });
    ports = { port: portOf(urls.publicUrl), adminPort: portOf(urls.adminUrl) };
    return { gateway, ...urls };
  };

  let current = await build();
  const runs = new Map<string, string>();
  const harness: Harness = {
    dataDir,
    issuer,
    get gateway() {
      return current.gateway;
    },
    get publicUrl() {
      return current.publicUrl;
    },
    get adminUrl() {
      return current.adminUrl;
    },
    wsUrl: (route) => current.publicUrl.replace(/^http/, 'ws') + route,
    adminToken,
    async admin(method, route, body, token = adminToken) {
      const response = await fetch(`${current.adminUrl}${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? (JSON.parse(text) as unknown) : undefined };
    },
    async sign(payload, header = {}) {
      const kid = issuer.jwks().keys[0]!.kid;
      return new SignJWT(payload).setProtectedHeader({ alg: ACCESS_TOKEN_ALGORITHM, kid, ...header }).sign(privateKey);
    },
    async route(gitspaceId, target, { secret = newRouteSecret(), runId = DEFAULT_RUN_ID } = {}) {
      const { status } = await harness.admin('PUT', `/routes/${gitspaceId}`, { target, secret, runId });
      if (status < 300) runs.set(gitspaceId, runId);
      return { status, secret, runId };
    },
    async token(gitspaceId, { runId, userId = 'user-1', expiresInSeconds = 3600 } = {}) {
      const now = Math.floor(Date.now() / 1000);
      return harness.sign({
        sub: userId,
        [ACCESS_TOKEN_CLAIMS.gitspaceId]: gitspaceId,
        [ACCESS_TOKEN_CLAIMS.runId]: runId ?? runs.get(gitspaceId) ?? DEFAULT_RUN_ID,
        aud: ACCESS_TOKEN_AUDIENCE,
        iss: ACCESS_TOKEN_ISSUER,
        iat: now,
        exp: now + expiresInSeconds,
      });
    },
    async restart() {
      await current.gateway.close();
      current = await build();
    },
    async close() {
      await current.gateway.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return harness;
}

/** A harness with one gitspace routed to a recording upstream, and a token for it (see {@link startRouted}). */
export interface Routed {
  h: Harness;
  upstream: Recorder;
  /** The route's secret, as the upstream sees it. */
  secret: string;
  token: string;
  close(): Promise<void>;
}

/** A gateway with `gitspaceId` routed to a {@link startRecorder} upstream (answering with `respond`). */
export async function startRouted(
  gitspaceId: string,
  { respond, ...options }: Parameters<typeof startHarness>[0] & { respond?: Parameters<typeof startRecorder>[0] } = {},
): Promise<Routed> {
  const h = await startHarness(options);
  const upstream = await startRecorder(respond);
  const { secret } = await h.route(gitspaceId, upstream.url);
  return {
    h,
    upstream,
    secret,
    token: await h.token(gitspaceId),
    async close() {
      await h.close();
      await upstream.close();
    },
  };
}

export interface TestAgent {
  url: string;
  workspaceDir: string;
  /** The route secret the agent was given (as the runner does on every start); register it with the route. */
  routeSecret: string;
  /** Headers that let a test talk to the agent directly, as the gateway does. */
  gatewayHeaders: Record<string, string>;
  close(): Promise<void>;
}

/** The private-API secret of every {@link startAgent} agent. */
export const TEST_AGENT_SECRET = 'agent-secret-for-tests';

/** A real gitspace agent (terminal IDE, real shell) whose workspace holds a small repository checkout. */
export async function startAgent(
  gitspaceId: string,
  files: Record<string, string> = { 'README.md': '# demo\n' },
): Promise<TestAgent> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-agent-'));
  const workspaceDir = path.join(root, 'workspace');
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(workspaceDir, name)), { recursive: true });
    await writeFile(path.join(workspaceDir, name), content);
  }
  const agent = await serveAgent({
    gitspaceId,
    secret: TEST_AGENT_SECRET,
    workspaceDir,
    ide: 'terminal',
    logger: silentLogger,
    ideHost: { shell: '/bin/bash', env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: root, PS1: '$ ' } },
  });
  const gatewayHeaders = await agent.route();
  return {
    url: agent.url,
    workspaceDir,
    routeSecret: gatewayHeaders[ROUTE_SECRET_HEADER]!,
    gatewayHeaders,
    async close() {
      await agent.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** A recorded request at a {@link startRecorder} upstream. */
export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** An upstream that records what it gets: see {@link startRecorder}. */
export interface Recorder {
  url: string;
  requests: RecordedRequest[];
  heads: string[];
  server: http.Server;
  close(): Promise<void>;
}

/**
 * An upstream that records every request it gets (HTTP and upgrades) and answers from `respond`. `requests` has the
 * complete ones; `heads` every request line that arrived, even of a request whose body never completed.
 */
export async function startRecorder(
  respond: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_req, res) => res.end('recorded'),
): Promise<Recorder> {
  const requests: RecordedRequest[] = [];
  const heads: string[] = [];
  const server = http.createServer((req, res) => {
    heads.push(`${req.method} ${req.url}`);
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      respond(req, res);
    });
  });
  server.on('upgrade', (req, socket) => {
    heads.push(`${req.method} ${req.url}`);
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: '' });
    socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    heads,
    server,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends raw bytes to a listener and returns the raw answer (for request targets fetch would never send). */
export function rawRequest(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(text));
    let answer = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.setTimeout(5000, () => {
      socket.destroy();
      resolve(answer);
    });
  });
}

/** The status code of a raw HTTP answer. */
export function statusOf(answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}
