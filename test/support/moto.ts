import { spawn, type ChildProcess } from 'node:child_process';
import { freeLoopbackPort } from '../../common/net';

/** A moto server on loopback, started for a test file and stopped by its own process group id. */
export interface MotoServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Forgets every resource moto holds (between tests). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export interface MotoOptions {
  /** Extra environment for moto (for example `MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION`). */
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

/**
 * Starts `python3 -m moto.server` on 127.0.0.1 with a free port and waits until it answers. moto is a test
 * requirement (requirements-test.txt); nothing is downloaded here.
 */
export async function startMoto(options: MotoOptions = {}): Promise<MotoServer> {
  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    // Its own process group, so stop() can end moto and anything it forked by pid, never by name.
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto exited with code ${child.exitCode}: ${stderr}`);
    if (await answers(`${url}/moto-api/`)) break;
    if (Date.now() > deadline) {
      killGroup(child);
      throw new Error(`moto did not answer on ${url} in time: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return {
    url,
    port,
    reset: async () => {
      const response = await fetch(`${url}/moto-api/reset`, { method: 'POST' });
      if (!response.ok) throw new Error(`moto reset answered ${response.status}`);
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(child);
        await exited;
      }
    },
  };
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await response.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    // Already gone.
  }
}
