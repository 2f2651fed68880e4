import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../common/logger';
import { freeLoopbackPort } from '../common/net';
import { connectClient, localTemporal, type TemporalConnection } from '../common/temporal-connection';
import { SEARCH_ATTRIBUTE_NAMES } from './search-attributes';
import { startUiGuard, type UiGuard } from './ui-guard';

export interface DevServerOptions {
  cliPath: string;
  host: string;
  port: number;
  /** Web UI port; omitted means headless. */
  uiPort?: number;
  /** The Web UI's remote codec endpoint (the codec server), so it can show decrypted payloads to those allowed. */
  uiCodecEndpoint?: string;
  /**
   * The Web UI's write actions (terminate, cancel, signal, reset, start, batch…); off unless true. Off, the UI listens
   * on an inner loopback port behind a guard on `uiPort` (engine/ui-guard.ts): the dev server has no setting for it.
   */
  uiWriteActions?: boolean;
  /** SQLite file that keeps every workflow across restarts; omitted means in memory. */
  dbFile?: string;
  namespace: string;
  logger: Logger;
  /** Where the server's own output goes; defaults to the logger at debug level. */
  onOutput?: (line: string) => void;
  readyTimeoutMs?: number;
}

export interface DevServer {
  address: string;
  /** How clients and workers reach it: plaintext on loopback (the dev server has no TLS of its own). */
  connection: TemporalConnection;
  uiUrl?: string;
  /** Whether the Web UI's write actions are on (see `DevServerOptions.uiWriteActions`). */
  uiWriteActions?: boolean;
  process: ChildProcess;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process has exited. */
  stop(): Promise<void>;
}

/** Thrown when the dev server exited or did not answer before the deadline; carries its last output. */
export class DevServerStartError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(`${message}\n${output.trim()}`);
    this.name = 'DevServerStartError';
  }
}

/**
 * Starts `temporal server start-dev` with the gitspace search attributes registered and waits until the namespace
 * answers with them. The server runs in its own process group so it can be stopped by id, with its children.
 */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const args = [
    'server',
    'start-dev',
    '--ip',
    options.host,
    '--port',
    String(options.port),
    '--namespace',
    options.namespace,
  ];
  args.push('--log-level', 'warn');
  const guarded = options.uiPort !== undefined && options.uiWriteActions !== true;
  // With the write actions off, the UI server itself gets an inner port and the guard takes the public one.
  const innerUiPort = guarded ? await freeLoopbackPort() : options.uiPort;
  if (innerUiPort === undefined) args.push('--headless');
  else {
    args.push('--ui-ip', options.host, '--ui-port', String(innerUiPort));
    if (options.uiCodecEndpoint) args.push('--ui-codec-endpoint', options.uiCodecEndpoint);
    // The UI would otherwise fetch a news feed from the internet in every operator's browser.
    args.push('--ui-disable-news-fetch');
  }
  if (options.dbFile) {
    await mkdir(path.dirname(options.dbFile), { recursive: true, mode: 0o700 });
    args.push('--db-filename', options.dbFile);
  }
  for (const name of SEARCH_ATTRIBUTE_NAMES) args.push('--search-attribute', `${name}=Keyword`);

  const child = spawn(options.cliPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let recent = '';
  const onOutput = options.onOutput ?? ((line: string) => options.logger.debug(line));
  const collect = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    recent = (recent + text).slice(-4000);
    for (const line of text.split('\n')) if (line.trim()) onOutput(line);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const address = `${options.host}:${options.port}`;
  let guard: UiGuard | undefined;
  const stop = async () => {
    await guard?.close();
    if (child.exitCode !== null || child.signalCode !== null) return;
    signalGroup(child, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  try {
    if (guarded) guard = await startUiGuard({ host: options.host, port: options.uiPort!, upstreamPort: innerUiPort! });
    await waitUntilReady(localTemporal(address, options.namespace), options.readyTimeoutMs ?? 60_000, () =>
      child.exitCode !== null ? `the dev server exited with code ${child.exitCode}` : undefined,
    );
  } catch (error) {
    await stop();
    throw new DevServerStartError(error instanceof Error ? error.message : String(error), recent);
  }
  const uiUrl = options.uiPort === undefined ? undefined : `http://${options.host}:${options.uiPort}`;
  const uiWriteActions = options.uiPort === undefined ? undefined : !guarded;
  options.logger.info('Temporal dev server ready', { address, uiUrl, uiWriteActions, dbFile: options.dbFile });
  return {
    address,
    connection: localTemporal(address, options.namespace),
    uiUrl,
    ...(uiWriteActions === undefined ? {} : { uiWriteActions }),
    process: child,
    stop,
  };
}

async function waitUntilReady(
  server: TemporalConnection,
  timeoutMs: number,
  exitReason: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no answer yet';
  while (Date.now() < deadline) {
    const exited = exitReason();
    if (exited) throw new Error(exited);
    try {
      const connection = await connectClient(server, { connectTimeout: 1000 });
      try {
        const { customAttributes } = await connection.operatorService.listSearchAttributes({
          namespace: server.namespace,
        });
        const missing = SEARCH_ATTRIBUTE_NAMES.filter((name) => !customAttributes?.[name]);
        if (missing.length === 0) return;
        lastError = `search attributes not registered yet: ${missing.join(', ')}`;
      } finally {
        await connection.close();
      }
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `the Temporal dev server at ${server.address} did not become ready within ${timeoutMs} ms: ${lastError}`,
  );
}

/** Signals the whole process group the child leads (it was spawned detached). */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}
