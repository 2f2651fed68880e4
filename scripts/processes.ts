import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from '../common/logger';
import { freeLoopbackPorts } from '../common/net';
import { loadPayloadKeyRing } from '../common/payload-codec';
import { signalGroup, startDevServer, type DevServer } from '../engine/dev-server';
import { PROJECT_ROOT, findOrBuildTemporalCli } from '../engine/temporal-cli';
import { embeddedTemporalEnv } from '../common/temporal-connection';
import { createLocalProvider, localMachinesRoot } from '../providers/local/provider';

/** One part of the stack in its own process group, so it can be stopped (or killed) with its children. */
export class Part {
  private child?: ChildProcess;
  private stopping = false;
  private restarts = 0;

  constructor(
    readonly name: string,
    readonly entry: string,
    readonly env: NodeJS.ProcessEnv,
    private readonly options: {
      /** Restart when it dies unexpectedly (npm start does; the chaos run restarts parts itself). */
      restartOnExit?: boolean;
      /** Where its output lines go, prefixed with its name. */
      output?: (line: string) => void;
    } = {},
  ) {}

  /** The process id of its current process (the id of its process group too), if it was started. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    this.stopping = false;
    const tsx = pathToFileURL(require.resolve('tsx')).href;
    const child = spawn(process.execPath, ['--import', tsx, path.join(PROJECT_ROOT, this.entry)], {
      env: this.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const output = this.options.output ?? ((line: string) => process.stdout.write(`${line}\n`));
    const forward = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) output(`[${this.name}] ${line}`);
    };
    child.stdout?.on('data', forward);
    child.stderr?.on('data', forward);
    child.once('exit', (code, signal) => {
      if (this.stopping || this.options.restartOnExit === false) return;
      this.restarts++;
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(this.restarts - 1, 5));
      output(`[${this.name}] exited (${signal ?? code}); restarting in ${delay / 1000}s`);
      setTimeout(() => !this.stopping && this.start(), delay).unref();
    });
  }

  /** SIGKILL to the whole process group, as a crash would; resolves once it is gone. */
  async kill(): Promise<void> {
    await this.signalAndWait('SIGKILL');
  }

