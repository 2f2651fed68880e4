import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface EntryProcess {
  /** The rest of the line after the marker (a URL, or JSON). */
  line: string;
  stop(): Promise<void>;
}

/**
 * Starts a TypeScript entry point of test/support with tsx, in its own process group (ES modules such as
 * openid-client and oidc-provider load there as they do in production), and waits for its `<marker> <rest>` line.
 */
export async function startEntryProcess(
  script: string,
  env: Record<string, string>,
  marker: string,
  timeoutMs = 60_000,
): Promise<EntryProcess> {
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const child: ChildProcess = spawn(process.execPath, ['--import', tsx, path.join(__dirname, script)], {
    env: { ...process.env, NODE_OPTIONS: '', GITSPACES_LOG_LEVEL: 'warn', GITSPACES_LOG_FORMAT: 'json', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const deadline = Date.now() + timeoutMs;
  let line: string | undefined;
  while (!(line = new RegExp(`${marker} (.+)`).exec(output)?.[1])) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${script} did not start:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    line,
    async stop() {
      if (child.exitCode !== null || !child.pid) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(-child.pid, 'SIGTERM');
      // The stack's own shutdown (machines, runner, Temporal) takes a while; a hung one is killed.
      const killed = setTimeout(() => child.pid && process.kill(-child.pid, 'SIGKILL'), 30_000);
      await exited;
      clearTimeout(killed);
    },
  };
}
