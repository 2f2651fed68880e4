import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, realpathSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { buildSync } from 'esbuild';
import { codeCacheDir, ensureCacheDir, nodeModulesDir, replaceCacheFile } from '../../common/code-cache';
import { findExecutable } from '../../common/executable';
import type { Logger } from '../../common/logger';

/**
 * How the `local` provider isolates a gitspace's agent (and so its shells, IDE and repository commands) from the
 * runner's host, strongest first:
 *
 * - `bwrap-own-user`: the runner is root; each gitspace runs as a user id of its own inside a bubblewrap sandbox
 *   (mount, pid, ipc and uts namespaces; the host network).
 * - `bwrap-userns`: the runner is not root; each gitspace runs in a bubblewrap sandbox in a user namespace, as the
 *   runner's own user id on the host.
 * - `own-user`: the runner is root but cannot use bubblewrap; each gitspace runs as a user id of its own, with no
 *   namespaces: it sees the host's files and processes as any unprivileged user would.
 * - `none`: no isolation at all; every gitspace runs as the runner's user and can read everything the runner can.
 */
export type SandboxMode = 'bwrap-own-user' | 'bwrap-userns' | 'own-user' | 'none';

export interface SandboxSupport {
  mode: SandboxMode;
  /** Why a stronger mode could not be used (absent for `bwrap-own-user`, and for `bwrap-userns` as non-root). */
  reason?: string;
  bwrap?: string;
  setpriv?: string;
  prlimit?: string;
  /** Whether bubblewrap can forbid user namespaces inside the sandbox (`--disable-userns`). */
  disableUserns?: boolean;
}

/** First of the user ids the local provider gives gitspaces when the runner is root (one each, never shared). */
export const SANDBOX_UID_FIRST = 1_900_000_001;
export const SANDBOX_UID_LAST = 1_900_065_535;
/** The user id the start-up probe runs as: never given to a gitspace. */
const PROBE_UID = SANDBOX_UID_FIRST - 1;

/** Processes (and threads) one gitspace user may have at once, when it has a user id of its own. */
const MAX_PROCESSES = 4096;

export function isSandboxed(support: SandboxSupport): boolean {
  return support.mode === 'bwrap-own-user' || support.mode === 'bwrap-userns';
}

/** Whether each gitspace gets a user id of its own (the runner is root). */
export function hasOwnUsers(support: SandboxSupport): boolean {
  return support.mode === 'bwrap-own-user' || support.mode === 'own-user';
}

/** The agent's program: the node binary and its arguments, and what of the host it needs to read. */
export interface AgentProgram {
  command: string[];
  /** Host paths the agent reads (its code, node_modules, the node binary when outside /usr). */
  readOnlyPaths: string[];
}

const CODE_ROOT = path.resolve(__dirname, '../..');

let builtAgentProgram: AgentProgram | undefined;

/**
 * The agent's program, always compiled JavaScript: `dist/agent/main.js` when the runner runs compiled, else the
 * TypeScript source bundled once per runner process by esbuild (tsx's own compiler, so every source run has it) into
 * `node_modules/.cache/gitspaces/`, named by its content. Under tsx an agent started in ~1.5 s and took ~30 MB more.
 */
export function agentProgram(): AgentProgram {
  return (builtAgentProgram ??= buildAgentProgram());
}

function buildAgentProgram(): AgentProgram {
  const node = realpathSync(process.execPath);
  const nodeModules = nodeModulesDir();
  const agentMain = path.join(CODE_ROOT, 'agent', `main${path.extname(__filename)}`);
  const program = agentMain.endsWith('.js') ? agentMain : compileAgent(agentMain);
  // Only the code the agent runs: never the whole checkout, which may hold the data dir and other secrets.
  const readOnly = ['agent', 'common', 'contracts', 'package.json'].map((name) => path.join(CODE_ROOT, name));
  if (nodeModules) readOnly.push(nodeModules, path.join(path.dirname(nodeModules), 'package.json'));
  if (!SYSTEM_DIRS.some((dir) => isWithin(node, dir))) readOnly.push(path.dirname(path.dirname(node)));
  const paths = new Set<string>();
  for (const p of readOnly.filter((p) => existsSync(p))) {
    paths.add(p);
    paths.add(realpathSync(p)); // A symlinked node_modules is found by its real path as well.
  }
  return { command: [node, program], readOnlyPaths: [...paths] };
}

