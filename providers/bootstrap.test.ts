import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { arch as hostArch, networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { CODE_SERVER } from '../agent/ide/code-server';
import {
  AWS_DATA_DISK_DEVICES,
  GCP_DATA_DISK_DEVICES,
  PACKAGES_BEGIN,
  PACKAGES_END,
  NODE_INSTALL_BEGIN,
  NODE_INSTALL_END,
  agentInstallConfigSchema,
  agentSecretIn,
  renderAwsUserData,
  renderBootstrapScript,
} from './bootstrap';
import { NODE_DIST_URL, NODE_RUNTIME, nodeTarballName, type NodeArch } from './node-runtime';

const AGENT_SHA256 = 'a'.repeat(64);

const input = {
  gitspaceId: 'gs-k3v9x2m7q1wz',
  bootstrap: { agentSecret: 'agent-secret-0123456789', ide: 'vscode-web' as const },
  agent: {
    packageUrl: 'https://artifacts.example.internal/gitspaces-agent-0.1.0-linux-x64.tar.gz',
    packageSha256: AGENT_SHA256,
  },
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
    expect(script).toContain(
      `install_agent 'https://artifacts.example.internal/gitspaces-agent-0.1.0-linux-x64.tar.gz' ${AGENT_SHA256}`,
    );
    // The agent runs on the pinned Node.js the script installs, never on whatever node the image has.
    expect(script).toContain('ExecStart=/opt/gitspaces/node/bin/node /opt/gitspaces/agent/dist/agent/main.js');
    expect(script).not.toMatch(/npm install[^\n]*gitspaces|\/usr\/bin\/env node|apt-get install[^\n]*nodejs/);
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
    expect(script).not.toMatch(/^install_agent /m);
    expect(script).toContain('no agent package configured (config.agent.packageUrl) and none on the image');
  });

  it('never installs or starts an SSH server, for any IDE: SSH goes through the gateway only', () => {
    for (const ide of ['ssh', 'terminal', 'vscode-web'] as const) {
      const script = renderBootstrapScript({ ...input, bootstrap: { ...input.bootstrap, ide } });
      // An sshd on port 22 would be a second door into the machine, past the gateway and its tokens.
      expect([ide, script]).not.toEqual([ide, expect.stringMatching(/install[^\n]*\bopenssh-server\b/)]);
      expect([ide, script]).not.toEqual([ide, expect.stringMatching(/systemctl[^\n]*\bsshd?\b/)]);
    }
  });

  it('validates the agent install config with field paths', () => {
    const paths = (value: unknown) =>
      agentInstallConfigSchema
        .safeParse(value)
        .error?.issues.map((i) => i.path.join('.'))
        .sort();
    expect(paths({ packageUrl: 'ftp://x', extra: 1 })).toEqual(['', 'packageSha256', 'packageUrl']);
    // The checksum goes with the URL: a machine never runs a package nobody pinned.
    expect(paths({ packageUrl: 'https://x.example/agent.tar.gz' })).toEqual(['packageSha256']);
    expect(paths({ packageSha256: AGENT_SHA256 })).toEqual(['packageUrl']);
    expect(paths({ packageUrl: 'https://x.example/a.tar.gz', packageSha256: 'ABC' })).toEqual(['packageSha256']);
    expect(paths({ nodeDistUrl: 'file:///srv/node' })).toEqual(['nodeDistUrl']);
    // The Node.js install is pinned: no free-form command replaces it.
    expect(paths({ nodeInstallCommand: 'apt-get install -y nodejs' })).toEqual(['']);
    expect(paths({ ...input.agent, nodeDistUrl: 'https://mirror.example/node' })).toBeUndefined();
  });
});

