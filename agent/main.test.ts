import { spawnSync } from 'node:child_process';
import path from 'node:path';

const AGENT_MAIN = path.join(__dirname, 'main.ts');

/** Runs the agent's real entry point with the given environment only; returns its exit code and error output. */
function runAgent(env: Record<string, string>): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', AGENT_MAIN], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stderr: result.stderr };
}

describe('the agent entry point', () => {
  it('reports an unreadable secret together with every other configuration problem, and does not start', () => {
    const { status, stderr } = runAgent({
      GITSPACE_AGENT_SECRET_FILE: '/nonexistent/agent-secret',
      GITSPACE_AGENT_PORT: 'not-a-port',
    });
    expect(status).toBe(2);
    expect(stderr).toMatch(/GITSPACE_AGENT_SECRET_FILE: the agent secret cannot be read/);
    expect(stderr).toMatch(/GITSPACE_ID is required/);
    expect(stderr).toMatch(/GITSPACE_AGENT_PORT must be a TCP port/);
  });

  it('never takes the secret from the environment', () => {
    const { status, stderr } = runAgent({
      GITSPACE_ID: 'gs-env',
      GITSPACE_WORKSPACE_DIR: '/tmp/gs-env',
      GITSPACE_AGENT_SECRET: 'in-the-environment',
    });
    expect(status).toBe(2);
    expect(stderr).toMatch(/the agent secret is required/);
  });
});
