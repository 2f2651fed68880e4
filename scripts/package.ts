/**
 * `npm run package`: the installable releases of Gitspaces, under dist/packages/:
 * - gitspaces-{api,gateway,runner,codec-server}_<version>_<arch>.deb: Debian packages (built with dpkg-deb), each with
 *   the compiled JavaScript, the production node_modules, the pinned Node.js (providers/node-runtime.ts) and a
 *   hardened systemd unit (packaging/systemd), run as a system user of its own created by postinst;
 * - gitspaces-agent-<version>-linux-<arch>.tar.gz: the agent package that gitspace machines download
 *   (config.agent.packageUrl; the bootstrap installs the same pinned Node.js from the official tarball);
 * - SHA256SUMS and packages.json (file, sha256, bytes of each).
 *
 * Nothing is downloaded but through npm: the Node.js binary is the npm package node-linux-<arch>, checked against
 * the pinned sha512 integrity and the pinned SHA-256 of its bin/node (the binary of the official tarball). The
 * production node_modules are `npm ci --omit=dev` of the committed lock file run by that Node.js, so node-pty is
 * compiled for its ABI against its own headers; they are cached by lock file, Node.js version and arch
 * (~/.cache/gitspaces-packaging, or GITSPACES_PACKAGING_CACHE).
 *
 * Usage: npm run package [-- --parts api,gateway,runner,codec-server,agent] [--out dist/packages]
 *                           [--compression zstd|xz|gzip|none]
 * zstd (the default) needs dpkg 1.21.18 or newer to install (Debian 12, Ubuntu 21.10 and later); xz is for older
 * systems and is smaller, but takes minutes per package.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findExecutable } from '../common/executable';
import { NODE_RUNTIME, type NodeArch } from '../providers/node-runtime';

const ROOT = path.resolve(__dirname, '..');
const PACKAGING = path.join(ROOT, 'packaging');

/** The parts installed as Debian packages: the entry point under dist/, the env file's role name, what else helps. */
export const DEB_PARTS = {
  api: { entry: 'api/main.js', summary: 'Gitspaces control plane API', recommends: [], stateDirs: 1 },
  gateway: { entry: 'gateway/main.js', summary: 'Gitspaces CDE gateway', recommends: [], stateDirs: 1 },
  runner: {
    entry: 'workers/runner-main.js',
    summary: 'Gitspaces runner (delegate for one infrastructure)',
    // The local provider's sandbox and the agents' git; the cloud providers need neither.
    recommends: ['bubblewrap', 'git'],
    stateDirs: 2,
  },
  'codec-server': {
    entry: 'codec/main.js',
    summary: 'Gitspaces codec server for the Temporal UI',
    recommends: [],
    stateDirs: 1,
  },
} as const;
export type DebPart = keyof typeof DEB_PARTS;
export const ALL_PARTS = [...(Object.keys(DEB_PARTS) as DebPart[]), 'agent'] as const;
export type Part = (typeof ALL_PARTS)[number];

/**
 * Development tools that must never be in a released package. (@swc/core is not one: @temporalio/worker depends on it
 * to bundle workflow code.)
 */
export const DEV_ONLY_PACKAGES = [
  'typescript',
  'tsx',
  'esbuild',
  'jest',
  '@swc/jest',
  'eslint',
  'prettier',
  'typescript-eslint',
  'playwright-core',
  '@temporalio/testing',
];

/** Bump when the staging of node_modules changes, so caches built the old way are not reused. */
const MODULES_RECIPE = 3;

export interface PackageOptions {
  parts: readonly Part[];
  outDir: string;
  compression: 'xz' | 'gzip' | 'zstd' | 'none';
  cacheDir: string;
  log: (line: string) => void;
}

export interface BuiltArtifact {
  part: Part;
  file: string;
  sha256: string;
  bytes: number;
}

