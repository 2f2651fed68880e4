import { escapeHtml } from '../../common/html';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { findExecutable } from '../../common/executable';
import { freeLoopbackPort } from '../../common/net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { endToEndHeaders, nodeClient, proxyHttp, proxyUpgrade } from '../../common/http-proxy';
import { ROUTE_SECRET_HEADER } from '../../common/gateway-route';
import { writeRawResponse } from '../../common/http1';
import type { Logger } from '../../common/logger';
import { UpstreamPool } from '../../common/upstream-client';

/**
 * The `vscode-web` IDE: the agent launches code-server or openvscode-server on a private loopback port and proxies
 * every IDE request to it. When none is installed it says so on a page, instead of failing somewhere unseen.
 *
 * The command is a template: `{port}` and `{workspace}` are replaced in each argument (no shell is involved, so a
 * workspace path with spaces stays one argument).
 */

/** Default command templates, tried in this order when no command is configured. */
export const KNOWN_VSCODE_SERVERS = [
  {
    executable: 'code-server',
    args: [
      '--bind-addr',
      '127.0.0.1:{port}',
      '--auth',
      'none',
      '--disable-telemetry',
      '--disable-update-check',
      '{workspace}',
    ],
  },
  {
    executable: 'openvscode-server',
    args: ['--host', '127.0.0.1', '--port', '{port}', '--without-connection-token', '--default-folder', '{workspace}'],
  },
] as const;

export interface VscodeIdeOptions {
  workspaceDir: string;
  logger: Logger;
  /** A command template (e.g. `code-server --bind-addr 127.0.0.1:{port} --auth none {workspace}`). */
  command?: string;
  /** Directories to look for a known server in when no command is given (the machine's PATH). */
  searchPath: string;
  /** Environment of the server process (without the agent's secrets). */
  env: Record<string, string>;
  /** How long the server may take to answer its first HTTP request. */
  startTimeoutMs?: number;
  /** Where the fallback terminal is, relative to the IDE root, shown on the explanation page. */
  terminalPath?: string;
}

export interface VscodeIde {
  handleRequest(req: IncomingMessage, res: ServerResponse): void;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Stops the server process (its whole process group). */
  close(): void;
}

/** Thrown when no VS Code server is configured and none of the known ones is installed. */
export class VscodeNotInstalledError extends Error {
  constructor(readonly searched: string[]) {
    super(`no VS Code server is installed on this machine (looked for ${searched.join(' and ')} on the PATH)`);
    this.name = 'VscodeNotInstalledError';
  }
}

/** Thrown when the VS Code server could not be started or exited before answering. */
export class VscodeStartError extends Error {
  constructor(
    readonly command: string,
    readonly reason: string,
    readonly output: string,
  ) {
    super(`the VS Code server (${command}) did not start: ${reason}`);
    this.name = 'VscodeStartError';
  }
}

interface Running {
  child?: ChildProcess;
  /** Resolves with the server's port once it answers HTTP. */
  ready: Promise<number>;
}

