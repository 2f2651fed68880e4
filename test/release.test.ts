import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { freeLoopbackPorts } from '../common/net';
import type { DevServer } from '../engine/dev-server';
import { openThroughGateway } from './support/gateway-client';
import { startGitServer, type GitServer } from './support/git-server';
import { waitForGitspace } from './support/stack';
import { startTestTemporal } from './support/temporal';

const ROOT = path.resolve(__dirname, '..');
// Inside the checkout, so the compiled code finds node_modules as an installed package would.
const OUT = path.join(ROOT, '.tools', 'release-test');
const ENTRY_POINTS = ['api/main.js', 'gateway/main.js', 'workers/runner-main.js', 'agent/main.js', 'codec/main.js'];
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Every module a compiled file requires, following relative requires from the entry points. */
function externalModules(): Map<string, string> {
  const found = new Map<string, string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const [, specifier] of source.matchAll(/require\("([^"]+)"\)/g)) {
      if (specifier!.startsWith('.')) {
        const target = path.resolve(path.dirname(file), specifier!);
        visit(existsSync(`${target}.js`) ? `${target}.js` : path.join(target, 'index.js'));
      } else if (!specifier!.startsWith('node:') && !builtinModules.includes(specifier!)) {
        const name = specifier!
          .split('/')
          .slice(0, specifier!.startsWith('@') ? 2 : 1)
          .join('/');
        found.set(name, path.relative(OUT, file));
      }
    }
  };
  for (const entry of ENTRY_POINTS) visit(path.join(OUT, entry));
  return found;
}

/**
 * The released parts are the compiled JavaScript of `npm run build` (tsconfig.build.json): they need nothing but the
 * package's production dependencies, and the whole lifecycle runs on them, with node and no TypeScript runtime.
 */