/**
 * Bundles the agent's own code into one file in the code cache (inside node_modules, so its packages, left as
 * `require`s, are found there), named by its content: runners of one checkout share it and never race on it.
 */
function compileAgent(entry: string): string {
  // Loaded only here: a compiled runner never needs it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const esbuild = require('esbuild') as { buildSync: typeof buildSync };
  const [output] = esbuild.buildSync({
    entryPoints: [entry],
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'cjs',
    target: `node${process.versions.node.split('.')[0]}`,
    write: false,
    logLevel: 'error',
  }).outputFiles;
  const digest = createHash('sha256').update(output!.contents).digest('hex').slice(0, 16);
  // Named agent/main.js like the source, which is how the provider knows its agents' processes (agentProcessesIn).
  const file = path.join(codeCacheDir(), `agent-${digest}`, 'agent', 'main.js');
  // Its folders are made readable every time: a cache made under another umask must not turn the sandbox off.
  ensureCacheDir(path.dirname(file));
  if (!existsSync(file)) replaceCacheFile(file, output!.contents);
  return file;
}

/** Everything needed to start one gitspace's agent. */
export interface AgentLaunch {
  gitspaceId: string;
  /** The machine's own directory (workspace and home), the only host directory it may write. */
  machineDir: string;
  homeDir: string;
  /** The gitspace's user id (own-user modes). */
  uid?: number;
  /** Where the generated passwd and group files go (bubblewrap modes). */
  etcDir: string;
  env: Record<string, string>;
  program: AgentProgram;
}

export interface LaunchCommand {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  uid?: number;
  gid?: number;
}

/** System directories mounted read-only into every sandbox (those that exist; symlinks are recreated). */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** The directories a sandbox makes of its own (below): no host directory may be laid over them. */
export const SANDBOX_OWN_DIRS = ['/etc', '/proc', '/dev', '/tmp', '/var/tmp'];

/** What of the host's /etc a sandbox sees: name resolution, TLS roots, shell and tool defaults. No secrets. */
const ETC_ENTRIES = [
  'hosts',
  'resolv.conf',
  'nsswitch.conf',
  'host.conf',
  'gai.conf',
  'services',
  'protocols',
  'networks',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'localtime',
  'timezone',
  'alternatives',
  'ssl',
  'ca-certificates',
  'ca-certificates.conf',
  'pki',
  'crypto-policies',
  'gitconfig',
  'ssh/ssh_config',
  'ssh/ssh_config.d',
  'bash.bashrc',
  'profile',
  'profile.d',
  'inputrc',
  'terminfo',
  'shells',
  'os-release',
  'debian_version',
  'lsb-release',
  'mime.types',
  'locale.alias',
  'locale.conf',
  'default/locale',
  'vim',
  'nanorc',
  'skel',
  'magic',
  'magic.mime',
];

/** The user name a gitspace's processes have inside its sandbox. */
export const SANDBOX_USER = 'gitspace';

/**
 * The command that starts an agent under `support`. In the bubblewrap modes the sandbox has a new root built from
 * read-only system directories, a few /etc entries, the agent's code and the machine's own directory, a private /tmp
 * and a new /proc (new pid namespace); it shares the host's network, so the agent's loopback port is reachable. As
 * root, bubblewrap sets the sandbox up and setpriv drops to the gitspace's user (no capabilities, no new privileges)
 * before the agent starts. The agent is not killed with the runner: agents outlive runner restarts.
 */