  /** SIGTERM, then SIGKILL after a grace period. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.signalAndWait('SIGTERM');
  }

  private async signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    signalGroup(child, signal);
    const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Polls a URL until it answers 2xx. */
export async function waitFor(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // Not up yet.
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not answer within ${timeoutMs / 1000}s; see the output above`);
}

/** An API, a runner (of the `local` infrastructure) and a gateway as processes on loopback, with a dev server. */
export interface LoopbackStack {
  dataDir: string;
  /** Where the local provider keeps this stack's machines. */
  machinesRoot: string;
  apiUrl: string;
  gatewayUrl: string;
  gatewayAdminUrl: string;
  parts: { api: Part; runner: Part; gateway: Part };
  /** The dev server; restartTemporal replaces it. */
  readonly temporal: DevServer;
  /** From the parts' start to an API that is ready and a gateway that answers, in ms. */
  partsReadyMs: number;
  /** Starts the dev server again on its port and database (after a kill). */
  restartTemporal(): Promise<void>;
  /** Stops every process it started, removes the machines left and its data. */
  stop(): Promise<void>;
}

/**
 * Starts a LoopbackStack for a script (chaos, benchmarks) in a new data dir, and waits until it serves. `extra` adds
 * the script's own settings; `output` takes the parts' output lines.
 */
export async function startLoopbackStack(options: {
  name: string;
  logger: Logger;
  adminToken: string;
  gatewayAdminToken: string;
  extra?: NodeJS.ProcessEnv;
  output?: (line: string) => void;
  /** The dev server keeps its state in memory, not in a SQLite file (restartTemporal then starts it empty). */
  temporalInMemory?: boolean;
}): Promise<LoopbackStack> {
  const { logger } = options;
  const ports = await freeLoopbackPorts(['api', 'gateway', 'admin', 'temporal']);
  const cliPath = await findOrBuildTemporalCli({
    explicitPath: process.env.TEMPORAL_CLI_PATH,
    searchPath: process.env.PATH,
    logger,
  });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `gitspaces-${options.name}-`));
  const machinesRoot = localMachinesRoot(dataDir);
  const startTemporal = () =>
    startDevServer({
      cliPath,
      host: '127.0.0.1',
      port: ports.temporal,
      namespace: 'default',
      ...(options.temporalInMemory ? {} : { dbFile: path.join(dataDir, 'temporal.sqlite') }),
      logger,
      onOutput: () => undefined,
    });
  let temporal: DevServer | undefined;
  let parts: LoopbackStack['parts'] | undefined;
  const stop = async () => {
    // The runner stops first (its worker finishes its activities), so no start adds a machine after the list.
    await Promise.all(Object.values(parts ?? {}).map((part) => part.stop()));
    // Agents outlive the runner by design: remove every machine left (their agents are ended by their pids).
    const machines = createLocalProvider({ rootDir: machinesRoot, logger });
    const cleanup = { idempotencyKey: `${options.name}-cleanup`, signal: AbortSignal.timeout(120_000) };
    for (const machine of await machines.list(cleanup).catch(() => [])) {
      await machines.delete(machine.gitspaceId, cleanup).catch((error: unknown) => {
        logger.warn('a machine could not be removed', { gitspaceId: machine.gitspaceId, error });
      });
    }
    await temporal?.stop();
    await rm(dataDir, { recursive: true, force: true });
    await rm(machinesRoot, { recursive: true, force: true });
  };
  try {
    temporal = await startTemporal();
    // Written once before the parts start, as npm start does, so they do not race to create it.
    await loadPayloadKeyRing({ dataDir });
    const env = loopbackStackEnv({
      dataDir,
      ports,
      temporalConnection: temporal.connection,
      adminToken: options.adminToken,
      gatewayAdminToken: options.gatewayAdminToken,
      extra: { GITSPACES_INFRASTRUCTURE_ID: 'local', ...options.extra },
    });
    const partOptions = { restartOnExit: false, output: options.output ?? (() => undefined) };
    parts = {
      api: new Part('api', 'api/main.ts', env, partOptions),
      runner: new Part('runner', 'workers/runner-main.ts', env, partOptions),
      gateway: new Part('gateway', 'gateway/main.ts', env, partOptions),
    };
    const started = Date.now();
    for (const part of Object.values(parts)) part.start();
    const apiUrl = `http://127.0.0.1:${ports.api}`;
    const gatewayUrl = `http://127.0.0.1:${ports.gateway}`;
    await waitFor(`${apiUrl}/readyz`, 180_000);
    await waitFor(`${gatewayUrl}/healthz`, 60_000);
    return {
      dataDir,
      machinesRoot,
      apiUrl,
      gatewayUrl,
      gatewayAdminUrl: `http://127.0.0.1:${ports.admin}`,
      parts,
      get temporal() {
        return temporal!;
      },
      partsReadyMs: Date.now() - started,
      async restartTemporal() {
        temporal = await startTemporal();
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * The environment of an API, a runner and a gateway started as processes on loopback against one dev server: each
 * part's ports, its view of the others, and the shared data dir; `extra` adds a script's own.
 */
function loopbackStackEnv(options: {
  dataDir: string;
  ports: { api: number; gateway: number; admin: number };
  temporalConnection: Parameters<typeof embeddedTemporalEnv>[1];
  adminToken: string;
  gatewayAdminToken: string;
  extra?: NodeJS.ProcessEnv;
}): NodeJS.ProcessEnv {
  const { ports } = options;
  return {
    // The parts use this run's dev server in plaintext on loopback, whatever Temporal settings the shell has.
    ...embeddedTemporalEnv(process.env, options.temporalConnection).env,
    GITSPACES_DATA_DIR: options.dataDir,
    GITSPACES_API_PORT: String(ports.api),
    GITSPACES_ADMIN_TOKEN: options.adminToken,
    GITSPACES_PUBLIC_GATEWAY_URL: `http://127.0.0.1:${ports.gateway}`,
    GITSPACES_GATEWAY_PORT: String(ports.gateway),
    GITSPACES_GATEWAY_ADMIN_PORT: String(ports.admin),
    GITSPACES_GATEWAY_ADMIN_URL: `http://127.0.0.1:${ports.admin}`,
    GITSPACES_GATEWAY_ADMIN_TOKEN: options.gatewayAdminToken,
    GITSPACES_JWKS_URL: `http://127.0.0.1:${ports.api}/api/v1/.well-known/jwks.json`,
    ...options.extra,
  };
}