const sha256File = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const result = spawnSync(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
    ...options,
  });
  if (result.status !== 0) {
    const output = `${result.stdout?.toString() ?? ''}${result.stderr?.toString() ?? ''}`.trim().slice(-4000);
    throw new Error(
      `${path.basename(command)} ${args.join(' ')} failed (${result.error ?? `exit ${result.status}`}):\n${output}`,
    );
  }
}

/** The Node.js arch of this machine: node-pty is compiled here, so a package is built on the arch it is for. */
export function hostArch(): NodeArch {
  if (process.arch === 'x64' || process.arch === 'arm64') return process.arch;
  throw new Error(`no pinned Node.js for ${process.arch}: packages are built for x64 and arm64`);
}

/** npm's own CLI script, to run it with the pinned Node.js. */
function npmCli(): string {
  const fromNpm = process.env.npm_execpath;
  if (fromNpm && fromNpm.endsWith('.js') && existsSync(fromNpm)) return fromNpm;
  const npm = findExecutable('npm', process.env.PATH ?? '');
  if (!npm) throw new Error('npm is not on PATH');
  const cli = realpathSync(npm);
  if (!cli.endsWith('.js')) throw new Error(`cannot find npm's CLI script from ${npm}`);
  return cli;
}

/** The environment of the npm runs: no npm_* variables of the `npm run` that started this script. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  return { ...env, npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false', ...extra };
}

/** The pinned Node.js for `arch` (bin/node, LICENSE, include/ headers), fetched with npm and checked. */
export function nodeRuntime(arch: NodeArch, cacheDir: string, log: (line: string) => void): string {
  const pin = NODE_RUNTIME.arches[arch];
  const dir = path.join(cacheDir, `node-linux-${arch}-${NODE_RUNTIME.version}`);
  if (existsSync(path.join(dir, '.complete'))) return dir;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = mkdtempSync(path.join(cacheDir, '.node-'));
  try {
    const spec = `node-linux-${arch}@${NODE_RUNTIME.version}`;
    log(`fetching ${spec} with npm`);
    run(process.execPath, [npmCli(), 'pack', spec, '--pack-destination', tmp, '--silent'], {
      env: cleanEnv({}),
    });
    const tarball = path.join(tmp, `node-linux-${arch}-${NODE_RUNTIME.version}.tgz`);
    const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
    if (integrity !== pin.npmIntegrity)
      throw new Error(`${spec} has integrity ${integrity}, not the pinned ${pin.npmIntegrity}; refusing it`);
    run('tar', ['-xzf', tarball, '-C', tmp]);
    const binary = sha256File(path.join(tmp, 'package', 'bin', 'node'));
    if (binary !== pin.binarySha256)
      throw new Error(`bin/node of ${spec} has SHA-256 ${binary}, not the official binary's ${pin.binarySha256}`);
    writeFileSync(path.join(tmp, 'package', '.complete'), `${spec}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(path.join(tmp, 'package'), dir);
    return dir;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Every directory named `name` (a package) under any node_modules of `root`. */
function findPackages(root: string, names: readonly string[]): string[] {
  const found: string[] = [];
  const visit = (modules: string) => {
    for (const entry of readdirSync(modules, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const dirs = entry.name.startsWith('@')
        ? readdirSync(path.join(modules, entry.name)).map((sub) => `${entry.name}/${sub}`)
        : [entry.name];
      for (const name of dirs) {
        const dir = path.join(modules, name);
        if (names.includes(name)) found.push(path.relative(root, dir));
        const nested = path.join(dir, 'node_modules');
        if (existsSync(nested)) visit(nested);
      }
    }
  };
  visit(path.join(root, 'node_modules'));
  return found;
}

/**
 * The production node_modules for `arch`: `npm ci --omit=dev` of the committed lock file, run by the pinned Node.js so
 * native modules are built for it. Cached by what they are made of.
 */
export function productionModules(nodeDir: string, arch: NodeArch, cacheDir: string, log: (l: string) => void): string {
  const lock = readFileSync(path.join(ROOT, 'package-lock.json'));
  const { dependencies } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: unknown;
  };
  const key = createHash('sha256')
    .update(lock)
    .update(JSON.stringify(dependencies))
    .update(`${NODE_RUNTIME.version} ${arch} ${MODULES_RECIPE}`)
    .digest('hex')
    .slice(0, 16);
  const dir = path.join(cacheDir, `modules-${arch}-${key}`);
  if (existsSync(path.join(dir, '.complete'))) return dir;
  const tmp = mkdtempSync(path.join(cacheDir, '.modules-'));
  try {
    cpSync(path.join(ROOT, 'package.json'), path.join(tmp, 'package.json'));
    cpSync(path.join(ROOT, 'package-lock.json'), path.join(tmp, 'package-lock.json'));
    const node = path.join(nodeDir, 'bin', 'node');
    log(`npm ci --omit=dev with Node.js ${NODE_RUNTIME.version} (native modules built against its headers)`);
    run(node, [npmCli(), 'ci', '--omit=dev', '--no-audit', '--no-fund'], {
      cwd: tmp,
      env: cleanEnv({
        PATH: `${path.join(nodeDir, 'bin')}:${process.env.PATH}`,
        // node-gyp takes the headers of the pinned release from the npm package instead of downloading them.
        npm_config_nodedir: nodeDir,
      }),
    });
    const dev = findPackages(tmp, DEV_ONLY_PACKAGES);
    if (dev.length) throw new Error(`npm ci --omit=dev installed development packages: ${dev.join(', ')}`);
    // What this platform never loads: node-pty's object files and macOS/Windows prebuilds (it is built for this
    // Node.js), Temporal's core bridge for other platforms and its Rust sources.
    const modules = path.join(tmp, 'node_modules');
    for (const leftover of ['build/Release/obj.target', 'build/Release/.deps', 'build/Release/obj', 'prebuilds'])
      rmSync(path.join(modules, 'node-pty', leftover), { recursive: true, force: true });
    const bridge = path.join(modules, '@temporalio', 'core-bridge');
    const triple = { x64: 'x86_64-unknown-linux-gnu', arm64: 'aarch64-unknown-linux-gnu' }[arch];
    if (!existsSync(path.join(bridge, 'releases', triple)))
      throw new Error(`@temporalio/core-bridge has no ${triple} binary`);
    for (const release of readdirSync(path.join(bridge, 'releases')))
      if (release !== triple) rmSync(path.join(bridge, 'releases', release), { recursive: true, force: true });
    rmSync(path.join(bridge, 'sdk-core'), { recursive: true, force: true });
    const check = spawnSync(
      node,
      [
        '-e',
        // The agent's SSH server: ssh2 loads (its optional native parts may be missing; it falls back to JS).
        `require('@temporalio/core-bridge'); ` +
          `if (typeof require('ssh2').Server === 'function') process.stdout.write('ssh2-ok '); ` +
          `require('node-pty').spawn('/bin/echo', ['pty-ok'], {}).onData((d) => { process.stdout.write(d); process.exit(0); })`,
      ],
      { cwd: tmp, encoding: 'utf8', timeout: 20_000 },
    );
    if (!check.stdout.includes('ssh2-ok'))
      throw new Error(`ssh2 does not load with Node.js ${NODE_RUNTIME.version}: ${check.stderr || check.stdout}`);
    if (!check.stdout.includes('pty-ok'))
      throw new Error(`node-pty does not work with Node.js ${NODE_RUNTIME.version}: ${check.stderr || check.stdout}`);
    writeFileSync(path.join(tmp, '.complete'), `${key}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    return dir;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Debian's version of a semver version: a pre-release sorts before its release (0.2.0~rc.1 < 0.2.0). */
export function debianVersion(version: string): string {
  if (!/^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/.test(version)) throw new Error(`version '${version}' is not semver`);
  return version.replace('-', '~');
}

function substitute(template: string, values: Record<string, string>): string {
  const text = template.replace(/@([A-Z_]+)@/g, (whole, key: string) => {
    if (!(key in values)) throw new Error(`no value for ${whole} in a packaging template`);
    return values[key]!;
  });
  // A field whose value is empty (no Recommends, no Homepage) is left out.
  return text
    .split('\n')
    .filter((line) => !/^[A-Za-z-]+: *$/.test(line))
    .join('\n');
}

/** Copies a tree, hard-linking files when it can (the cache and the staging dir share a file system). */
function copyTree(from: string, to: string): void {
  mkdirSync(path.dirname(to), { recursive: true });
  const linked = spawnSync('cp', ['-al', from, to]);
  if (linked.status !== 0) {
    rmSync(to, { recursive: true, force: true });
    run('cp', ['-a', from, to]);
  }
}

function duKiB(dir: string): number {
  return Number(execFileSync('du', ['-sk', '--apparent-size', dir], { encoding: 'utf8' }).split('\t')[0]);
}

interface Payload {
  dist: string;
  modules: string;
  nodeDir: string;
  manifest: Record<string, unknown>;
}

/** dist, node_modules and a production package.json under `appDir`. */
function stageApp(payload: Payload, appDir: string): void {
  mkdirSync(appDir, { recursive: true });
  copyTree(payload.dist, path.join(appDir, 'dist'));
  copyTree(path.join(payload.modules, 'node_modules'), path.join(appDir, 'node_modules'));
  writeFileSync(path.join(appDir, 'package.json'), `${JSON.stringify(payload.manifest, null, 2)}\n`);
}

function buildDeb(part: DebPart, payload: Payload, stage: string, options: PackageOptions, arch: NodeArch): string {
  const info = DEB_PARTS[part];
  const version = String(payload.manifest.version);
  const name = `gitspaces-${part}`;
  const debArch = NODE_RUNTIME.arches[arch].debianArch;
  const root = path.join(stage, name);
  const appDir = path.join(root, 'usr', 'lib', name);
  stageApp(payload, appDir);
  mkdirSync(path.join(appDir, 'node', 'bin'), { recursive: true });
  cpSync(path.join(payload.nodeDir, 'bin', 'node'), path.join(appDir, 'node', 'bin', 'node'));
  cpSync(path.join(payload.nodeDir, 'LICENSE'), path.join(appDir, 'node', 'LICENSE'));
  if (!existsSync(path.join(appDir, 'dist', info.entry))) throw new Error(`the build has no dist/${info.entry}`);

  const values: Record<string, string> = {
    PACKAGE: name,
    ROLE: part,
    USER: name,
    SERVICE: `${name}.service`,
    ENTRY: info.entry,
    STATE_DIRECTORIES: [name, `${name}-machines`].slice(0, info.stateDirs).join(' '),
    NODE_VERSION: NODE_RUNTIME.version,
    DEB_VERSION: debianVersion(version),
    DEB_ARCH: debArch,
    MAINTAINER: process.env.GITSPACES_PACKAGE_MAINTAINER ?? 'Gitspaces maintainers <gitspaces@localhost>',
    HOMEPAGE: process.env.GITSPACES_PACKAGE_HOMEPAGE ?? '',
    RECOMMENDS: info.recommends.join(', '),
    SUMMARY: info.summary,
  };
  const common = substitute(readFileSync(path.join(PACKAGING, 'systemd', 'common.conf'), 'utf8'), values).trim();
  const unit = substitute(readFileSync(path.join(PACKAGING, 'systemd', `${part}.service`), 'utf8'), {
    ...values,
    COMMON: common,
  });
  const unitDir = path.join(root, 'usr', 'lib', 'systemd', 'system');
  mkdirSync(unitDir, { recursive: true });
  writeFileSync(path.join(unitDir, `${name}.service`), unit);
  const docDir = path.join(root, 'usr', 'share', 'doc', name);
  mkdirSync(docDir, { recursive: true });
  writeFileSync(
    path.join(docDir, 'copyright'),
    substitute(readFileSync(path.join(PACKAGING, 'debian', 'copyright.in'), 'utf8'), values),
  );
  writeFileSync(
    path.join(docDir, 'README'),
    `${info.summary} ${version}, on Node.js ${NODE_RUNTIME.version} (/usr/lib/${name}/node/bin/node).\n\n` +
      `Service:  ${name}.service (systemctl enable --now ${name}), user ${name}\n` +
      `Settings: /etc/gitspaces/${part}.env (KEY=value lines; the Terraform startup scripts write it)\n` +
      `State:    /var/lib/${name} (GITSPACES_DATA_DIR)\n` +
      `Logs:     journalctl -u ${name}\n`,
  );

  chmodSync(root, 0o755);
  run('chmod', ['-R', 'u+rwX,go+rX,go-w', root]);
  const debian = path.join(root, 'DEBIAN');
  mkdirSync(debian, { recursive: true });
  values.INSTALLED_SIZE = String(duKiB(root));
  writeFileSync(
    path.join(debian, 'control'),
    substitute(readFileSync(path.join(PACKAGING, 'debian', 'control.in'), 'utf8'), values),
  );
  for (const script of ['postinst', 'prerm', 'postrm']) {
    const file = path.join(debian, script);
    writeFileSync(file, substitute(readFileSync(path.join(PACKAGING, 'debian', `${script}.in`), 'utf8'), values));
    chmodSync(file, 0o755);
  }
  const out = path.join(options.outDir, `${name}_${values.DEB_VERSION}_${debArch}.deb`);
  const level = { xz: ['-Zxz', '-z6'], gzip: ['-Zgzip', '-z6'], zstd: ['-Zzstd', '-z6'], none: ['-Znone'] };
  run('dpkg-deb', ['--root-owner-group', ...level[options.compression], '--build', root, out]);
  rmSync(root, { recursive: true, force: true });
  return out;
}

function buildAgentTarball(payload: Payload, stage: string, options: PackageOptions, arch: NodeArch): string {
  const version = String(payload.manifest.version);
  const top = `gitspaces-agent-${version}`;
  const appDir = path.join(stage, top);
  stageApp(payload, appDir);
  writeFileSync(
    path.join(appDir, 'README'),
    `The Gitspaces agent ${version} for linux-${arch}: run dist/agent/main.js with Node.js ${NODE_RUNTIME.version}\n` +
      `(node-pty in node_modules is built for it). Gitspace machines install it from config.agent.packageUrl.\n`,
  );
  run('chmod', ['-R', 'u+rwX,go+rX,go-w', appDir]);
  const out = path.join(options.outDir, `${top}-linux-${arch}.tar.gz`);
  run('tar', [
    '--sort=name',
    `--mtime=@${process.env.SOURCE_DATE_EPOCH}`,
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--use-compress-program=gzip -n -6',
    '-cf',
    out,
    '-C',
    stage,
    top,
  ]);
  rmSync(appDir, { recursive: true, force: true });
  return out;
}

/** Builds the packages; answers what it wrote. */
export function buildPackages(options: PackageOptions): BuiltArtifact[] {
  const arch = hostArch();
  for (const tool of ['dpkg-deb', 'tar', 'gzip', 'cp', 'du'])
    if (!findExecutable(tool, process.env.PATH ?? ''))
      throw new Error(`${tool} is needed to build packages (apt-get install dpkg)`);
  const manifestIn = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  process.env.SOURCE_DATE_EPOCH ??= (() => {
    try {
      return execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return String(Math.floor(Date.now() / 1000));
    }
  })();
  mkdirSync(options.cacheDir, { recursive: true });
  mkdirSync(options.outDir, { recursive: true });
  const nodeDir = nodeRuntime(arch, options.cacheDir, options.log);
  const modules = productionModules(nodeDir, arch, options.cacheDir, options.log);
  const stage = mkdtempSync(path.join(options.cacheDir, '.stage-'));
  try {
    options.log('compiling (tsconfig.build.json)');
    const dist = path.join(stage, 'dist');
    run(process.execPath, [
      require.resolve('typescript/bin/tsc'),
      '-p',
      path.join(ROOT, 'tsconfig.build.json'),
      '--outDir',
      dist,
    ]);
    // The dashboard the API serves at `/` (api/static-dashboard.ts finds it at dist/web); no source maps shipped.
    options.log('bundling the dashboard (vite build web)');
    run(process.execPath, [
      path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'),
      'build',
      path.join(ROOT, 'web'),
      '--outDir',
      path.join(dist, 'web'),
      '--emptyOutDir',
      '--sourcemap',
      'false',
    ]);
    const payload: Payload = {
      dist,
      modules,
      nodeDir,
      manifest: {
        name: manifestIn.name,
        version: manifestIn.version,
        private: true,
        description: manifestIn.description,
        license: manifestIn.license,
        engines: { node: NODE_RUNTIME.version },
        dependencies: manifestIn.dependencies,
      },
    };
    const built: BuiltArtifact[] = [];
    for (const part of options.parts) {
      const started = Date.now();
      const file =
        part === 'agent'
          ? buildAgentTarball(payload, stage, options, arch)
          : buildDeb(part, payload, stage, options, arch);
      const bytes = statSync(file).size;
      built.push({ part, file: path.basename(file), sha256: sha256File(file), bytes });
      options.log(
        `${path.basename(file)}: ${(bytes / 1e6).toFixed(1)} MB in ${((Date.now() - started) / 1000).toFixed(0)} s`,
      );
    }
    // The checksums of everything in the directory, in sha256sum's format, and the same as JSON.
    const all = readdirSync(options.outDir)
      .filter((file) => /\.(deb|tar\.gz)$/.test(file))
      .sort();
    writeFileSync(
      path.join(options.outDir, 'SHA256SUMS'),
      all.map((file) => `${sha256File(path.join(options.outDir, file))}  ${file}\n`).join(''),
    );
    writeFileSync(path.join(options.outDir, 'packages.json'), `${JSON.stringify(built, null, 2)}\n`);
    return built;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function parseArgs(argv: string[]): PackageOptions {
  const options: PackageOptions = {
    parts: ALL_PARTS,
    outDir: path.join(ROOT, 'dist', 'packages'),
    compression: 'zstd',
    cacheDir: process.env.GITSPACES_PACKAGING_CACHE ?? path.join(os.homedir(), '.cache', 'gitspaces-packaging'),
    log: (line) => console.log(`package: ${line}`),
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = () => inline ?? argv[++i] ?? '';
    if (flag === '--parts') {
      const parts = value().split(',').filter(Boolean);
      const unknown = parts.filter((part) => !(ALL_PARTS as readonly string[]).includes(part));
      if (unknown.length || !parts.length)
        throw new Error(`--parts takes a list of ${ALL_PARTS.join(', ')}; not ${unknown.join(', ') || 'nothing'}`);
      options.parts = parts as Part[];
    } else if (flag === '--out') options.outDir = path.resolve(value());
    else if (flag === '--compression') {
      const compression = value();
      if (!['xz', 'gzip', 'zstd', 'none'].includes(compression))
        throw new Error(`--compression takes xz, gzip, zstd or none, not '${compression}'`);
      options.compression = compression as PackageOptions['compression'];
    } else throw new Error(`unknown argument '${argv[i]}' (--parts, --out, --compression)`);
  }
  return options;
}

if (require.main === module) {
  try {
    const options = parseArgs(process.argv.slice(2));
    const started = Date.now();
    const built = buildPackages(options);
    for (const artifact of built) console.log(`${artifact.sha256}  ${path.join(options.outDir, artifact.file)}`);
    console.log(`package: done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } catch (error) {
    console.error(`package: ${(error as Error).message}`);
    process.exit(1);
  }
}