/** Builds the VS Code IDE; the server starts on the first request, and again on the next one after it exits. */
export function createVscodeIde(options: VscodeIdeOptions): VscodeIde {
  const { logger } = options;
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  const command = resolveCommand(options);
  let running: Running | undefined;
  const pool = new UpstreamPool();
  let lastError: Error | undefined = command instanceof Error ? command : undefined;
  const killOnExit = () => killGroup(running?.child);
  process.once('exit', killOnExit);

  function start(): Running | undefined {
    if (command instanceof Error) return undefined;
    if (running) return running;
    const current: Running = { ready: Promise.resolve(0) };
    current.ready = launch(command, current).catch((error: Error) => {
      lastError = error;
      logger.warn('VS Code server did not start', { error, command: command.file });
      killGroup(current.child);
      if (running === current) running = undefined;
      throw error;
    });
    current.ready.catch(() => undefined);
    running = current;
    return current;
  }

  async function launch(resolved: ResolvedCommand, current: Running): Promise<number> {
    const port = await freeLoopbackPort();
    const args = resolved.template.map((arg) =>
      arg.replaceAll('{port}', String(port)).replaceAll('{workspace}', options.workspaceDir),
    );
    const display = [resolved.file, ...args].join(' ');
    logger.info('starting VS Code server', { command: display });
    // Its own process group, so stopping it also stops the helpers it spawns.
    const child = spawn(resolved.file, args, {
      cwd: existsSync(options.workspaceDir) ? options.workspaceDir : path.dirname(options.workspaceDir),
      env: options.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    current.child = child;
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    let exited: string | undefined;
    child.once('error', (error) => (exited = error.message));
    child.once('exit', (code, signal) => {
      exited = `exited with ${signal ?? `code ${code}`}`;
      logger.info('VS Code server exited', { code, signal });
      if (running === current) running = undefined;
    });
    const deadline = Date.now() + startTimeoutMs;
    while (Date.now() < deadline) {
      if (exited) throw new VscodeStartError(display, exited, output);
      if (await answers(port)) return port;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new VscodeStartError(display, `no answer on port ${port} within ${startTimeoutMs} ms`, output);
  }

  // The gateway's proof of passage stops at the agent: VS Code and its extensions never see it.
  const GATEWAY_ONLY_HEADERS = [ROUTE_SECRET_HEADER];

  // Launched on the first IDE request, not at agent start: on a first start the workspace is only cloned later.

  return {
    handleRequest(req, res) {
      const current = start();
      if (!current) return explain(res, lastError);
      current.ready.then(
        (port) =>
          proxyHttp(nodeClient(req, res), {
            target: new URL(`http://127.0.0.1:${port}`),
            path: req.url ?? '/',
            headers: endToEndHeaders(req.rawHeaders, GATEWAY_ONLY_HEADERS),
            timeoutMs: 60_000,
            pool,
            onError: (error) => explain(res, error),
          }),
        (error: Error) => explain(res, error),
      );
    },
    handleUpgrade(req, socket, head) {
      const current = start();
      const refuse = (error: Error | undefined) =>
        writeRawResponse(socket, 503, 'text/plain; charset=utf-8', error?.message ?? 'VS Code is not available');
      if (!current) return refuse(lastError);
      current.ready.then(
        (port) =>
          proxyUpgrade(socket, head, {
            method: req.method ?? 'GET',
            protocol: req.headers.upgrade ?? 'websocket',
            target: new URL(`http://127.0.0.1:${port}`),
            path: req.url ?? '/',
            headers: endToEndHeaders(req.rawHeaders, GATEWAY_ONLY_HEADERS),
            timeoutMs: 60_000,
            onError: refuse,
          }),
        refuse,
      );
    },
    close() {
      process.off('exit', killOnExit);
      pool.destroy();
      killGroup(running?.child);
      running = undefined;
    },
  };

  function explain(res: ServerResponse, error: Error | undefined): void {
    const terminal = options.terminalPath ?? 'terminal/';
    const details = error instanceof VscodeStartError && error.output ? `<pre>${escapeHtml(error.output)}</pre>` : '';
    const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>VS Code is not available</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 50rem; margin: 3rem auto">
<h1>VS Code is not available on this gitspace</h1>
<p>${escapeHtml(error?.message ?? 'the VS Code server is not running')}.</p>
<p>Install <code>code-server</code> or <code>openvscode-server</code> on the machine image, or set
<code>GITSPACE_VSCODE_COMMAND</code> for the agent (a command with <code>{port}</code> and <code>{workspace}</code>).</p>
<p>Meanwhile, <a href="${terminal}">a browser terminal</a> is available in the workspace.</p>${details}
</body></html>`;
    if (res.headersSent) return void res.destroy();
    res.writeHead(503, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(body);
  }
}

interface ResolvedCommand {
  file: string;
  /** Arguments with `{port}` and `{workspace}` still in them. */
  template: readonly string[];
}

/** Finds the command to run, or returns the reason there is none. */
function resolveCommand(options: VscodeIdeOptions): ResolvedCommand | VscodeNotInstalledError {
  if (options.command?.trim()) {
    const [file, ...template] = options.command.trim().split(/\s+/);
    return { file: file!, template };
  }
  for (const known of KNOWN_VSCODE_SERVERS) {
    const file = findExecutable(known.executable, options.searchPath);
    if (file) return { file, template: known.args };
  }
  return new VscodeNotInstalledError(KNOWN_VSCODE_SERVERS.map((known) => known.executable));
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 2000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

function killGroup(child: ChildProcess | undefined): void {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    child.kill('SIGTERM');
  }
}
