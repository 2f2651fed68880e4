import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { signalGroup } from '../engine/dev-server';
import { PROJECT_ROOT } from '../engine/temporal-cli';
import { embeddedTemporalEnv } from '../common/temporal-connection';

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

/**
 * The environment of an API, a runner and a gateway started as processes on loopback against one dev server (chaos,
 * benchmarks): each part's ports, its view of the others, and the shared data dir; `extra` adds a script's own.
 */
export function loopbackStackEnv(options: {
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
