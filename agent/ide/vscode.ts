import { escapeHtml } from '../../common/html';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
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
import { CODE_SERVER } from './code-server';

const CODE_SERVER_EXECUTABLE = 'code-server';

/**
 * The `vscode-web` IDE: the agent launches code-server or openvscode-server on a private loopback port and proxies
 * every IDE request to it. A start waits for it (`ready()`), so a gitspace whose VS Code cannot run fails its start
 * with the reason instead of showing `running`; should it stop later, its page says why.
 *
 * The command is a template: `{port}` and `{workspace}` are replaced in each argument (no shell is involved, so a
 * workspace path with spaces stays one argument).
 */

/** Default command templates, tried in this order when no command is configured. */
export const KNOWN_VSCODE_SERVERS = [
  {
    executable: CODE_SERVER_EXECUTABLE,
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
  /** How long the server may take to pass its health check (default 60 s). */
  startTimeoutMs?: number;
  /** Where the fallback terminal is, relative to the IDE root, shown on the explanation page. */
  terminalPath?: string;
}

export interface VscodeIde {
  /**
   * Starts the server unless it runs, and resolves once it is healthy: code-server's `GET /healthz` answers its own
   * health JSON; another server answers any HTTP request. Rejects with VscodeNotInstalledError or VscodeStartError.
   */
  ready(): Promise<void>;
  handleRequest(req: IncomingMessage, res: ServerResponse): void;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Stops the server process (its whole process group). */
  close(): void;
}

/** Thrown when the configured VS Code server command, or any of the known ones, is not installed. */
export class VscodeNotInstalledError extends Error {
  constructor(readonly searched: string[]) {
    super(`no VS Code server is installed on this machine (looked for ${searched.join(' and ')} on the PATH)`);
    this.name = 'VscodeNotInstalledError';
  }
}

/** Thrown when the VS Code server exited before it was healthy, or was not healthy in time. */
export class VscodeStartError extends Error {
  constructor(
    readonly command: string,
    readonly reason: string,
    readonly output: string,
  ) {
    const tail = outputTail(output);
    super(`the VS Code server (${command}) did not start: ${reason}${tail ? `; its last output: ${tail}` : ''}`);
    this.name = 'VscodeStartError';
  }
}

/** What to do about either error, for the member who asked for `vscode-web` and the operator who can fix it. */
export const VSCODE_REMEDY =
  `install code-server ${CODE_SERVER.version} (\`npm install -g code-server@${CODE_SERVER.version}\` with ` +
  `Node.js ${CODE_SERVER.nodeMajor}) or openvscode-server on the machine image, set ` +
  'config.agent.vscodeInstallCommand (GITSPACES_LOCAL_VSCODE_COMMAND for a local runner), or use `--ide terminal`';

/** The last lines of a server's output, short enough for an error message. */
function outputTail(output: string): string {
  const lines = output.trim().split('\n').slice(-3).join(' | ');
  return lines.length > 500 ? `…${lines.slice(-500)}` : lines;
}

interface Running {
  child?: ChildProcess;
  /** Resolves with the server's port once it is healthy. */
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
    let answer = 'no answer';
    while (Date.now() < deadline) {
      if (exited) throw new VscodeStartError(display, exited, output);
      answer = await checkHealth(port, resolved.health);
      if (answer === HEALTHY) return port;
      await new Promise((r) => setTimeout(r, 200));
    }
    const what = resolved.health === 'code-server' ? 'not healthy (GET /healthz)' : 'no HTTP answer';
    throw new VscodeStartError(display, `${what} within ${startTimeoutMs} ms (last: ${answer})`, output);
  }

  // The gateway's proof of passage stops at the agent: VS Code and its extensions never see it.
  const GATEWAY_ONLY_HEADERS = [ROUTE_SECRET_HEADER];

  // Launched by the start's ready() (after the clone) or the first IDE request, never at agent start: on a first start
  // the workspace is only cloned later.

  return {
    async ready() {
      const current = start();
      if (!current) throw lastError ?? new VscodeNotInstalledError([]);
      await current.ready;
    },
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
<p>To fix it: ${escapeHtml(VSCODE_REMEDY)}. An agent can also be given <code>GITSPACE_VSCODE_COMMAND</code> (a command
with <code>{port}</code> and <code>{workspace}</code>).</p>
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
  /** code-server has a health route; any other server is healthy once it answers HTTP. */
  health: 'code-server' | 'http';
}

/** Finds the command to run, or returns the reason there is none. */
function resolveCommand(options: VscodeIdeOptions): ResolvedCommand | VscodeNotInstalledError {
  const healthOf = (file: string) => (path.basename(file) === CODE_SERVER_EXECUTABLE ? 'code-server' : 'http');
  if (options.command?.trim()) {
    const [name, ...template] = options.command.trim().split(/\s+/) as [string, ...string[]];
    const file = name.includes('/')
      ? isExecutable(name)
        ? name
        : undefined
      : findExecutable(name, options.searchPath);
    if (!file) return new VscodeNotInstalledError([name]);
    return { file, template, health: healthOf(file) };
  }
  for (const known of KNOWN_VSCODE_SERVERS) {
    const file = findExecutable(known.executable, options.searchPath);
    if (file) return { file, template: known.args, health: healthOf(file) };
  }
  return new VscodeNotInstalledError(KNOWN_VSCODE_SERVERS.map((known) => known.executable));
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const HEALTHY = 'healthy';

/**
 * One health check; answers HEALTHY or what was seen instead. code-server's `/healthz` says `alive` or `expired`:
 * both mean it serves. `expired` is only "nobody used it for a minute", and a fresh server says it until its first
 * page request, as the health check itself does not count as use.
 */
function checkHealth(port: number, kind: ResolvedCommand['health']): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: kind === 'code-server' ? '/healthz' : '/', timeout: 2000 },
      (res) => {
        if (kind === 'http') {
          res.resume();
          return resolve(HEALTHY);
        }
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < 4096) body += chunk;
        });
        res.on('error', () => resolve('a broken answer'));
        res.on('end', () => {
          let status: unknown;
          try {
            status = (JSON.parse(body) as { status?: unknown }).status;
          } catch {
            // Not JSON: not code-server's health route.
          }
          const healthy = res.statusCode === 200 && (status === 'alive' || status === 'expired');
          resolve(
            healthy ? HEALTHY : `HTTP ${res.statusCode}${typeof status === 'string' ? ` status '${status}'` : ''}`,
          );
        });
      },
    );
    req.on('error', (error) => resolve(error.message));
    req.on('timeout', () => {
      req.destroy();
      resolve('timed out');
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
