/**
 * For the CLI's unit tests: a stand-in API and gateway on one loopback port, whose answers each test chooses, and a
 * CliContext on in-memory streams pointed at it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { createContext, type CliContext } from '../../cli/context';

export interface StubRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: any;
  at: number;
}

export interface StubAnswer {
  status: number;
  body?: unknown;
}

export interface StubServer {
  url: string;
  /** Every HTTP request, in order (WebSocket upgrades are in `upgrades`). */
  requests: StubRequest[];
  upgrades: StubRequest[];
  /** Answers HTTP requests; 404 by default. */
  answer: (request: StubRequest) => StubAnswer;
  /** Refuses an upgrade by returning an answer; undefined accepts it. */
  admitUpgrade: (request: StubRequest) => StubAnswer | undefined;
  /** Called with each accepted WebSocket. */
  onSocket: (ws: WebSocket, request: StubRequest) => void;
  /** Headers added to the 101 answer. */
  upgradeHeaders: Record<string, string>;
  close(): Promise<void>;
}

export async function startStubServer(): Promise<StubServer> {
  const wss = new WebSocketServer({ noServer: true });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const request = { ...head(req), body: text ? JSON.parse(text) : undefined };
      stub.requests.push(request);
      const { status, body } = stub.answer(request);
      res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    });
  });
  server.on('upgrade', (req, socket, upgradeHead) => {
    const request = { ...head(req), body: undefined };
    stub.upgrades.push(request);
    const refusal = stub.admitUpgrade(request);
    if (refusal) {
      const body = JSON.stringify(refusal.body);
      socket.end(
        `HTTP/1.1 ${refusal.status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    wss.once('headers', (headers) => {
      for (const [name, value] of Object.entries(stub.upgradeHeaders)) headers.push(`${name}: ${value}`);
    });
    wss.handleUpgrade(req, socket, upgradeHead, (ws) => stub.onSocket(ws, request));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const stub: StubServer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: [],
    upgrades: [],
    answer: () => ({ status: 404, body: { error: { code: 'not_found', message: 'no such route' } } }),
    admitUpgrade: () => undefined,
    onSocket: () => undefined,
    upgradeHeaders: {},
    async close() {
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return stub;
}

const head = (req: http.IncomingMessage) => ({
  method: req.method ?? '',
  path: req.url ?? '',
  headers: req.headers,
  at: Date.now(),
});

/** An unsigned JWT-shaped token whose `iat` and `exp` say it lives `lifetimeSeconds`. */
export function fakeToken(lifetimeSeconds: number, id = 'tok'): string {
  const iat = Math.floor(Date.now() / 1000);
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none' })}.${part({ iat, exp: iat + lifetimeSeconds, jti: id })}.sig`;
}

export interface TestCli {
  context: CliContext;
  stdin: PassThrough;
  stdout: PassThrough;
  /** Everything written to stdout and stderr so far. */
  out(): string;
  err(): string;
}

/** A CliContext on in-memory streams, no terminal, using `url` and `token` as GITSPACES_URL and GITSPACES_TOKEN do. */
export function testCli(options: { url: string; token?: string; configDir: string; terminal?: boolean }): TestCli {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  const context = createContext(
    {
      stdin: stdin as unknown as NodeJS.ReadStream,
      stdout,
      stderr: { write: (text: string) => (err += text) },
      stdinIsTerminal: options.terminal === true,
      stderrIsTerminal: false,
      onInterrupt: () => () => undefined,
    },
    { configDir: options.configDir, override: { url: options.url, token: options.token ?? 'api-token' } },
  );
  return { context, stdin, stdout, out: () => out, err: () => err };
}