export async function launchCommand(support: SandboxSupport, launch: AgentLaunch): Promise<LaunchCommand> {
  const [node, ...nodeArgs] = launch.program.command as [string, ...string[]];
  const uid = hasOwnUsers(support) ? launch.uid : undefined;
  if (hasOwnUsers(support) && uid === undefined) throw new Error('a gitspace user id is required in this mode');
  const env: Record<string, string> = {
    ...launch.env,
    HOME: launch.homeDir,
    USER: SANDBOX_USER,
    LOGNAME: SANDBOX_USER,
  };
  const limits = support.prlimit
    ? [support.prlimit, '--core=0', ...(uid !== undefined ? [`--nproc=${MAX_PROCESSES}`] : []), '--']
    : [];
  const dropToUser =
    uid !== undefined && support.setpriv
      ? [
          support.setpriv,
          `--reuid=${uid}`,
          `--regid=${uid}`,
          '--clear-groups',
          '--no-new-privs',
          '--inh-caps=-all',
          '--bounding-set=-all',
          '--',
        ]
      : [];
  const agent = [...dropToUser, ...limits, node, ...nodeArgs];

  if (!isSandboxed(support)) {
    const [file, ...args] = agent as [string, ...string[]];
    return {
      file,
      args,
      env,
      cwd: launch.machineDir,
      // Without setpriv, node drops to the user itself (and clears supplementary groups).
      ...(uid !== undefined && !support.setpriv ? { uid, gid: uid } : {}),
    };
  }

  const actualUid = uid ?? process.getuid?.() ?? 0;
  const actualGid = uid ?? process.getgid?.() ?? 0;
  await mkdir(launch.etcDir, { recursive: true, mode: 0o700 });
  const passwd = path.join(launch.etcDir, 'passwd');
  const group = path.join(launch.etcDir, 'group');
  await writeFile(
    passwd,
    [
      'root:x:0:0:root:/root:/usr/sbin/nologin',
      `${SANDBOX_USER}:x:${actualUid}:${actualGid}:gitspace:${launch.homeDir}:/bin/bash`,
      'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  await writeFile(group, ['root:x:0:', `${SANDBOX_USER}:x:${actualGid}:`, 'nogroup:x:65534:', ''].join('\n'), {
    mode: 0o644,
  });
  // Readable by the gitspace's user, whatever the runner's umask.
  await chmod(passwd, 0o644);
  await chmod(group, 0o644);

  const args = new BwrapArgs();
  for (const dir of SYSTEM_DIRS) args.system(dir);
  args.dir('/etc');
  for (const entry of ETC_ENTRIES) args.roBindIfExists(path.join('/etc', entry));
  args.roBind(passwd, '/etc/passwd');
  args.roBind(group, '/etc/group');
  args.push('--proc', '/proc', '--dev', '/dev');
  args.tmpfs('/tmp');
  args.tmpfs('/dev/shm');
  args.dir('/var');
  args.tmpfs('/var/tmp');
  for (const p of launch.program.readOnlyPaths) args.roBind(p, p);
  args.bind(launch.machineDir, launch.machineDir);
  args.push('--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try');
  args.push('--hostname', launch.gitspaceId, '--new-session');
  if (support.mode === 'bwrap-userns') {
    args.push('--unshare-user');
    if (support.disableUserns) args.push('--disable-userns');
  }
  args.push('--chdir', launch.machineDir, '--clearenv');
  // The environment is set by bubblewrap, not inherited: bubblewrap's own processes carry none of the agent's.
  for (const [name, value] of Object.entries(env)) args.push('--setenv', name, value);
  return {
    file: support.bwrap!,
    args: [...args.list, '--', ...agent],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    cwd: '/',
  };
}

/** Builds a bubblewrap command line, creating every mount point's parents (mode 0755) in order. */
class BwrapArgs {
  readonly list: string[] = [];
  private readonly made = new Set<string>(['/']);
  private readonly hostTrees: string[] = [];

  push(...args: string[]): void {
    this.list.push(...args);
  }

  system(dir: string): void {
    if (!existsSync(dir)) return;
    if (lstatSync(dir).isSymbolicLink()) {
      this.list.push('--symlink', readlinkRelative(dir), dir);
      this.made.add(dir);
    } else {
      this.roBind(dir, dir);
    }
  }

  dir(dest: string): void {
    this.parents(dest);
    if (this.exists(dest)) return;
    this.list.push('--perms', '0755', '--dir', dest);
    this.made.add(dest);
  }

  tmpfs(dest: string): void {
    this.parents(dest);
    this.list.push('--perms', dest === '/dev/shm' || dest.endsWith('tmp') ? '1777' : '0755', '--tmpfs', dest);
    this.made.add(dest);
  }

