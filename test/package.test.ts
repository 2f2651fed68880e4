/**
 * The installable packages of `npm run package` (scripts/package.ts), built for real and inspected as an operator's
 * machine would see them: dpkg-deb reads their control data and contents, the gateway, codec server and agent run
 * from the extracted packages on the bundled Node.js on loopback, the maintainer script creates the service user (in a
 * sandbox whose /etc is a copy), and systemd-analyze checks the units. The production node_modules are cached by lock
 * file (~/.cache/gitspaces-packaging): a warm build takes about a minute, a cold one adds `npm ci`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freeLoopbackPort, freeLoopbackPorts } from '../common/net';
import { NODE_RUNTIME } from '../providers/node-runtime';
import {
  ALL_PARTS,
  DEB_PARTS,
  DEV_ONLY_PACKAGES,
  buildPackages,
  type BuiltArtifact,
  type DebPart,
} from '../scripts/package';

const ROOT = path.resolve(__dirname, '..');
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const have = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
const debArch = NODE_RUNTIME.arches[arch].debianArch;

const sh = (command: string, args: string[], options: { input?: string } = {}) => {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
};

(have('dpkg-deb') ? describe : describe.skip)('the release packages (npm run package)', () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'gitspaces-package-test-'));
  const out = path.join(work, 'packages');
  let built: BuiltArtifact[] = [];
  const children: ChildProcess[] = [];
  const debOf = (part: DebPart) => path.join(out, `gitspaces-${part}_${VERSION}_${debArch}.deb`);
  const extracted = (part: DebPart) => {
    const dir = path.join(work, `root-${part}`);
    if (!existsSync(dir)) {
      mkdirSync(dir);
      const result = sh('dpkg-deb', ['-x', debOf(part), dir]);
      if (result.status !== 0) throw new Error(result.stderr);
    }
    return dir;
  };

  beforeAll(() => {
    built = buildPackages({
      parts: ALL_PARTS,
      outDir: out,
      compression: 'zstd',
      cacheDir: process.env.GITSPACES_PACKAGING_CACHE ?? path.join(os.homedir(), '.cache', 'gitspaces-packaging'),
      log: () => {},
    });
  }, 900_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.pid) process.kill(-child.pid, 'SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : 0)));
    rmSync(work, { recursive: true, force: true });
  });

  it('builds one .deb per part and the agent package, listed with their checksums', () => {
    expect(built.map((b) => b.file).sort()).toEqual(
      [
        ...Object.keys(DEB_PARTS).map((part) => `gitspaces-${part}_${VERSION}_${debArch}.deb`),
        `gitspaces-agent-${VERSION}-linux-${arch}.tar.gz`,
      ].sort(),
    );
    const sums = readFileSync(path.join(out, 'SHA256SUMS'), 'utf8');
    for (const artifact of built) {
      const digest = createHash('sha256')
        .update(readFileSync(path.join(out, artifact.file)))
        .digest('hex');
      expect(artifact.sha256).toBe(digest);
      expect(sums).toContain(`${digest}  ${artifact.file}\n`);
    }
    expect(JSON.parse(readFileSync(path.join(out, 'packages.json'), 'utf8'))).toEqual(built);
  });

  it('gitspaces-api.deb carries the dashboard it serves at /, bundled, without source maps', () => {
    const files = sh('dpkg-deb', ['-c', debOf('api')])
      .stdout.trim()
      .split('\n')
      .map((line) => line.split(/\s+/).slice(5).join(' '));
    const web = './usr/lib/gitspaces-api/dist/web/';
    expect(files).toContain(`${web}index.html`);
    expect(files.filter((file) => file.startsWith(`${web}assets/`) && file.endsWith('.js')).length).toBeGreaterThan(0);
    expect(files.filter((file) => file.startsWith(web) && file.endsWith('.map'))).toEqual([]);
  });

  it.each(Object.keys(DEB_PARTS) as DebPart[])(
    'gitspaces-%s.deb: control data, maintainer scripts, the bundled Node.js, the unit; all owned by root',
    (part) => {
      const name = `gitspaces-${part}`;
      const info = sh('dpkg-deb', ['-I', debOf(part)]);
      expect(info.status).toBe(0);
      for (const field of [`Package: ${name}`, `Version: ${VERSION}`, `Architecture: ${debArch}`, 'Depends: passwd'])
        expect(info.stdout).toContain(` ${field}\n`);
      for (const script of ['postinst', 'prerm', 'postrm']) expect(info.stdout).toMatch(new RegExp(` \\* +${script} `));

      const listing = sh('dpkg-deb', ['-c', debOf(part)])
        .stdout.trim()
        .split('\n');
      expect(listing.filter((line) => !line.includes(' root/root '))).toEqual([]);
      const files = listing.map((line) => line.split(/\s+/).slice(5).join(' '));
      const app = `./usr/lib/${name}`;
      for (const file of [
        `${app}/node/bin/node`,
        `${app}/dist/${DEB_PARTS[part].entry}`,
        `${app}/package.json`,
        `${app}/node_modules/node-pty/build/Release/pty.node`,
        `./usr/lib/systemd/system/${name}.service`,
        `./usr/share/doc/${name}/copyright`,
      ])
        expect(files).toContain(file);
      expect(listing.find((line) => line.endsWith(` ${app}/node/bin/node`))).toMatch(/^-rwxr-xr-x /);
    },
  );

  it('holds no development dependency, no tsx and no TypeScript source of ours', () => {
    const dev = new RegExp(`/node_modules/(${DEV_ONLY_PACKAGES.map((p) => p.replace('/', '\\/')).join('|')})/`);
    const paths = (lines: string) =>
      lines
        .trim()
        .split('\n')
        .map((line) => line.split(/\s+/).slice(5).join(' ').replace(/^\.\//, ''));
    const lists: Record<string, string[]> = {};
    for (const part of Object.keys(DEB_PARTS) as DebPart[])
      lists[part] = paths(sh('dpkg-deb', ['-c', debOf(part)]).stdout);
    lists.agent = paths(sh('tar', ['-tvzf', path.join(out, `gitspaces-agent-${VERSION}-linux-${arch}.tar.gz`)]).stdout);
    const ours = /^(usr\/lib\/gitspaces-[a-z-]+|gitspaces-agent-[^/]+)\/dist\//;
    for (const [part, files] of Object.entries(lists)) {
      expect([part, files.length > 1000, files.some((file) => ours.test(file))]).toEqual([part, true, true]);
      expect([part, files.filter((file) => dev.test(file))]).toEqual([part, []]);
      const code = files.filter((file) => ours.test(file)).map((file) => file.replace(ours, ''));
      expect([part, code.filter((file) => /^(test|scripts)\/|(?<!\.d)\.ts$/.test(file))]).toEqual([part, []]);
    }
    // The compiled code does not import tsx either.
    const runner = extracted('runner');
    const grep = sh('grep', ['-rlE', `require\\("tsx`, path.join(runner, 'usr/lib/gitspaces-runner/dist')]);
    expect(grep.stdout).toBe('');
  });

  /** Starts an entry point of an extracted package with its bundled Node.js and waits for GET `url` to answer 200. */
  const startPart = async (dir: string, entry: string, env: Record<string, string>, url: string) => {
    const child = spawn(path.join(dir, 'node', 'bin', 'node'), [path.join(dir, 'dist', entry)], {
      cwd: dir,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH!, HOME: work, NODE_ENV: 'production', ...env },
    });
    children.push(child);
    let log = '';
    child.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const response = await fetch(url).catch(() => undefined);
      if (response?.status === 200) return { child, body: await response.text() };
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`${entry} did not answer ${url} (exit ${child.exitCode}): ${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  it('runs the gateway from its extracted .deb on the bundled Node.js: it answers its health check', async () => {
    const dir = path.join(extracted('gateway'), 'usr/lib/gitspaces-gateway');
    expect(sh(path.join(dir, 'node/bin/node'), ['--version']).stdout.trim()).toBe(`v${NODE_RUNTIME.version}`);
    const { port, admin, jwks } = await freeLoopbackPorts(['port', 'admin', 'jwks']);
    const data = mkdtempSync(path.join(work, 'gateway-data-'));
    const { body } = await startPart(
      dir,
      'gateway/main.js',
      {
        GITSPACES_DATA_DIR: data,
        GITSPACES_GATEWAY_PORT: String(port),
        GITSPACES_GATEWAY_ADMIN_PORT: String(admin),
        GITSPACES_JWKS_URL: `http://127.0.0.1:${jwks}/api/v1/.well-known/jwks.json`,
      },
      `http://127.0.0.1:${port}/healthz`,
    );
    expect(body).toBeTruthy();
    expect((await fetch(`http://127.0.0.1:${admin}/healthz`)).status).toBe(200);
  });

  it('runs the codec server from its extracted .deb: it answers, and refuses a decode without its token', async () => {
    const dir = path.join(extracted('codec-server'), 'usr/lib/gitspaces-codec-server');
    const port = await freeLoopbackPort();
    const data = mkdtempSync(path.join(work, 'codec-data-'));
    await startPart(
      dir,
      'codec/main.js',
      { GITSPACES_DATA_DIR: data, GITSPACES_CODEC_PORT: String(port), GITSPACES_CODEC_TOKEN: 'codec-token-0123456789' },
      `http://127.0.0.1:${port}/healthz`,
    );
    const decode = await fetch(`http://127.0.0.1:${port}/decode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ payloads: [] }),
    });
    expect(decode.status).toBe(401);
    const authorised = await fetch(`http://127.0.0.1:${port}/decode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer codec-token-0123456789' },
      body: JSON.stringify({ payloads: [] }),
    });
    expect([authorised.status, await authorised.json()]).toEqual([200, { payloads: [] }]);
  });

  it("runs the agent package on the pinned Node.js (the runner's): native node-pty and the agent's health check", async () => {
    const node = path.join(extracted('runner'), 'usr/lib/gitspaces-runner/node/bin/node');
    const agentRoot = path.join(work, 'agent');
    mkdirSync(agentRoot);
    const tarball = path.join(out, `gitspaces-agent-${VERSION}-linux-${arch}.tar.gz`);
    const listing = sh('tar', ['--numeric-owner', '-tvzf', tarball]).stdout.trim().split('\n');
    expect(listing.filter((line) => !line.includes(' 0/0 '))).toEqual([]);
    expect(sh('tar', ['-xzf', tarball, '-C', agentRoot, '--strip-components=1']).status).toBe(0);
    expect(existsSync(path.join(agentRoot, 'node'))).toBe(false); // machines install Node.js from the official tarball
    const pty = sh(
      node,
      [
        '-e',
        "require('node-pty').spawn('/bin/echo', ['pty works'], {}).onData((d) => { process.stdout.write(d); process.exit(0); })",
      ],
      {},
    );
    expect(pty.stdout).toContain('pty works');

    const secretFile = path.join(work, 'agent-secret');
    writeFileSync(secretFile, 'agent-secret-0123456789\n', { mode: 0o600 });
    const port = await freeLoopbackPort();
    const workspace = mkdtempSync(path.join(work, 'workspace-'));
    const child = spawn(node, [path.join(agentRoot, 'dist/agent/main.js')], {
      cwd: agentRoot,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH!,
        HOME: workspace,
        GITSPACE_ID: 'gs-package0test1',
        GITSPACE_WORKSPACE_DIR: workspace,
        GITSPACE_IDE: 'terminal',
        GITSPACE_AGENT_PORT: String(port),
        GITSPACE_AGENT_SECRET_FILE: secretFile,
      },
    });
    children.push(child);
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const deadline = Date.now() + 30_000;
    let status = 0;
    while (status !== 200) {
      status = (await fetch(`http://127.0.0.1:${port}/_agent/healthz`).catch(() => undefined))?.status ?? 0;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the agent did not start: ${log}`);
      if (status !== 200) await new Promise((r) => setTimeout(r, 200));
    }
  });

  (have('systemd-analyze') ? it : it.skip)(
    'ships systemd units that systemd-analyze verifies, hardened (exposure at most 2.0, the runner 5.0)',
    () => {
      for (const part of Object.keys(DEB_PARTS) as DebPart[]) {
        const name = `gitspaces-${part}`;
        const root = extracted(part);
        const unit = readFileSync(path.join(root, `usr/lib/systemd/system/${name}.service`), 'utf8');
        for (const line of [
          `User=${name}`,
          `EnvironmentFile=/etc/gitspaces/${part}.env`,
          `ExecStart=/usr/lib/${name}/node/bin/node /usr/lib/${name}/dist/${DEB_PARTS[part].entry}`,
          `StateDirectory=${name}${part === 'runner' ? ` ${name}-machines` : ''}`,
          'NoNewPrivileges=yes',
          'ProtectSystem=strict',
          'CapabilityBoundingSet=',
          'Restart=on-failure',
          'WantedBy=multi-user.target',
        ])
          expect([part, unit.split('\n')]).toEqual([part, expect.arrayContaining([line])]);
        expect(unit).not.toMatch(/@[A-Z_]+@/);

        // verify resolves ExecStart on this machine: a copy pointing into the extracted package is verified.
        const copy = path.join(work, `verify-${part}`, `${name}.service`);
        mkdirSync(path.dirname(copy), { recursive: true });
        writeFileSync(copy, unit.replaceAll(`/usr/lib/${name}/`, `${root}/usr/lib/${name}/`));
        const verify = sh('systemd-analyze', ['verify', copy]);
        expect([part, verify.status, verify.stderr]).toEqual([part, 0, '']);

        const security = sh('systemd-analyze', ['security', '--offline=yes', `--root=${root}`, `${name}.service`]);
        const exposure = Number(/Overall exposure level for [^:]+: ([\d.]+)/.exec(security.stdout)?.[1]);
        expect([part, exposure]).toEqual([part, expect.any(Number)]);
        expect([part, exposure <= (part === 'runner' ? 5 : 2)]).toEqual([part, true]);
      }
    },
  );

  (have('bwrap') ? it : it.skip)('postinst creates the service user (run in a sandbox over a copy of /etc)', () => {
    const root = extracted('gateway');
    const etc = path.join(work, 'etc');
    expect(sh('cp', ['-a', '/etc', etc]).status).toBe(0);
    const control = path.join(work, 'control-gateway');
    expect(sh('dpkg-deb', ['-e', debOf('gateway'), control]).status).toBe(0);
    const sandbox = ['--dev-bind', '/', '/', '--bind', etc, '/etc', '--tmpfs', '/run'];
    const postinst = sh('bwrap', [...sandbox, 'sh', path.join(control, 'postinst'), 'configure', '']);
    expect([postinst.status, postinst.stderr]).toEqual([0, '']);
    const user = readFileSync(path.join(etc, 'passwd'), 'utf8')
      .split('\n')
      .find((line) => line.startsWith('gitspaces-gateway:'));
    expect(user).toMatch(
      /^gitspaces-gateway:x:\d+:\d+:Gitspaces gateway:\/var\/lib\/gitspaces-gateway:\/usr\/sbin\/nologin$/,
    );
    expect(Number(user!.split(':')[2])).toBeLessThan(1000); // a system user
    // Again (an upgrade): the user is kept, nothing fails.
    const again = sh('bwrap', [...sandbox, 'sh', path.join(control, 'postinst'), 'configure', VERSION]);
    expect(again.status).toBe(0);
    expect(readFileSync(path.join(etc, 'passwd'), 'utf8').match(/^gitspaces-gateway:/gm)).toHaveLength(1);
    expect(root).toBeTruthy();
  });
});
