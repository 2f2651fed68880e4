import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, openSync, realpathSync, statSync } from 'node:fs';
import { chmod, chown, cp, mkdir, readFile, readdir, readlink, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../common/logger';
import { findExecutable } from '../../common/executable';
import { freeLoopbackPort } from '../../common/net';
import { InstanceNotFoundError } from '../../contracts/provider-errors';
import type {
  AgentBootstrap,
  CreateMachineRequest,
  MachineInfo,
  Provider,
  ProviderCallOptions,
} from '../../contracts/provider';
import {
  SANDBOX_UID_FIRST,
  SANDBOX_OWN_DIRS,
  SANDBOX_UID_LAST,
  agentProgram,
  hasOwnUsers,
  isWithin,
  launchCommand,
  localSandbox,
  ensureMachinesRoot,
  type SandboxSupport,
} from './sandbox';

export interface LocalProviderOptions {
  /** Where machine directories live: outside the control plane's data dir (see localMachinesRoot). */
  rootDir: string;
  logger: Logger;
  /** How long a stopping agent gets before SIGKILL. */
  stopGraceMs?: number;
  /** How agents are isolated; detected once per process when absent (see ./sandbox). */
  sandbox?: SandboxSupport;
  /** The VS Code server of `vscode-web` agents (GITSPACES_LOCAL_VSCODE_COMMAND, checked by localVscode). */
  vscode?: LocalVscode;
}

/** A local agent's VS Code server: its command (GITSPACE_VSCODE_COMMAND) and what of the host its sandbox reads. */
export interface LocalVscode {
  command: string;
  /** Its executable's directory, as named and real. */
  readOnlyPaths: string[];
}

/**
 * Checks a VS Code server command template for local agents (`<executable> <args with {port} and {workspace}>`) and
 * returns it with its executable as an absolute path, found on `searchPath` when given by name.
 */
export function localVscodeCommand(command: string, searchPath: string): string {
  const [name, ...args] = command.trim().split(/\s+/) as [string, ...string[]];
  const file = path.isAbsolute(name) ? name : name.includes('/') ? undefined : findExecutable(name, searchPath);
  if (!file || !isExecutableFile(file)) {
    throw new Error(
      `'${name}' is not an executable file${name.includes('/') ? '' : ' on the PATH'} (an absolute path or a name on the PATH)`,
    );
  }
  return [file, ...args].join(' ');
}

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function realPathIfThere(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}

/**
 * The VS Code server of local agents, from a command checked by localVscodeCommand: its executable's directory (as
 * named and real) becomes readable in every sandbox, so it must not hold more than the server. A directory that holds
 * one of `privateDirs` (the runner's data dir, machines dir, home) or a directory the sandbox keeps to itself (`/`
 * holds them all) is refused.
 */
export function localVscode(command: string, privateDirs: string[]): LocalVscode {
  const file = command.split(' ')[0]!;
  const readOnlyPaths = [...new Set([path.dirname(file), path.dirname(realpathSync(file))])];
  const hidden = [...privateDirs, ...SANDBOX_OWN_DIRS].flatMap((p) => [path.resolve(p), realPathIfThere(p)]);
  for (const dir of readOnlyPaths) {
    const held = hidden.find((p) => isWithin(p, dir));
    if (held) {
      throw new Error(
        `GITSPACES_LOCAL_VSCODE_COMMAND: every local gitspace would read ${dir}, which holds ${held}: put the VS Code server in a directory of its own`,
      );
    }
  }
  return { command, readOnlyPaths };
}

/** Where the local provider keeps machines by default: beside the data dir, never inside it. */
export function localMachinesRoot(dataDir: string): string {
  return `${path.resolve(dataDir)}-machines`;
}

/**
 * A local machine's files. The machine's own directory holds its workspace and home; it is owned by the gitspace's
 * user (mode 0700) and is the only host directory its sandbox may write. What the runner keeps about it (its record,
 * the agent's log, the sandbox's passwd) is under `.state/`, which no gitspace sees.
 */
export function localMachinePaths(rootDir: string, gitspaceId: string) {
  const dir = path.join(rootDir, safeName(gitspaceId));
  const state = path.join(rootDir, '.state', safeName(gitspaceId));
  return {
    dir,
    workspace: path.join(dir, 'workspace'),
    home: path.join(dir, 'home'),
    state,
    record: path.join(state, 'machine.json'),
    log: path.join(state, 'agent.log'),
  };
}

/** What the runner records about a local machine and its agent. */
interface MachineRecord {
  gitspaceId: string;
  ide: AgentBootstrap['ide'];
  createdAt: string;
  /** The machine's user id, when each gitspace has its own (the runner is root). */
  uid?: number;
  agent: RecordedAgent | null;
  /** The agent being started: recorded before it is spawned, so a runner that dies meanwhile can adopt it. */
  starting?: { instance: string };
}

interface RecordedAgent {
  pid: number;
  port: number;
  startTicks: string;
  /** Random per spawn, in the agent's environment: what tells this machine's agent from any other process. */
  instance?: string;
}

/** Environment variables a local agent inherits from the runner: never the runner's cloud credentials. */
const INHERITED_ENV = ['PATH', 'LANG', 'LC_ALL', 'TERM', 'TZ'] as const;

/**
 * The embedded default provider: a gitspace "machine" is a directory plus the agent process on a free loopback port.
 * The agent (and every shell and command it starts) runs in a sandbox (./sandbox), as a user of its own when the
 * runner is root. Agents run in their own session, detached from the runner, so a runner restart leaves gitspaces
 * running; a new runner adopts them through their record. Stop kills the agent and keeps the directory; delete
 * removes it.
 */
export function createLocalProvider(options: LocalProviderOptions): Provider {
  const { rootDir, logger } = options;
  const paths = (gitspaceId: string) => localMachinePaths(rootDir, gitspaceId);
  const sandbox = () => (options.sandbox ? Promise.resolve(options.sandbox) : localSandbox(rootDir, logger));

  const readRecord = async (gitspaceId: string): Promise<MachineRecord | null> => readRecordFile(paths(gitspaceId));
  const writeRecord = async (record: MachineRecord) => {
    const { state, record: file } = paths(record.gitspaceId);
    await mkdir(state, { recursive: true, mode: 0o700 });
    await writeFile(`${file}.tmp`, JSON.stringify(record, null, 2), { mode: 0o600 });
    await rename(`${file}.tmp`, file);
  };

  const toInfo = async (record: MachineRecord): Promise<MachineInfo> => {
    const running = record.agent !== null && (await isSameProcess(record.agent.pid, record.agent.startTicks));
    return {
      gitspaceId: record.gitspaceId,
      providerId: safeName(record.gitspaceId),
      status: running ? 'running' : 'stopped',
      ...(running && record.agent ? { agentUrl: `http://127.0.0.1:${record.agent.port}` } : {}),
      disks: [paths(record.gitspaceId).workspace],
      labels: { 'gitspace-id': record.gitspaceId },
    };
  };

  /** Agent processes of this machine: found by the instance recorded for it, and (own users) its user id. */
  const agentsOf = async (record: MachineRecord) => {
    const instances = [record.starting?.instance, record.agent?.instance].filter((i): i is string => !!i);
    return (await agentProcessesIn(paths(record.gitspaceId).dir)).filter(
      (agent) =>
        agent.instance !== undefined &&
        instances.includes(agent.instance) &&
        (record.uid === undefined || agent.uid === record.uid),
    );
  };

  /** The machine's user: one of its own when the runner can give it one, claimed once and kept in its record. */
  const ensureUser = async (record: MachineRecord, support: SandboxSupport): Promise<MachineRecord> => {
    if (!hasOwnUsers(support) || record.uid !== undefined) return record;
    const uid = await claimUid(rootDir, record.gitspaceId);
    // A machine from before it had a user (an older version, or a runner that was not root): hand its files over.
    // chown -R never follows symbolic links; no agent of this machine is running now.
    await runCommand('chown', ['-R', '-h', `${uid}:${uid}`, '--', paths(record.gitspaceId).dir]);
    const next = { ...record, uid };
    await writeRecord(next);
    return next;
  };

  const bootAgent = async (initial: MachineRecord, bootstrap: AgentBootstrap): Promise<MachineRecord> => {
    const current = await toInfo(initial);
    if (current.status === 'running') return initial;
    const support = await sandbox();
    const files = paths(initial.gitspaceId);
    // A runner that died between spawning an agent and recording it left that agent running: adopt it, so a
    // retried step never starts a second one.
    const [stray, ...extra] = await agentsOf(initial);
    for (const other of extra) await killProcess(other.pid, other.startTicks);
    if (stray) {
      const adopted: MachineRecord = { ...initial, agent: stray, starting: undefined };
      await writeRecord(adopted);
      logger.info('adopted an unrecorded local agent', { gitspaceId: initial.gitspaceId, pid: stray.pid });
      return adopted;
    }
    let record = await ensureUser(initial, support);
    const instance = randomBytes(16).toString('hex');
    record = { ...record, ide: bootstrap.ide, agent: null, starting: { instance } };
    await writeRecord(record);

    const port = await freeLoopbackPort();
    const env: Record<string, string> = {};
    for (const name of INHERITED_ENV) if (process.env[name] !== undefined) env[name] = process.env[name]!;
    Object.assign(env, {
      GITSPACE_ID: record.gitspaceId,
      GITSPACE_WORKSPACE_DIR: files.workspace,
      GITSPACE_IDE: bootstrap.ide,
      GITSPACE_AGENT_HOST: '127.0.0.1',
      GITSPACE_AGENT_PORT: String(port),
      GITSPACE_AGENT_INSTANCE: instance,
      // The secret comes on the agent's stdin, never in an environment that /proc or a child could show.
      GITSPACE_AGENT_SECRET_FD: '0',
      SHELL: '/bin/bash',
      ...(options.vscode ? { GITSPACE_VSCODE_COMMAND: options.vscode.command } : {}),
    });
    const program = agentProgram();
    const launch = await launchCommand(support, {
      gitspaceId: record.gitspaceId,
      machineDir: files.dir,
      homeDir: files.home,
      ...(record.uid !== undefined ? { uid: record.uid } : {}),
      etcDir: path.join(files.state, 'etc'),
      env,
      program: { ...program, readOnlyPaths: [...program.readOnlyPaths, ...(options.vscode?.readOnlyPaths ?? [])] },
    });
    const log = openSync(files.log, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(launch.file, launch.args, {
        cwd: launch.cwd,
        env: launch.env,
        detached: true,
        stdio: ['pipe', log, log],
        ...(launch.uid !== undefined ? { uid: launch.uid, gid: launch.gid } : {}),
      });
    } finally {
      closeSync(log);
    }
    child.stdin!.on('error', () => {
      // The agent died before reading its secret: its exit is reported below.
    });
    child.stdin!.end(bootstrap.agentSecret);
    child.unref();
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    // In a sandbox the spawned process is bubblewrap: the agent is found by its instance.
    const agent = await waitForAgent(record, child, port);
    const next: MachineRecord = { ...record, agent, starting: undefined };
    await writeRecord(next);
    logger.info('local agent started', { gitspaceId: record.gitspaceId, pid: agent.pid, port, sandbox: support.mode });
    return next;
  };

  const waitForAgent = async (record: MachineRecord, child: ChildProcess, port: number): Promise<RecordedAgent> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const [found] = await agentsOf(record);
      if (found) return { ...found, port };
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        const said = (await readFile(paths(record.gitspaceId).log, 'utf8').catch(() => ''))
          .trim()
          .split('\n')
          .slice(-3)
          .join(' | ');
        throw new Error(
          `the local agent of gitspace '${record.gitspaceId}' did not start${said ? `: ${said}` : ''} (sandbox log: ${
            paths(record.gitspaceId).log
          })`,
        );
      }
      await sleep(100);
    }
  };

  const killProcess = async (pid: number, startTicks: string): Promise<void> => {
    signal(-pid, 'SIGTERM');
    signal(pid, 'SIGTERM');
    const deadline = Date.now() + (options.stopGraceMs ?? 5000);
    while (Date.now() < deadline && (await isSameProcess(pid, startTicks))) await sleep(50);
    signal(-pid, 'SIGKILL');
    signal(pid, 'SIGKILL');
    while (await isSameProcess(pid, startTicks)) await sleep(20);
  };

  /**
   * Stops the recorded agent and any unrecorded one of the same machine (left by a runner that died), then everything
   * else the gitspace still runs: a background job or a server started over SSH lives in a session of its own, which
   * the agent's process group does not reach, and would keep running (on the host's network) after the stop.
   */
  const killAgent = async (record: MachineRecord): Promise<void> => {
    const agents: { pid: number; startTicks: string }[] = await agentsOf(record);
    if (record.agent && !agents.some((a) => a.pid === record.agent?.pid)) agents.push(record.agent);
    // The sandbox's pid namespace, read while its agent still runs.
    const namespaces = new Set(
      (await Promise.all(agents.map((a) => pidNamespaceOf(a.pid)))).filter((ns): ns is string => ns !== undefined),
    );
    for (const agent of agents) await killProcess(agent.pid, agent.startTicks);
    const left = await gitspaceProcesses(record.uid, namespaces);
    await Promise.all(left.map((stray) => killProcess(stray.pid, stray.startTicks)));
    if (agents.length + left.length > 0) {
      logger.info('local agent stopped', {
        gitspaceId: record.gitspaceId,
        pids: agents.map((a) => a.pid),
        ...(left.length > 0 ? { othersStopped: left.map((p) => p.pid) } : {}),
      });
    }
  };

  return {
    name: 'local',

    async create(request: CreateMachineRequest, _options: ProviderCallOptions): Promise<MachineInfo> {
      let record = await readRecord(request.gitspaceId);
      if (!record) {
        const support = await sandbox();
        await ensureMachinesRoot(rootDir);
        const uid = hasOwnUsers(support) ? await claimUid(rootDir, request.gitspaceId) : undefined;
        const files = paths(request.gitspaceId);
        // No agent has run in it yet (its record comes after), so nothing in it can be a planted link.
        for (const dir of [files.dir, files.home]) {
          await mkdir(dir, { recursive: true, mode: 0o700 });
          if (uid !== undefined) await chown(dir, uid, uid);
          await chmod(dir, 0o700);
        }
        record = {
          gitspaceId: request.gitspaceId,
          ide: request.bootstrap.ide,
          createdAt: new Date().toISOString(),
          ...(uid !== undefined ? { uid } : {}),
          agent: null,
        };
        await writeRecord(record);
      }
      return toInfo(await bootAgent(record, request.bootstrap));
    },

    async describe(gitspaceId: string): Promise<MachineInfo | null> {
      const record = await readRecord(gitspaceId);
      return record ? toInfo(record) : null;
    },

    async start(gitspaceId: string, bootstrap: AgentBootstrap): Promise<MachineInfo> {
      const record = await readRecord(gitspaceId);
      if (!record) throw new InstanceNotFoundError(gitspaceId, 'local');
      return toInfo(await bootAgent(record, bootstrap));
    },

    async stop(gitspaceId: string): Promise<void> {
      const record = await readRecord(gitspaceId);
      if (!record) return;
      await killAgent(record);
      await writeRecord({ ...record, agent: null, starting: undefined });
    },

    async delete(gitspaceId: string): Promise<void> {
      const record = await readRecord(gitspaceId);
      if (record) await killAgent(record);
      const files = paths(gitspaceId);
      await rm(files.dir, { recursive: true, force: true });
      // The user id is free again only once no file of it is left; the record goes last.
      if (record?.uid !== undefined) await releaseUid(rootDir, gitspaceId, record.uid);
      await rm(files.state, { recursive: true, force: true });
    },

    async list(): Promise<MachineInfo[]> {
      let names: string[];
      try {
        names = await readdir(path.join(rootDir, '.state'));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw error;
      }
      const records = await Promise.all(
        names.filter((name) => GITSPACE_ID_PATTERN.test(name)).map((name) => readRecord(name)),
      );
      return Promise.all(records.filter((r): r is MachineRecord => r !== null).map(toInfo));
    },
  };
}