describe('the compiled release', () => {
  beforeAll(async () => {
    await rm(OUT, { recursive: true, force: true });
    await promisify(execFile)(process.execPath, [
      require.resolve('typescript/bin/tsc'),
      '-p',
      path.join(ROOT, 'tsconfig.build.json'),
      '--outDir',
      OUT,
    ]);
  }, 180_000);
  afterAll(() => rm(OUT, { recursive: true, force: true }));

  it('requires only production dependencies: no dev dependency, no tsx, no test or dev script', async () => {
    const modules = externalModules();
    expect(modules.size).toBeGreaterThan(10);
    const undeclared = [...modules].filter(([name]) => !(name in pkg.dependencies));
    expect(undeclared).toEqual([]);
    expect([...modules.keys()].filter((name) => name in pkg.devDependencies || name === 'tsx')).toEqual([]);
    const top = await readdir(OUT);
    expect(top.filter((name) => ['test', 'scripts'].includes(name))).toEqual([]);
    // Test support lives under test/ only: no harness, fake or emulator among the product folders.
    const files = (await readdir(OUT, { recursive: true })).map((file) => file.split(path.sep).join('/'));
    expect(files.length).toBeGreaterThan(50);
    expect(files.filter((file) => /(^|\/)test\/|\.test\.js|harness|fake/i.test(file))).toEqual([]);
  });

  describe('runs a gitspace end to end', () => {
    let temporal: DevServer;
    let git: GitServer;
    let dataDir: string;
    const parts: ChildProcess[] = [];
    const logs: Record<string, string> = {};

    const run = (name: string, entry: string, env: Record<string, string>) => {
      const child = spawn(process.execPath, [path.join(OUT, entry)], {
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH!, HOME: process.env.HOME!, ...env },
      });
      logs[name] = '';
      const keep = (chunk: Buffer) => {
        logs[name] = (logs[name] + chunk.toString()).slice(-20_000);
      };
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      parts.push(child);
      return child;
    };

    afterAll(async () => {
      for (const child of parts) {
        if (child.exitCode === null && child.pid) process.kill(-child.pid, 'SIGTERM');
      }
      await Promise.all(
        parts.map((child) => (child.exitCode === null ? new Promise((r) => child.once('exit', r)) : 0)),
      );
      await git?.stop();
      await temporal?.stop();
      if (dataDir) {
        await rm(dataDir, { recursive: true, force: true });
        await rm(`${dataDir}-machines`, { recursive: true, force: true });
      }
    }, 60_000);

    it('starts, serves and deletes a gitspace whose agent runs as compiled JavaScript under node', async () => {
      temporal = await startTestTemporal();
      git = await startGitServer();
      await git.createRepository('released', { 'README.md': '# released\n' });
      dataDir = path.join(await mkdtemp(path.join(os.tmpdir(), 'gitspaces-release-')), 'data');
      const { api, gateway, gatewayAdmin } = await freeLoopbackPorts(['api', 'gateway', 'gatewayAdmin']);
      const env = {
        TEMPORAL_ADDRESS: temporal.address,
        GITSPACES_DATA_DIR: dataDir,
        GITSPACES_API_PORT: String(api),
        GITSPACES_GATEWAY_PORT: String(gateway),
        GITSPACES_GATEWAY_ADMIN_PORT: String(gatewayAdmin),
        GITSPACES_GATEWAY_ADMIN_URL: `http://127.0.0.1:${gatewayAdmin}`,
        GITSPACES_PUBLIC_GATEWAY_URL: `http://127.0.0.1:${gateway}`,
        GITSPACES_JWKS_URL: `http://127.0.0.1:${api}/api/v1/.well-known/jwks.json`,
      };
      const apiUrl = `http://127.0.0.1:${api}`;
      run('api', 'api/main.js', env);
      const deadline = Date.now() + 90_000;
      while (
        !existsSync(path.join(dataDir, 'admin-token')) ||
        !(await fetch(`http://127.0.0.1:${api}/healthz`).catch(() => null))?.ok
      ) {
        if (Date.now() > deadline) throw new Error(`the compiled API did not start: ${logs.api}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      run('gateway', 'gateway/main.js', env);
      run('runner', 'workers/runner-main.js', env);
      const token = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
      const call = async (method: string, route: string, body?: unknown) => {
        const response = await fetch(`${apiUrl}${route}`, {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
        const text = await response.text();
        return { status: response.status, body: text ? JSON.parse(text) : undefined };
      };
      const created = await call('POST', '/api/v1/gitspaces', {
        name: 'released',
        repository: { url: git.urlOf('released') },
        infrastructureId: 'local',
        machineId: 'local-default',
      });
      expect(created.status).toBe(201);
      const id = created.body.gitspace.id as string;
      const settled =
        (...states: string[]) =>
        (g: any) =>
          [...states, 'error'].includes(g.state);
      const started = await waitForGitspace({ api: call }, id, settled('running'), 90_000);
      expect([started.state, started.lastError]).toEqual(['running', undefined]);

      // The agent's own command line: node and the compiled agent, nothing else.
      const agents: string[][] = [];
      for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
        const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8').then(
          (text) => text.split('\0').filter(Boolean),
          () => [],
        );
        const environ = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
        if (argv.at(-1) === path.join(OUT, 'agent', 'main.js') && environ.includes(`GITSPACE_ID=${id}`))
          agents.push(argv);
      }
      expect(agents).toHaveLength(1);
      expect(path.basename(agents[0]![0]!)).toMatch(/^node/);
      expect(agents[0]!.join(' ')).not.toContain('tsx');

      // Opened through the gateway with an access token from the compiled API.
      const access = await call('POST', `/api/v1/gitspaces/${id}/access`);
      expect(access.status).toBe(200);
      expect(await openThroughGateway(access.body.url)).toEqual({ exchange: 'redirect', page: 200, html: true });

      expect((await call('DELETE', `/api/v1/gitspaces/${id}`)).status).toBe(202);
      expect((await waitForGitspace({ api: call }, id, settled('deleted'))).state).toBe('deleted');
    }, 240_000);
  });
});
