import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from '../../common/logger';
import { freeLoopbackPort } from '../../common/net';
import { InstanceNotFoundError } from '../errors';
import type { AgentBootstrap, CreateMachineRequest, MachineInfo, Provider, ProviderCallOptions } from '../types';

export interface LocalProviderOptions {
  /** Where machine directories live (the runner's data dir / machines). */
  rootDir: string;
  logger: Logger;
  /** How long a stopping agent gets before SIGKILL. */
  stopGraceMs?: number;
}

/** What a local machine directory records about its agent; `machine.json` beside `workspace/`. */
interface MachineRecord {
  gitspaceId: string;
  ide: AgentBootstrap['ide'];
  createdAt: string;
  agent: { pid: number; port: number; startTicks: string } | null;
}

/** Environment variables a local agent inherits from the runner: never the runner's cloud credentials. */
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'SHELL', 'LANG', 'LC_ALL', 'TERM', 'TZ'] as const;

/**
 * The embedded default provider: a gitspace "machine" is a directory plus the agent process on a free loopback port.
 * Agents run in their own process group, detached from the runner, so a runner restart leaves gitspaces running; a
 * new runner adopts them through `machine.json`. Stop kills the agent and keeps the directory; delete removes it.
 */
export function createLocalProvider(options: LocalProviderOptions): Provider {
  const { rootDir, logger } = options;
  const machineDir = (gitspaceId: string) => path.join(rootDir, safeName(gitspaceId));
  const recordFile = (gitspaceId: string) => path.join(machineDir(gitspaceId), 'machine.json');

  const readRecord = async (gitspaceId: string): Promise<MachineRecord | null> => {
    try {
      return JSON.parse(await readFile(recordFile(gitspaceId), 'utf8')) as MachineRecord;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  };
  const writeRecord = async (record: MachineRecord) => {
    const file = recordFile(record.gitspaceId);
    await writeFile(`${file}.tmp`, JSON.stringify(record, null, 2));
    await rename(`${file}.tmp`, file);
  };

  const toInfo = async (record: MachineRecord): Promise<MachineInfo> => {
    const running = record.agent !== null && (await isSameProcess(record.agent.pid, record.agent.startTicks));
    return {
      gitspaceId: record.gitspaceId,
      providerId: safeName(record.gitspaceId),
      status: running ? 'running' : 'stopped',
      ...(running && record.agent ? { agentUrl: `http://127.0.0.1:${record.agent.port}` } : {}),
      disks: [path.join(machineDir(record.gitspaceId), 'workspace')],
      labels: { 'gitspace-id': record.gitspaceId },
    };
  };

  const bootAgent = async (record: MachineRecord, bootstrap: AgentBootstrap): Promise<MachineRecord> => {
    const current = await toInfo(record);
    if (current.status === 'running') return record;
    const dir = machineDir(record.gitspaceId);
    // A runner that died between spawning an agent and recording it left that agent running: adopt it, so a
    // retried step never starts a second one.
    const [stray, ...extra] = await agentProcessesIn(dir);
    for (const other of extra) await killProcess(other.pid, other.startTicks);
    if (stray) {
      const adopted: MachineRecord = { ...record, agent: stray };
      await writeRecord(adopted);
      logger.info('adopted an unrecorded local agent', { gitspaceId: record.gitspaceId, pid: stray.pid });
      return adopted;
    }
    const port = await freeLoopbackPort();
    const log = openSync(path.join(dir, 'agent.log'), 'a');
    const env: NodeJS.ProcessEnv = {};
    for (const name of INHERITED_ENV) if (process.env[name] !== undefined) env[name] = process.env[name];
    Object.assign(env, {
      GITSPACE_ID: record.gitspaceId,
      GITSPACE_AGENT_SECRET: bootstrap.agentSecret,
      GITSPACE_WORKSPACE_DIR: path.join(dir, 'workspace'),
      GITSPACE_IDE: bootstrap.ide,
      GITSPACE_AGENT_HOST: '127.0.0.1',
      GITSPACE_AGENT_PORT: String(port),
    });
    const [command, ...args] = agentCommand();
    const child = spawn(command!, args, { cwd: dir, env, detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', reject);
    });
    const next: MachineRecord = {
      ...record,
      ide: bootstrap.ide,
      agent: { pid, port, startTicks: (await processStartTicks(pid)) ?? '' },
    };
    await writeRecord(next);
    logger.info('local agent started', { gitspaceId: record.gitspaceId, pid, port });
    return next;
  };

  const killProcess = async (pid: number, startTicks: string): Promise<void> => {
    signal(-pid, 'SIGTERM');
    const deadline = Date.now() + (options.stopGraceMs ?? 5000);
    while (Date.now() < deadline && (await isSameProcess(pid, startTicks))) await sleep(50);
    signal(-pid, 'SIGKILL');
    while (await isSameProcess(pid, startTicks)) await sleep(20);
  };

  /** Stops the recorded agent and any unrecorded one of the same machine (left by a runner that died). */
  const killAgent = async (record: MachineRecord): Promise<void> => {
    const agents = await agentProcessesIn(machineDir(record.gitspaceId));
    if (record.agent && !agents.some((a) => a.pid === record.agent?.pid)) agents.push(record.agent);
    for (const agent of agents) await killProcess(agent.pid, agent.startTicks);
    if (agents.length > 0)
      logger.info('local agent stopped', { gitspaceId: record.gitspaceId, pids: agents.map((a) => a.pid) });
  };

  return {
    name: 'local',

    async create(request: CreateMachineRequest, _options: ProviderCallOptions): Promise<MachineInfo> {
      let record = await readRecord(request.gitspaceId);
      if (!record) {
        await mkdir(path.join(machineDir(request.gitspaceId)), { recursive: true });
        record = {
          gitspaceId: request.gitspaceId,
          ide: request.bootstrap.ide,
          createdAt: new Date().toISOString(),
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
      await writeRecord({ ...record, agent: null });
    },

    async delete(gitspaceId: string): Promise<void> {
      const record = await readRecord(gitspaceId);
      if (record) await killAgent(record);
      await rm(machineDir(gitspaceId), { recursive: true, force: true });
    },

    async list(): Promise<MachineInfo[]> {
      let names: string[];
      try {
        names = await readdir(rootDir);
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

/** The agent runs from compiled JavaScript when the runner does, and through tsx from the TypeScript source otherwise. */
function agentCommand(): string[] {
  const agentMain = path.resolve(__dirname, '../../agent', `main${path.extname(__filename)}`);
  if (agentMain.endsWith('.js')) return [process.execPath, agentMain];
  return [process.execPath, '--import', pathToFileURL(require.resolve('tsx')).href, agentMain];
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

/**
 * Agent processes serving a machine directory, found by the workspace in their environment (/proc/PID/environ):
 * the ground truth when machine.json missed a spawn.
 */
export async function agentProcessesIn(dir: string): Promise<{ pid: number; port: number; startTicks: string }[]> {
  const workspace = `GITSPACE_WORKSPACE_DIR=${path.join(dir, 'workspace')}`;
  const found: { pid: number; port: number; startTicks: string }[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = (await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '')).split('\0');
    if (!environ.includes(workspace)) continue;
    // Shells and commands the agent starts inherit its environment: only the agent itself runs agent/main.
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.split('\0').some((arg) => AGENT_MAIN_PATTERN.test(arg))) continue;
    const port = Number(
      environ.find((v) => v.startsWith('GITSPACE_AGENT_PORT='))?.slice('GITSPACE_AGENT_PORT='.length),
    );
    const startTicks = await processStartTicks(Number(entry));
    if (startTicks !== null && Number.isInteger(port)) found.push({ pid: Number(entry), port, startTicks });
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