async function readRecordFile(files: { record: string }): Promise<MachineRecord | null> {
  try {
    return JSON.parse(await readFile(files.record, 'utf8')) as MachineRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Where user ids are claimed: one registry for the whole host, so two installations never share an id. */
export const HOST_UID_REGISTRY = '/var/lib/gitspaces/uids';

/** The host's registry, or (when it cannot be made, e.g. a read-only /var) one in the machines root. */
async function uidRegistry(rootDir: string): Promise<string> {
  try {
    await mkdir(HOST_UID_REGISTRY, { recursive: true, mode: 0o700 });
    return HOST_UID_REGISTRY;
  } catch {
    const local = path.join(rootDir, '.uids');
    await mkdir(local, { recursive: true, mode: 0o700 });
    return local;
  }
}

const claimText = (rootDir: string, gitspaceId: string) => `${rootDir}\n${gitspaceId}\n`;

/**
 * Claims a user id of the provider's range for a gitspace: a file per id, created exclusively, so no two gitspaces
 * (of this or another installation on the host) ever get one id. A claim an earlier attempt left for the same
 * gitspace is reused.
 */
async function claimUid(rootDir: string, gitspaceId: string): Promise<number> {
  const registry = await uidRegistry(rootDir);
  const ours = claimText(rootDir, gitspaceId);
  const claimed = await readdir(registry);
  for (const name of claimed) {
    if ((await readFile(path.join(registry, name), 'utf8').catch(() => '')) === ours) return Number(name);
  }
  const taken = new Set(claimed);
  for (let uid = SANDBOX_UID_FIRST; uid <= SANDBOX_UID_LAST; uid++) {
    if (taken.has(String(uid))) continue;
    try {
      await writeFile(path.join(registry, String(uid)), ours, { flag: 'wx', mode: 0o600 });
      return uid;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  throw new Error(`no free user id left for local gitspaces (${SANDBOX_UID_FIRST}-${SANDBOX_UID_LAST})`);
}

/** Gives a gitspace's user id back (only the claim this gitspace holds). */
async function releaseUid(rootDir: string, gitspaceId: string, uid: number): Promise<void> {
  const local = path.join(rootDir, '.uids');
  for (const registry of [HOST_UID_REGISTRY, local]) {
    const file = path.join(registry, String(uid));
    const claim = await readFile(file, 'utf8').catch(() => '');
    // A machines root's own registry once held the gitspace id alone.
    if (claim === claimText(rootDir, gitspaceId) || (registry === local && claim === gitspaceId)) {
      await rm(file, { force: true });
    }
  }
}

/**
 * Moves machines an older version kept inside the data dir (`<dataDir>/machines/<id>/workspace`) to `rootDir`: their
 * agents, which ran unsandboxed, are stopped, and their workspaces moved, to be started in the sandbox next time.
 * Returns the gitspace ids moved.
 */
export async function migrateLegacyMachines(legacyRoot: string, rootDir: string, logger: Logger): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir(legacyRoot)).filter((name) => GITSPACE_ID_PATTERN.test(name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const moved: string[] = [];
  await ensureMachinesRoot(rootDir);
  for (const id of names) {
    // One runner moves each machine: the first to rename it away.
    const claimed = path.join(legacyRoot, `.migrating-${id}-${process.pid}`);
    try {
      await rename(path.join(legacyRoot, id), claimed);
    } catch {
      continue;
    }
    const old = JSON.parse(await readFile(path.join(claimed, 'machine.json'), 'utf8').catch(() => '{}')) as {
      ide?: AgentBootstrap['ide'];
      createdAt?: string;
      agent?: { pid: number; startTicks: string } | null;
    };
    const agents: { pid: number; startTicks: string }[] = await agentProcessesIn(path.join(legacyRoot, id));
    if (old.agent) agents.push(old.agent);
    for (const agent of agents) {
      signal(-agent.pid, 'SIGKILL');
      signal(agent.pid, 'SIGKILL');
      while (await isSameProcess(agent.pid, agent.startTicks)) await sleep(20);
    }
    const files = localMachinePaths(rootDir, id);
    if ((await readRecordFile(files)) === null) {
      await mkdir(files.home, { recursive: true, mode: 0o700 });
      await chmod(files.dir, 0o700);
      try {
        await rename(path.join(claimed, 'workspace'), files.workspace);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EXDEV') await cp(path.join(claimed, 'workspace'), files.workspace, { recursive: true });
        else if (code !== 'ENOENT') throw error;
      }
      await mkdir(files.state, { recursive: true, mode: 0o700 });
      const record: MachineRecord = {
        gitspaceId: id,
        ide: old.ide ?? 'terminal',
        createdAt: old.createdAt ?? new Date().toISOString(),
        agent: null,
      };
      await writeFile(files.record, JSON.stringify(record, null, 2), { mode: 0o600 });
    }
    await rm(claimed, { recursive: true, force: true });
    moved.push(id);
    logger.warn('moved a local machine out of the data dir; its unsandboxed agent was stopped', { gitspaceId: id });
  }
  return moved;
}

/** Gitspace ids are generated, but a directory name must never be able to climb out of the root. */
const GITSPACE_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
function safeName(gitspaceId: string): string {
  if (!GITSPACE_ID_PATTERN.test(gitspaceId)) throw new Error(`invalid gitspace id '${gitspaceId}'`);
  return gitspaceId;
}

/**
 * The kernel's start time of a process (field 22 of /proc/PID/stat): together with the pid it names one process, so
 * a pid reused after a host restart is never mistaken for the agent.
 */
async function processStartTicks(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Zombies (state Z) have exited: they only wait to be reaped by their parent.
    if (fields[0] === 'Z') return null;
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

async function isSameProcess(pid: number, startTicks: string): Promise<boolean> {
  const ticks = await processStartTicks(pid);
  return ticks !== null && ticks === startTicks;
}

const AGENT_MAIN_PATTERN = /agent\/main\.(ts|js)$/;

export interface AgentProcess {
  pid: number;
  port: number;
  startTicks: string;
  /** GITSPACE_AGENT_INSTANCE of its environment (absent for agents of older versions). */
  instance?: string;
  /** Its real user id on the host. */
  uid: number;
}

/**
 * Agent processes serving a machine directory, found by the workspace in their environment (/proc/PID/environ):
 * the ground truth when the machine's record missed a spawn. Anything in a sandbox can fake an environment and a
 * command line, so the provider trusts only those whose instance (and user) its record names.
 */
export async function agentProcessesIn(dir: string): Promise<AgentProcess[]> {
  const workspace = `GITSPACE_WORKSPACE_DIR=${path.join(dir, 'workspace')}`;
  const found: AgentProcess[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    // Only an agent runs agent/main (its shells and commands inherit its environment, not its command line). The short
    // command line is read first, so the environment is read only of agents, not of every process on the host.
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.split('\0').some((arg) => AGENT_MAIN_PATTERN.test(arg))) continue;
    const environ = (await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '')).split('\0');
    if (!environ.includes(workspace)) continue;
    const value = (name: string) => environ.find((v) => v.startsWith(`${name}=`))?.slice(name.length + 1);
    const port = Number(value('GITSPACE_AGENT_PORT'));
    const instance = value('GITSPACE_AGENT_INSTANCE');
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    const startTicks = await processStartTicks(Number(entry));
    if (startTicks !== null && Number.isInteger(port)) {
      found.push({ pid: Number(entry), port, startTicks, uid, ...(instance ? { instance } : {}) });
    }
  }
  return found;
}

/** The pid namespace of a process (`pid:[inode]`); undefined once it is gone. */
async function pidNamespaceOf(pid: number): Promise<string | undefined> {
  return readlink(`/proc/${pid}/ns/pid`).catch(() => undefined);
}

/**
 * The processes of one gitspace still running on the host: every process of its own user id (given only to it), and
 * every process in its sandbox's pid namespace. Never this runner's: its namespace is not one a sandbox gets.
 */
async function gitspaceProcesses(
  uid: number | undefined,
  namespaces: Set<string>,
): Promise<{ pid: number; startTicks: string }[]> {
  namespaces.delete((await pidNamespaceOf(process.pid)) ?? '');
  if (uid === undefined && namespaces.size === 0) return [];
  const found: { pid: number; startTicks: string }[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    const owned = uid !== undefined && Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1) === uid;
    if (!owned && !namespaces.has((await pidNamespaceOf(Number(entry))) ?? '')) continue;
    const startTicks = await processStartTicks(Number(entry));
    if (startTicks !== null) found.push({ pid: Number(entry), startTicks });
  }
  return found;
}

function runCommand(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${file} ${args.join(' ')} failed: ${stderr.trim()}`)),
    );
  });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