describe('the IDE and package installs, run against stand-in package managers', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'gitspaces-packages-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /**
   * Runs the script's package part for `ide` with only the given stand-ins on the PATH (each logs its arguments, and
   * npm the nodedir it was given), on a machine without sftp-server. Returns the log and the script's stderr.
   */
  const runPackages = (ide: 'ssh' | 'terminal' | 'vscode-web', tools: string[], codeServerVersion?: string) => {
    const bin = mkdtempSync(path.join(work, 'bin-'));
    const log = path.join(bin, 'calls.log');
    for (const tool of tools) {
      writeFileSync(
        path.join(bin, tool),
        `#!/bin/bash\necho "${tool} $* \${npm_config_nodedir:+(nodedir=$npm_config_nodedir)}" >> ${log}\n`,
        { mode: 0o755 },
      );
    }
    if (codeServerVersion) {
      writeFileSync(path.join(bin, 'code-server'), `#!/bin/bash\necho "${codeServerVersion} abc123 with Code 1.0"\n`, {
        mode: 0o755,
      });
    }
    for (const tool of ['head', 'cut'])
      execFileSync('ln', ['-s', execFileSync('which', [tool]).toString().trim(), bin]);
    const script = renderBootstrapScript({ ...input, bootstrap: { ...input.bootstrap, ide } });
    const part = script.slice(script.indexOf(PACKAGES_BEGIN), script.indexOf(PACKAGES_END));
    const noSftp = part.replace(/for candidate in [^;]*;/, `for candidate in ${bin}/no-sftp-server;`);
    expect(noSftp).not.toBe(part);
    const run = spawnSync('/bin/bash', ['-c', `set -euo pipefail\n${noSftp}`], {
      env: { PATH: bin },
      encoding: 'utf8',
    });
    expect([run.status, run.error]).toEqual([0, undefined]);
    return {
      calls: existsSync(log)
        ? readFileSync(log, 'utf8')
            .trim()
            .split('\n')
            .map((l) => l.trim())
        : [],
      stderr: run.stderr,
    };
  };

  it('pins code-server to the release that runs on the Node.js major the agent is pinned to', () => {
    expect(CODE_SERVER.version).toBe('4.117.0');
    // CODE_SERVER.nodeMajor is the major of code-server 4.117.0's engines.node (its package.json says "22").
    expect(Number(NODE_RUNTIME.version.split('.')[0])).toBe(CODE_SERVER.nodeMajor);
  });

  it('vscode-web on apt: build tools, then the pinned code-server built against the installed Node.js', () => {
    const { calls } = runPackages('vscode-web', ['apt-get', 'npm']);
    expect(calls).toEqual([
      'apt-get update -q',
      'apt-get install -y -q --no-install-recommends openssh-sftp-server',
      'apt-get install -y -q --no-install-recommends python3 make g++ pkg-config libkrb5-dev',
      'npm install -g --no-audit --no-fund code-server@4.117.0 (nodedir=/opt/gitspaces/node)',
    ]);
  });

  it('vscode-web on dnf, with the pinned code-server already there: nothing to build', () => {
    const { calls } = runPackages('vscode-web', ['dnf', 'npm'], '4.117.0');
    expect(calls).toEqual([]);
    const older = runPackages('vscode-web', ['dnf', 'npm'], '4.116.0');
    expect(older.calls).toEqual([
      'dnf install -y --setopt=install_weak_deps=False python3 make gcc-c++ pkgconfig krb5-devel',
      'npm install -g --no-audit --no-fund code-server@4.117.0 (nodedir=/opt/gitspaces/node)',
    ]);
  });

  it('ssh and terminal get sftp-server alone, never an SSH server, even where it comes only with one', () => {
    for (const ide of ['ssh', 'terminal'] as const) {
      expect(runPackages(ide, ['apt-get', 'npm']).calls).toEqual([
        'apt-get update -q',
        'apt-get install -y -q --no-install-recommends openssh-sftp-server',
      ]);
      // dnf has sftp-server only in openssh-server: the machine goes without, and says so.
      const dnf = runPackages(ide, ['dnf', 'npm']);
      expect(dnf.calls).toEqual([]);
      expect(dnf.stderr).toContain('scp and sftp will not work');
    }
  });
});

