import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import {
  AWS_DATA_DISK_DEVICES,
  GCP_DATA_DISK_DEVICES,
  agentInstallConfigSchema,
  agentSecretIn,
  renderAwsUserData,
  renderBootstrapScript,
} from './bootstrap';

const input = {
  gitspaceId: 'gs-k3v9x2m7q1wz',
  bootstrap: { agentSecret: 'agent-secret-0123456789', ide: 'vscode-web' as const },
  agent: { packageUrl: 'https://artifacts.example.internal/gitspaces-0.1.0.tgz' },
  dataDiskDevices: GCP_DATA_DISK_DEVICES,
};

describe('bootstrap script', () => {
  it('starts the agent with the environment it reads, listening on the private network', () => {
    const script = renderBootstrapScript(input);
    for (const line of [
      'GITSPACE_ID=gs-k3v9x2m7q1wz',
      'GITSPACE_WORKSPACE_DIR=/mnt/gitspace-data/workspace',
      'GITSPACE_IDE=vscode-web',
      'GITSPACE_AGENT_PORT=8089',
    ]) {
      expect(script).toContain(`\n${line}\n`);
    }
    expect(script).toContain("'/dev/disk/by-id/google-gitspace-data'");
    expect(script).toContain("'https://artifacts.example.internal/gitspaces-0.1.0.tgz'");
    expect(script).toContain('systemctl restart gitspaces-agent.service');
    expect(agentSecretIn(script)).toBe('agent-secret-0123456789');
    // The secret is a systemd credential (a file the agent reads), never part of the agent's environment.
    expect(script).not.toMatch(/^GITSPACE_AGENT_SECRET=/m);
    expect(script).toContain('LoadCredential=agent-secret:/etc/gitspaces/agent-secret');
    expect(script).toContain('Environment=GITSPACE_AGENT_SECRET_FILE=%d/agent-secret');
  });

  it('makes the agent listen on the private address only, never on every interface', () => {
    const script = renderBootstrapScript(input);
    expect(script).not.toMatch(/0\.0\.0\.0/);
    expect(script).toContain('echo "GITSPACE_AGENT_HOST=$private_address" >> /etc/gitspaces/agent.env');
    // The address the script picks, run on this machine: one of its own global (non-loopback) IPv4 addresses.
    const pick = /^private_address=.*$/m.exec(script)![0];
    const picked = execFileSync('bash', ['-c', `${pick}; echo "$private_address"`], { encoding: 'utf8' }).trim();
    const own = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a && a.family === 'IPv4' && !a.internal)
      .map((a) => a!.address);
    expect(own).toContain(picked);
  });

  it('is valid bash, also wrapped as AWS user data', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gitspaces-bootstrap-'));
    const file = path.join(dir, 'script.sh');
    const script = renderBootstrapScript({ ...input, dataDiskDevices: AWS_DATA_DISK_DEVICES });
    writeFileSync(file, script);
    expect(() => execFileSync('bash', ['-n', file], { stdio: 'pipe' })).not.toThrow();

    const userData = renderAwsUserData(script);
    expect(userData).toContain('[scripts-user, always]');
    expect(userData).toContain(script);
  });

  it('never carries a repository token, because the renderer has no way to take one', () => {
    // The runner hands the token to the agent after boot; the rendered text must not contain it even by accident.
    const token = 'ghp_repositoryTokenThatMustNotLeak';
    const withExtras = { ...input, repository: { url: 'https://git.example/r.git', token } } as typeof input;
    const script = renderBootstrapScript(withExtras);
    expect(script).not.toContain(token);
    expect(renderAwsUserData(script)).not.toContain(token);
    expect(script).not.toMatch(/token/i);
  });

  it('refuses values that could break out of the script', () => {
    expect(() => renderBootstrapScript({ ...input, gitspaceId: 'x; rm -rf /' })).toThrow(/gitspace id/);
    expect(() =>
      renderBootstrapScript({ ...input, bootstrap: { ...input.bootstrap, agentSecret: "a'\nEVIL=1" } }),
    ).toThrow(/agent secret/);
  });

  it('fails without an agent package unless the image carries one', () => {
    const script = renderBootstrapScript({ ...input, agent: {} });
    expect(script).toContain('no agent package URL configured');
  });

  it('validates the agent install config with field paths', () => {
    const result = agentInstallConfigSchema.safeParse({ packageUrl: 'ftp://x', extra: 1 });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.path.join('.')).sort()).toEqual(['', 'packageUrl']);
  });
});