  roBindIfExists(file: string): void {
    if (!existsSync(file)) return;
    this.roBind(realpathSync(file), file);
  }

  roBind(source: string, dest: string): void {
    this.parents(dest);
    this.list.push('--ro-bind', source, dest);
    this.mounted(dest);
  }

  bind(source: string, dest: string): void {
    this.parents(dest);
    this.list.push('--bind', source, dest);
    this.mounted(dest);
  }

  private mounted(dest: string): void {
    this.made.add(dest);
    if (existsSync(dest) && lstatSync(dest).isDirectory()) this.hostTrees.push(dest);
  }

  private exists(dest: string): boolean {
    return this.made.has(dest) || this.hostTrees.some((tree) => isWithin(dest, tree));
  }

  private parents(dest: string): void {
    const parent = path.dirname(dest);
    if (parent === dest || this.exists(parent)) return;
    this.dir(parent);
  }
}

function readlinkRelative(link: string): string {
  // /bin -> usr/bin on merged-/usr systems: the same link inside the sandbox.
  return path.relative(path.dirname(link), realpathSync(link));
}

/** Whether `p` is `dir` or inside it. */
export function isWithin(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/**
 * Creates the machines root. When the runner is root, gitspace users may pass through it to their own machine
 * directory (needed without bubblewrap), never list it: 0711; otherwise 0700.
 */
export async function ensureMachinesRoot(machinesRoot: string): Promise<void> {
  const mode = process.getuid?.() === 0 ? 0o711 : 0o700;
  await mkdir(machinesRoot, { recursive: true, mode });
  await chmod(machinesRoot, mode); // Whatever the umask.
}

/**
 * Finds how agents can be isolated on this host, by starting a real sandbox (as an agent would be started, with its
 * machine directory under `machinesRoot`) that checks it can read the agent's code and write its home. Tries the
 * strongest mode first.
 */
export async function detectSandbox(machinesRoot: string): Promise<SandboxSupport> {
  const root = process.getuid?.() === 0;
  // The runner's PATH, then the sbin directories a non-root PATH may lack.
  const searchPath = [process.env.PATH ?? '', '/usr/sbin', '/sbin'].join(path.delimiter);
  const bwrap = findExecutable('bwrap', searchPath);
  const setpriv = findExecutable('setpriv', searchPath);
  const prlimit = findExecutable('prlimit', searchPath);
  const tools = { ...(bwrap ? { bwrap } : {}), ...(setpriv ? { setpriv } : {}), ...(prlimit ? { prlimit } : {}) };
  const problems: string[] = [];
  const candidates: SandboxSupport[] = [];
  if (!bwrap) problems.push('bubblewrap (bwrap) is not installed');
  else if (root && !setpriv) problems.push('setpriv (util-linux) is not installed');
  else if (root) candidates.push({ mode: 'bwrap-own-user', ...tools });
  else candidates.push({ mode: 'bwrap-userns', ...tools, disableUserns: true }, { mode: 'bwrap-userns', ...tools });
  if (root) candidates.push({ mode: 'own-user', ...tools });

  for (const candidate of candidates) {
    const failure = await probe(candidate, machinesRoot);
    if (failure === undefined) {
      return problems.length > 0 || candidate.mode === 'own-user'
        ? { ...candidate, reason: problems.join('; ') || 'bubblewrap could not start a sandbox' }
        : candidate;
    }
    if (!problems.includes(failure)) problems.push(failure);
  }
  return { mode: 'none', ...tools, reason: problems.join('; ') || 'no sandbox is available' };
}

/** Starts a throwaway sandbox that checks the agent's code is readable in it; resolves with a problem, if any. */
async function probe(support: SandboxSupport, machinesRoot: string): Promise<string | undefined> {
  const program = agentProgram();
  await ensureMachinesRoot(machinesRoot);
  const base = await mkdtemp(path.join(machinesRoot, '.sandbox-probe-'));
  try {
    await chmod(base, 0o711);
    const machineDir = path.join(base, 'machine');
    const homeDir = path.join(machineDir, 'home');
    await mkdir(homeDir, { recursive: true, mode: 0o700 });
    if (hasOwnUsers(support)) {
      await chown(machineDir, PROBE_UID, PROBE_UID);
      await chown(homeDir, PROBE_UID, PROBE_UID);
    }
    const files = program.command.filter((arg) => path.isAbsolute(arg));
    const check =
      'const fs = require("node:fs"); for (const f of process.argv.slice(1)) fs.accessSync(f, fs.constants.R_OK);' +
      'fs.writeFileSync(require("node:path").join(process.env.HOME, "probe"), "ok");';
    const launch = await launchCommand(support, {
      gitspaceId: 'sandbox-probe',
      machineDir,
      homeDir,
      uid: PROBE_UID,
      etcDir: path.join(base, 'etc'),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      program: { command: [program.command[0]!, '-e', check, ...files], readOnlyPaths: program.readOnlyPaths },
    });
    const { code, output } = await run(launch);
    if (code === 0) return undefined;
    const said = output.trim().split('\n').slice(-2).join(' ').slice(0, 300) || `exit code ${code}`;
    return `${support.mode} failed: ${said}`;
  } catch (error) {
    return `${support.mode} failed: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

function run(launch: LaunchCommand): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(launch.file, launch.args, {
      env: launch.env,
      cwd: launch.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
      ...(launch.uid !== undefined ? { uid: launch.uid, gid: launch.gid } : {}),
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', (error) => resolve({ code: -1, output: error.message }));
    child.once('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

const detected = new Map<string, Promise<SandboxSupport>>();

/**
 * Detects sandbox support once per process (and machines root) and reports it: loudly when gitspaces are not
 * sandboxed.
 */
export function localSandbox(machinesRoot: string, logger: Logger): Promise<SandboxSupport> {
  let found = detected.get(machinesRoot);
  if (found) return found;
  found = detectSandbox(machinesRoot).then((support) => {
    const warning = sandboxWarning(support);
    if (warning) {
      logger.warn('local gitspaces are NOT sandboxed', { mode: support.mode, reason: support.reason });
      process.stderr.write(`${warning.join('\n')}\n`);
    } else {
      logger.info('local gitspaces run sandboxed', { mode: support.mode });
    }
    return support;
  });
  detected.set(machinesRoot, found);
  return found;
}

/** One line saying how local gitspaces are isolated (for `npm start`'s summary). */
export function sandboxSummary(support: SandboxSupport): string {
  switch (support.mode) {
    case 'bwrap-own-user':
      return 'sandboxed (bubblewrap; a user of its own per gitspace)';
    case 'bwrap-userns':
      return "sandboxed (bubblewrap in a user namespace; the runner's user id on the host)";
    case 'own-user':
      return 'NOT sandboxed (a user of its own per gitspace, but no bubblewrap)';
    case 'none':
      return "NOT sandboxed (every gitspace runs as the runner's user)";
  }
}

/** The loud warning printed when local gitspaces are not sandboxed; undefined when they are. */
export function sandboxWarning(support: SandboxSupport): string[] | undefined {
  if (isSandboxed(support)) return undefined;
  const bar = '!'.repeat(100);
  const what =
    support.mode === 'own-user'
      ? [
          '  Each gitspace runs as a user id of its own, so it cannot read the data dir (mode 0700) or another',
          "  gitspace's directory. But it sees the host's other world-readable files and every process, and nothing",
          '  but user ids separates it from the host.',
        ]
      : [
          "  Every gitspace's agent, shells, IDE and repository commands run as the runner's own user, with no",
          "  sandbox: a member can read the control plane's data dir (admin token, secrets key, database), every other",
          "  gitspace's workspace and processes, and anything else the runner's user can. Every member is in effect",
          '  an admin. Use this only when you are the only member.',
        ];
  return [
    bar,
    `!! WARNING: local gitspaces are NOT sandboxed (${support.reason ?? 'no sandbox is available'}).`,
    ...what,
    '  To sandbox them: install bubblewrap (apt-get install bubblewrap) and util-linux, and run the runner as root',
    '  or on a kernel that allows unprivileged user namespaces. README: "What the local sandbox isolates".',
    '  GITSPACES_LOCAL_SANDBOX=required makes the runner refuse to start without a sandbox.',
    bar,
  ];
}