/** The official tarball's layout, with a stand-in `bin/node` that answers --version as the pinned release does. */
function fakeNodeTarball(dir: string, arch: NodeArch, answer: string): Buffer {
  const root = path.join(dir, `node-v${NODE_RUNTIME.version}-linux-${arch}`);
  mkdirSync(path.join(root, 'bin'), { recursive: true });
  writeFileSync(path.join(root, 'bin', 'node'), `#!/bin/sh\necho ${answer}\n`, { mode: 0o755 });
  const file = path.join(dir, nodeTarballName(arch));
  execFileSync('tar', ['-cJf', file, '-C', dir, path.basename(root)]);
  rmSync(root, { recursive: true });
  return readFileSync(file);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const haveBwrap = spawnSync('bwrap', ['--dev-bind', '/', '/', 'true']).status === 0;
const arch = ({ x64: 'x64', arm64: 'arm64' } as Record<string, NodeArch>)[hostArch()];

/**
 * The Node.js install part of a rendered script, run for real: in a bubblewrap sandbox whose /opt is a temp dir (the
 * script writes /opt/gitspaces), downloading from an HTTP server on loopback that serves a tarball in the official
 * layout. Only the pinned checksum is swapped for the test tarball's, as the official tarball is not at hand offline.
 */
(haveBwrap && arch ? describe : describe.skip)('the pinned Node.js install, run', () => {
  let server: Server;
  let distUrl: string;
  let served: Buffer;
  const requests: string[] = [];
  const work = mkdtempSync(path.join(tmpdir(), 'gitspaces-node-install-'));
  const good = fakeNodeTarball(path.join(work, 'good'), arch!, `v${NODE_RUNTIME.version}`);
  const tampered = fakeNodeTarball(path.join(work, 'tampered'), arch!, `v${NODE_RUNTIME.version} `);
  const pinned = NODE_RUNTIME.arches[arch!].tarballSha256;

  beforeAll(async () => {
    server = createServer((request, response) => {
      requests.push(request.url!);
      if (request.url === `/dist/v${NODE_RUNTIME.version}/${nodeTarballName(arch!)}`) response.end(served);
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    distUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dist/`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(work, { recursive: true, force: true });
  });

  /** The script's install part, with the pinned checksum of this machine's arch replaced by `sha`. */
  const installPart = (sha: string) => {
    const script = renderBootstrapScript({ ...input, agent: { ...input.agent, nodeDistUrl: distUrl } });
    const part = script.slice(script.indexOf(NODE_INSTALL_BEGIN), script.indexOf(NODE_INSTALL_END));
    expect(part).toContain(`sha=${pinned} ;;`);
    return `set -euo pipefail\n${part.replace(`sha=${pinned} ;;`, `sha=${sha} ;;`)}\ninstall_node\n`;
  };
  // Asynchronous: the HTTP server answering the script's curl runs in this process.
  const runInSandbox = (opt: string, command: string) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('bwrap', ['--dev-bind', '/', '/', '--bind', opt, '/opt', 'bash', '-c', command]);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });

  it('installs the pinned release when the checksum matches, and skips it once it is there', async () => {
    const opt = mkdtempSync(path.join(work, 'opt-'));
    served = good;
    const run = await runInSandbox(opt, installPart(sha256(good)));
    expect([run.status, run.stderr]).toEqual([0, '']);
    const name = `node-v${NODE_RUNTIME.version}-linux-${arch}`;
    expect(requests.splice(0)).toEqual([`/dist/v${NODE_RUNTIME.version}/${name}.tar.xz`]);
    expect(readdirSync(path.join(opt, 'gitspaces')).sort()).toEqual(['node', name]);
    const version = await runInSandbox(opt, '/opt/gitspaces/node/bin/node --version');
    expect(version.stdout.trim()).toBe(`v${NODE_RUNTIME.version}`);

    // On the next boot the right Node.js is there: nothing is downloaded.
    const again = await runInSandbox(opt, installPart(sha256(good)));
    expect(again.status).toBe(0);
    expect(requests.splice(0)).toEqual([]);
  });

  it('refuses a tarball whose checksum is not the pinned one and installs nothing', async () => {
    const opt = mkdtempSync(path.join(work, 'opt-'));
    served = tampered;
    const run = await runInSandbox(opt, installPart(sha256(good)));
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('does not have its pinned SHA-256');
    expect(requests.splice(0)).toHaveLength(1);
    expect(existsSync(path.join(opt, 'gitspaces')) ? readdirSync(path.join(opt, 'gitspaces')) : []).toEqual([]);
  });

  it('pins the official tarball of each arch, downloaded from the official site by default', () => {
    const script = renderBootstrapScript(input);
    expect(script).toContain(`base='${NODE_DIST_URL}'`);
    for (const pin of Object.values(NODE_RUNTIME.arches)) expect(script).toContain(`sha=${pin.tarballSha256} ;;`);
    expect(NODE_RUNTIME.version).toMatch(/^22\./);
  });
});
