import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { listen } from '../common/net';

/**
 * The Web UI with its write actions off. The dev server's embedded UI server (`temporal server start-dev`) builds its
 * config in code: no flag, file or variable sets `disableWriteActions`. So the UI listens on an inner loopback port
 * and this guard takes the public one: it answers only GET and HEAD (the UI server's own `disableWriteActions` refuses
 * every other method on its API with 405; here every path, as nothing else is a read), and it reports the write
 * actions off in `/api/v1/settings`, so the UI shows terminate, cancel, signal, reset, start, batch… disabled.
 *
 * This closes the browser's door only: whoever reaches Temporal's gRPC port (or the UI's inner port, on the same
 * loopback address) can still do all of it; outside one machine Temporal must require authentication.
 */
export interface UiGuard {
  url: string;
  close(): Promise<void>;
}

/** The settings that turn the UI's write actions off (the UI 2.x names; any missing is added). */
export const UI_WRITE_SETTINGS: readonly string[] = [
  'DisableWriteActions',
  'WorkflowTerminateDisabled',
  'WorkflowCancelDisabled',
  'WorkflowSignalDisabled',
  'WorkflowUpdateDisabled',
  'WorkflowResetDisabled',
  'WorkflowPauseDisabled',
  'BatchActionsDisabled',
  'StartWorkflowDisabled',
  'ActivityCommandsDisabled',
];

const SETTINGS_PATH = '/api/v1/settings';

export async function startUiGuard(options: { host: string; port: number; upstreamPort: number }): Promise<UiGuard> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      req.resume();
      reply(res, 405, {
        message: 'write actions are off in this Web UI (GITSPACES_TEMPORAL_UI_ACTIONS=on turns them on)',
      });
      return;
    }
    forward(req, res, options);
  });
  // The UI uses no WebSockets; an upgrade is refused by closing the socket.
  server.on('upgrade', (_req, socket) => socket.destroy());
  return {
    url: await listen(server, options.port, options.host),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function forward(req: IncomingMessage, res: ServerResponse, options: { host: string; upstreamPort: number }): void {
  const settings = req.method === 'GET' && new URL(req.url ?? '/', 'http://ui').pathname === SETTINGS_PATH;
  const headers = { ...req.headers };
  // The settings answer is rewritten, so it must come uncompressed.
  if (settings) headers['accept-encoding'] = 'identity';
  const upstream = http.request(
    { host: options.host, port: options.upstreamPort, method: req.method, path: req.url, headers },
    (answer) => {
      if (!settings || answer.statusCode !== 200) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        } catch {
          reply(res, 502, { message: 'the Web UI answered its settings with something other than JSON' });
          return;
        }
        for (const name of UI_WRITE_SETTINGS) body[name] = true;
        const text = JSON.stringify(body);
        const { 'content-length': _length, etag: _etag, ...rest } = answer.headers;
        res.writeHead(200, { ...rest, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
        res.end(text);
      });
      answer.on('error', () => res.destroy());
    },
  );
  upstream.on('error', () => {
    if (res.headersSent) res.destroy();
    else reply(res, 502, { message: 'the Web UI is not answering' });
  });
  req.pipe(upstream);
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
