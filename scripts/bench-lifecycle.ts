import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import type { temporal as proto } from '@temporalio/proto';
import { lifecycleWorkflowId } from '../contracts/lifecycle';
import { SIMULATED_PROVIDER } from '../contracts/provider';
import { createLogger } from '../common/logger';
import { connectClient } from '../common/temporal-connection';
import type { DevServer } from '../engine/dev-server';
import { agentProcessesIn, localMachinePaths } from '../providers/local/provider';
import { startGitServer, type GitServer } from '../test/support/git-server';
import { startLoopbackStack, type LoopbackStack } from './processes';
import { cpuSeconds, nearestRank, table } from './bench-figures';

/**
 * `npm run bench:lifecycle`: the lifecycle's speed at scale (issue 16) beside the issue's reference figures. The real
 * parts, each in its own process as `npm start` runs them (API with PGlite and the control-plane worker, runner,
 * gateway, the Temporal dev server), the embedded `local` provider and a small repository on a loopback git server:
 * sequential create → running → stop → delete, then many created at once, the RSS of every process, and where one
 * start's time went according to its Temporal history. Figures only: it fails only when a gitspace does not converge.
 *
 * `--provider simulated` measures the orchestration instead of the host's ability to run agents: the gitspaces run on
 * a `simulated` infrastructure (providers/simulated: machines that boot in `--boot-seconds` and whose agent the runner
 * answers itself), with the parts started with GITSPACES_ENABLE_SIMULATED_PROVIDER=1. `--sweep 50,200,1000` creates
 * that many at once, one level after the other, each deleted before the next.
 *
 *   npm run bench:lifecycle -- [--provider local|simulated] [--boot-seconds 2] [--sequential 20]
 *     [--concurrent 50 | --sweep 50,200,1000] [--timeout 300] [--json]
 *     [--warm-pool 10 --resume-seconds 0.5]
 *
 * `--warm-pool N` (simulated only) then gives the machine a warm pool of N, waits until it is ready, and runs N more
 * sequential lifecycles: each first start adopts a pooled machine and boots it in `--resume-seconds` (a stopped,
 * prepared machine) instead of making one in `--boot-seconds`. Both figures are printed side by side.
 */

/**
 * The "Now" and "Goal" columns of the table in issue 16 ("Speed at scale"), measured there on a fresh clone on a 2-core
 * machine (load ≈ 3) with 20 sequential and 50 concurrent gitspaces. Kept as text: they are quoted, not computed.
 */
const ISSUE_16 = {
  sequential: { now: '1.98 / 2.31 / – / 2.50 s', goal: 'p50 ≤ 1.0 s, p99 ≤ 2.5 s' },
  stopDelete: { now: '0.41 / 0.39 s (p50)', goal: '≤ 0.5 s (keep it)' },
  postLatency: { now: '1.37 / – / 4.87 s', goal: 'p99 ≤ 200 ms' },
  firstLastRunning: { now: '21.2 / 39.4 s (1.3 starts/s)', goal: '≥ 50 starts/s' },
  agentRss: { now: '74 MB', goal: '≤ 40 MB' },
  apiRss: { now: '755 → 876 MB after 50 lifecycles', goal: 'steady, and explained' },
} as const;

const SEQUENTIAL_POLL_MS = 100;
const CONCURRENT_POLL_MS = 500;
/** How many event lists the benchmark reads at once when it dates a level's starts. */
const EVENT_READS_AT_ONCE = 20;
/** The infrastructure a `--provider simulated` run registers, and the one its runner serves. */
const SIMULATED_INFRASTRUCTURE = 'bench-simulated';

interface Options {
  provider: 'local' | typeof SIMULATED_PROVIDER;
  bootSeconds: number;
  /** How long a stopped simulated machine takes to boot; the boot time when absent. */
  resumeSeconds?: number;
  /** After the sequential runs, this many more with a warm pool of this size (simulated only; 0: none). */
  warmPool: number;
  sequential: number;
  /** How many are created at once, level after level (`--sweep`, or the one `--concurrent`). */
  sweep: number[];
  timeoutMs: number;
  json: boolean;
  /**
   * The dev server keeps its state in memory: its SQLite file (npm start's) is a limit of its own, about half the
   * starts per second here, that a production Temporal's database is not.
   */
  temporalInMemory: boolean;
}

/** The infrastructure and catalogue machine the benchmark's gitspaces run on. */
interface Target {
  infrastructureId: string;
  machineId: string;
}

/** One gitspace's lifecycle, in ms from the request that began each step to the state's event. */
interface SequentialRun {
  id: string;
  name: string;
  startRunId: string;
  runningMs?: number;
  stopMs?: number;
  deleteMs?: number;
  failure?: string;
}

/** RSS in MB of each part, and of the agents running then (one figure per gitspace). */
interface RssSample {
  parts: Record<'api' | 'runner' | 'gateway' | 'temporal', number | undefined>;
  agents: number[];
}

/** CPU seconds (user + system, all threads) each part used, and this benchmark's own process. */
type CpuSample = Record<'api' | 'runner' | 'gateway' | 'temporal' | 'benchmark', number | undefined>;

/** What the benchmark reads of a gitspace as the API presents it. */
interface GitspaceView {
  id: string;
  state: string;
  lastError?: unknown;
  operation?: { runId: string; status: string };
}

class Api {
  constructor(
    readonly url: string,
    private readonly token: string,
  ) {}

  /** Calls the REST API; a 409 (an operation still running) is retried until the deadline, as a user would. */
  async call<T = unknown>(method: string, route: string, body?: unknown, deadline = Date.now() + 60_000): Promise<T> {
    for (;;) {
      const response = await fetch(`${this.url}/api/v1${route}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await response.text();
      if (response.ok) return (text ? JSON.parse(text) : undefined) as T;
      if (response.status !== 409 || Date.now() > deadline) {
        throw new Error(`${method} ${route}: ${response.status} ${text.slice(0, 300)}`);
      }
      await sleep(100);
    }
  }
}

async function main(): Promise<number> {
  const options = readOptions();
  // The machine's load before this run adds its own.
  const loadAverage = os.loadavg().map((l) => Number(l.toFixed(2)));
  const logger = createLogger('bench', 'warn');
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  let git: GitServer | undefined;
  let stack: LoopbackStack | undefined;
  // The parts' last output lines, shown when something does not converge.
  const recentOutput: string[] = [];
  try {
    git = await startGitServer();
    await git.createRepository('small', {
      'README.md': '# small\n',
      'src/index.js': 'console.log("hello");\n',
      'package.json': '{ "name": "small", "version": "1.0.0" }\n',
    });
    const adminToken = randomBytes(24).toString('base64url');
    stack = await startLoopbackStack({
      name: 'bench-lifecycle',
      logger,
      adminToken,
      gatewayAdminToken: randomBytes(24).toString('base64url'),
      temporalInMemory: options.temporalInMemory,
      extra: {
        // The benchmark's own polling and its burst of creates are not what the API's per-user limits are for.
        GITSPACES_API_RATE_LIMIT_PER_MINUTE: '1000000',
        GITSPACES_MAX_GITSPACES_PER_USER: String(Math.max(...options.sweep) + 10),
        ...(options.provider === SIMULATED_PROVIDER
          ? { GITSPACES_ENABLE_SIMULATED_PROVIDER: '1', GITSPACES_INFRASTRUCTURE_ID: SIMULATED_INFRASTRUCTURE }
          : {}),
      },
      output: (line) => {
        recentOutput.push(line);
        if (recentOutput.length > 40) recentOutput.shift();
      },
    });
    // From a ready Temporal to a ready API (the issue: 12–22 s, the workflow bundle built at start).
    const apiReadySeconds = stack.partsReadyMs / 1000;
    progress(`API ready ${apiReadySeconds.toFixed(1)} s after Temporal (API, runner, gateway on loopback)`);

    const api = new Api(stack.apiUrl, adminToken);
    const { machinesRoot } = stack;
    const target = await prepareTarget(api, stack, options);
    const createBody = (name: string) => ({
      name,
      repository: { url: git!.urlOf('small') },
      ...target,
    });
    const rssBefore = await sampleRss(stack, machinesRoot, []);

    // The first start pays for cold caches (the runner's first poll, the agent's first compile): shown, not counted.
    progress('warm-up lifecycle');
    const warmUp = await sequentialLifecycle(api, createBody('bench-warm-up'), options.timeoutMs);
    const sequential: SequentialRun[] = [];
    const agentRssSequential: number[] = [];
    for (let i = 1; i <= options.sequential; i++) {
      const run = await sequentialLifecycle(api, createBody(`bench-seq-${i}`), options.timeoutMs, async (id) => {
        agentRssSequential.push(...(await sampleRss(stack!, machinesRoot, [id])).agents);
      });
      sequential.push(run);
      progress(
        `sequential ${i}/${options.sequential}: ${run.failure ?? `running ${ms(run.runningMs)}, stop ${ms(run.stopMs)}, delete ${ms(run.deleteMs)}`}`,
      );
    }

    const pooled: SequentialRun[] = [];
    if (options.warmPool > 0) {
      progress(`warm pool of ${options.warmPool}: filling`);
      await fillWarmPool(api, target, options.warmPool, options.timeoutMs);
      for (let i = 1; i <= options.warmPool; i++) {
        const run = await sequentialLifecycle(api, createBody(`bench-pooled-${i}`), options.timeoutMs);
        pooled.push(run);
        progress(`from the pool ${i}/${options.warmPool}: ${run.failure ?? `running ${ms(run.runningMs)}`}`);
      }
      await api.call('PATCH', `/infrastructures/${target.infrastructureId}/machines/${target.machineId}`, {
        warmPoolSize: 0,
      });
    }

    const breakdown = await breakDownMedianStart(stack.temporal, sequential.length > 0 ? sequential : [warmUp]);

    const sweep: SweepLevel[] = [];
    for (const count of options.sweep) {
      progress(`${count} created at once`);
      sweep.push(await sweepLevel(api, stack, createBody, count, options));
      const level = sweep.at(-1)!;
      progress(
        `${count} at once: ${level.running} running, ${level.errored.length} in error, ${level.stuck.length} stuck; ` +
          `last running after ${ms(level.lastRunningMs)}`,
      );
    }
    const rssAfter = await sampleRss(stack, machinesRoot, []);

    const failures = [
      ...(warmUp.failure ? [`${warmUp.name}: ${warmUp.failure}`] : []),
      ...[...sequential, ...pooled].filter((r) => r.failure).map((r) => `${r.name} (${r.id}): ${r.failure}`),
      ...sweep.flatMap((level) => [...level.postFailures, ...level.errored, ...level.stuck, ...level.deleteFailures]),
    ];
    const figures: Figures = {
      machine: { cpus: os.cpus().length, loadAverageBefore: loadAverage },
      provider:
        options.provider === SIMULATED_PROVIDER
          ? `simulated, ${options.bootSeconds} s boot${options.resumeSeconds !== undefined ? `, ${options.resumeSeconds} s resume` : ''}`
          : 'local',
      temporalStore: options.temporalInMemory ? 'in memory' : 'SQLite file',
      apiReadyAfterTemporalSeconds: apiReadySeconds,
      warmUp: { runningMs: warmUp.runningMs, stopMs: warmUp.stopMs, deleteMs: warmUp.deleteMs },
      sequential: {
        count: options.sequential,
        runningMs: percentiles(sequential.map((r) => r.runningMs)),
        stopMs: percentiles(sequential.map((r) => r.stopMs)),
        deleteMs: percentiles(sequential.map((r) => r.deleteMs)),
      },
      ...(options.warmPool > 0
        ? { warmPool: { size: options.warmPool, runningMs: percentiles(pooled.map((r) => r.runningMs)) } }
        : {}),
      sweep,
      rss: { before: rssBefore, after: rssAfter, agentsSequential: agentRssSequential },
      breakdown,
      failures,
    };
    if (options.json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    else printReport(figures);
    if (failures.length > 0) {
      process.stderr.write(`\n${failures.length} did not converge:\n  ${failures.join('\n  ')}\n`);
      process.stderr.write(`last output of the parts:\n  ${recentOutput.join('\n  ')}\n`);
      return 1;
    }
    return 0;
  } catch (error) {
    process.stderr.write(`last output of the parts:\n  ${recentOutput.join('\n  ')}\n`);
    throw error;
  } finally {
    // Also removes every machine left: agents outlive the runner by design.
    await stack?.stop();
    await git?.stop();
  }
}

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      provider: { type: 'string', default: 'local' },
      'boot-seconds': { type: 'string', default: '2' },
      'resume-seconds': { type: 'string' },
      'warm-pool': { type: 'string', default: '0' },
      sequential: { type: 'string', default: '20' },
      concurrent: { type: 'string' },
      sweep: { type: 'string' },
      timeout: { type: 'string', default: '300' },
      json: { type: 'boolean', default: false },
      'temporal-in-memory': { type: 'boolean', default: false },
    },
  });
  const options: Options = {
    provider: values.provider as Options['provider'],
    bootSeconds: Number(values['boot-seconds']),
    ...(values['resume-seconds'] !== undefined ? { resumeSeconds: Number(values['resume-seconds']) } : {}),
    warmPool: Number(values['warm-pool']),
    sequential: Number(values.sequential),
    sweep: (values.sweep ?? values.concurrent ?? '50').split(',').map(Number),
    timeoutMs: Number(values.timeout) * 1000,
    json: values.json,
    temporalInMemory: values['temporal-in-memory'],
  };
  if (
    !['local', SIMULATED_PROVIDER].includes(options.provider) ||
    !(options.bootSeconds >= 0) ||
    !(options.resumeSeconds === undefined || options.resumeSeconds >= 0) ||
    !(Number.isInteger(options.warmPool) && options.warmPool >= 0) ||
    (options.warmPool > 0 && options.provider !== SIMULATED_PROVIDER) ||
    (values.sweep !== undefined && values.concurrent !== undefined) ||
    !Number.isInteger(options.sequential) ||
    options.sequential < 0 ||
    !options.sweep.every((count) => Number.isInteger(count) && count >= 1) ||
    !(options.timeoutMs > 0)
  ) {
    process.stderr.write(
      'usage: npm run bench:lifecycle -- [--provider local|simulated] [--boot-seconds S] [--sequential N] ' +
        '[--concurrent N | --sweep N,N,...] [--timeout S] [--temporal-in-memory] [--json] ' +
        '[--warm-pool N (simulated) --resume-seconds S]\n',
    );
    process.exit(2);
  }
  return options;
}

/**
 * The embedded `local` infrastructure, or (`--provider simulated`) a simulated one registered as an administrator
 * does, with one catalogue machine; its runner is the stack's (GITSPACES_INFRASTRUCTURE_ID).
 */
async function prepareTarget(api: Api, stack: LoopbackStack, options: Options): Promise<Target> {
  if (options.provider === 'local') return { infrastructureId: 'local', machineId: 'local-default' };
  await api.call('POST', '/infrastructures', {
    name: SIMULATED_INFRASTRUCTURE,
    provider: SIMULATED_PROVIDER,
    config: {
      bootSeconds: options.bootSeconds,
      ...(options.resumeSeconds !== undefined ? { resumeSeconds: options.resumeSeconds } : {}),
    },
    gatewayUrl: stack.gatewayUrl,
  });
  const machine = await api.call<{ id: string }>('POST', `/infrastructures/${SIMULATED_INFRASTRUCTURE}/machines`, {
    name: 'default',
    machineType: 'simulated',
    diskSizeGb: 10,
  });
  return { infrastructureId: SIMULATED_INFRASTRUCTURE, machineId: machine.id };
}

/** Gives the machine a warm pool of `size` and waits until all of it is ready (made, checked and stopped). */
async function fillWarmPool(api: Api, target: Target, size: number, timeoutMs: number): Promise<void> {
  const route = `/infrastructures/${target.infrastructureId}/machines`;
  await api.call('PATCH', `${route}/${target.machineId}`, { warmPoolSize: size });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { items } = await api.call<{ items: { id: string; warmPool: { ready: number } }[] }>('GET', route);
    if (items.find((m) => m.id === target.machineId)!.warmPool.ready >= size) return;
    if (Date.now() > deadline) throw new Error(`the warm pool did not fill to ${size} in ${timeoutMs / 1000} s`);
    await sleep(CONCURRENT_POLL_MS);
  }
}

/**
 * Create (which starts), wait for running, stop, wait for stopped, delete, wait for deleted. Each figure runs from the
 * moment the request was sent to the time of the event that recorded the state (the server's clock, the same host),
 * so the polling interval does not count. `whileRunning` runs once it is running (to sample its agent).
 */
async function sequentialLifecycle(
  api: Api,
  body: { name: string },
  timeoutMs: number,
  whileRunning?: (id: string) => Promise<void>,
): Promise<SequentialRun> {
  const run: SequentialRun = { id: '', name: body.name, startRunId: '' };
  try {
    const sentAt = Date.now();
    const created = await api.call<{ gitspace: GitspaceView; operation?: { runId: string } }>(
      'POST',
      '/gitspaces',
      body,
    );
    Object.assign(run, { id: created.gitspace.id, startRunId: created.operation?.runId ?? '' });
    run.runningMs = (await untilState(api, run.id, 'running', sentAt, timeoutMs)) - sentAt;
    await whileRunning?.(run.id);
    // The start records `running` a moment before its workflow closes; stop once it has, so stop does not cancel it.
    await untilOperationFinished(api, run.id, timeoutMs);
    const stopAt = Date.now();
    await api.call('POST', `/gitspaces/${run.id}/actions`, { action: 'stop' });
    run.stopMs = (await untilState(api, run.id, 'stopped', stopAt, timeoutMs)) - stopAt;
    await untilOperationFinished(api, run.id, timeoutMs);
    const deleteAt = Date.now();
    await api.call('DELETE', `/gitspaces/${run.id}`);
    run.deleteMs = (await untilState(api, run.id, 'deleted', deleteAt, timeoutMs)) - deleteAt;
  } catch (error) {
    run.failure = error instanceof Error ? error.message : String(error);
  }
  return run;
}

/** Polls the gitspace until it is in `state`; returns when its event says it got there (ms since the epoch). */
async function untilState(api: Api, id: string, state: string, since: number, timeoutMs: number): Promise<number> {
  await untilGitspace(api, id, timeoutMs, state, (gitspace) => gitspace.state === state);
  return stateReachedAt(api, id, state, since);
}

/** Waits until the gitspace's operation has finished (its workflow closed), whatever state it recorded. */
function untilOperationFinished(api: Api, id: string, timeoutMs: number): Promise<void> {
  return untilGitspace(api, id, timeoutMs, 'its operation to finish', (g) => g.operation?.status !== 'running');
}

/** Polls the gitspace until `done`; an `error` state ends the wait. */
async function untilGitspace(
  api: Api,
  id: string,
  timeoutMs: number,
  expected: string,
  done: (gitspace: GitspaceView) => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'unknown';
  while (Date.now() < deadline) {
    const gitspace = await api.call<GitspaceView>('GET', `/gitspaces/${id}`);
    if (done(gitspace)) return;
    last = gitspace.state;
    if (last === 'error') throw new Error(`ended in error: ${JSON.stringify(gitspace.lastError ?? null)}`);
    await sleep(SEQUENTIAL_POLL_MS);
  }
  throw new Error(`still ${last} after ${timeoutMs / 1000} s, expected ${expected}`);
}

/** The time of the first event since `since` that put the gitspace in `state`. */
async function stateReachedAt(api: Api, id: string, state: string, since: number): Promise<number> {
  const { items } = await api.call<{ items: { state?: string; createdAt: string }[] }>(
    'GET',
    `/gitspaces/${id}/events`,
  );
  const times = items
    .filter((e) => e.state === state)
    .map((e) => Date.parse(e.createdAt))
    // The server's clock may round the event a millisecond before the request was sent.
    .filter((t) => t >= since - 5);
  if (times.length === 0) throw new Error(`${id} is ${state} but has no event saying so`);
  return Math.min(...times);
}

interface ConcurrentGitspace {
  id: string;
  name: string;
  startRunId: string;
  postMs: number;
  /** From the moment every create was sent to the event that recorded `running`. */
  runningMs?: number;
}

/** One level of the sweep: `count` created at once, each followed until running, then all deleted. */
interface SweepLevel {
  count: number;
  postMs: Percentiles;
  firstRunningMs?: number;
  lastRunningMs?: number;
  running: number;
  /** Converged, per second: running ones over the time to the last. */
  startsPerSecond?: number;
  postFailures: string[];
  /** Ended in `error`. */
  errored: string[];
  /** Neither running nor in error at the timeout. */
  stuck: string[];
  deleteFailures: string[];
  rss: { before: RssSample; peak: RssSample; after: RssSample };
  /** CPU seconds each process used from the creates until all were running: where the orchestration's time goes. */
  cpu: CpuSample;
  /** The start whose time to running was the level's median, from its history. */
  breakdown?: StartBreakdown;
}

/** Creates `count` gitspaces at once, follows them until running (or the timeout), then deletes them all. */
async function sweepLevel(
  api: Api,
  stack: LoopbackStack,
  createBody: (name: string) => { name: string },
  count: number,
  options: Options,
): Promise<SweepLevel> {
  const before = await sampleRss(stack, stack.machinesRoot, []);
  const cpuBefore = sampleCpu(stack);
  const { gitspaces, postFailures, errored, stuck } = await concurrentStarts(api, createBody, count, options);
  const cpuAfter = sampleCpu(stack);
  const cpu = Object.fromEntries(
    Object.entries(cpuAfter).map(([name, after]) => {
      const from = cpuBefore[name as keyof CpuSample];
      return [name, after === undefined || from === undefined ? undefined : after - from];
    }),
  ) as CpuSample;
  const running = gitspaces.filter((g) => g.runningMs !== undefined);
  // Simulated machines have no agent process: nothing to look for in /proc.
  const peak = await sampleRss(stack, stack.machinesRoot, options.provider === 'local' ? running.map((g) => g.id) : []);
  const breakdown = await breakDownMedianStart(stack.temporal, gitspaces);
  const deleteFailures = await deleteAll(
    api,
    gitspaces.map((g) => g.id),
    options.timeoutMs,
  );
  const lastRunningMs = max(running.map((g) => g.runningMs));
  return {
    count,
    postMs: percentiles(gitspaces.map((g) => g.postMs)),
    firstRunningMs: min(running.map((g) => g.runningMs)),
    lastRunningMs,
    running: running.length,
    ...(lastRunningMs ? { startsPerSecond: running.length / (lastRunningMs / 1000) } : {}),
    postFailures,
    errored,
    stuck,
    deleteFailures,
    rss: { before, peak, after: await sampleRss(stack, stack.machinesRoot, []) },
    cpu,
    ...(breakdown ? { breakdown } : {}),
  };
}

/** Creates `count` gitspaces at once and waits until every one is running (or in error, or the timeout). */
async function concurrentStarts(
  api: Api,
  createBody: (name: string) => { name: string },
  count: number,
  options: Options,
): Promise<{ gitspaces: ConcurrentGitspace[]; postFailures: string[]; errored: string[]; stuck: string[] }> {
  const postFailures: string[] = [];
  const errored: string[] = [];
  const stuck: string[] = [];
  const sentAt = Date.now();
  const posted = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const name = `bench-${count}-at-once-${i + 1}`;
      const before = Date.now();
      try {
        const created = await api.call<{ gitspace: GitspaceView; operation?: { runId: string } }>(
          'POST',
          '/gitspaces',
          createBody(name),
        );
        const postMs = Date.now() - before;
        return { id: created.gitspace.id, name, startRunId: created.operation?.runId ?? '', postMs };
      } catch (error) {
        // fetch says only "fetch failed": the reason (a connect timeout, a reset) is its cause.
        const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
        postFailures.push(`${name}: ${error instanceof Error ? error.message : String(error)}${cause}`);
        return undefined;
      }
    }),
  );
  const gitspaces = posted.filter((g): g is ConcurrentGitspace => g !== undefined);
  const lastSeen = await untilAll(
    api,
    gitspaces.map((g) => g.id),
    sentAt + options.timeoutMs,
    (g) => g.state === 'running' || g.state === 'error',
  );
  await inBatches(gitspaces, EVENT_READS_AT_ONCE, async (gitspace) => {
    const seen = lastSeen.get(gitspace.id);
    const said = `${gitspace.name} (${gitspace.id}): ${seen?.state ?? 'unseen'}`;
    if (seen?.state === 'running') {
      gitspace.runningMs = (await stateReachedAt(api, gitspace.id, 'running', sentAt)) - sentAt;
    } else if (seen?.state === 'error') {
      errored.push(`${said} — ${JSON.stringify(seen.lastError ?? null)}`);
    } else {
      stuck.push(`${said} after ${options.timeoutMs / 1000} s`);
    }
  });
  return { gitspaces, postFailures, errored, stuck };
}

/** Runs `work` on every item, `atOnce` at a time. */
async function inBatches<T>(items: T[], atOnce: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += atOnce) await Promise.all(items.slice(i, i + atOnce).map(work));
}

/** Every gitspace, following the list's pages. */
async function listAll(api: Api): Promise<GitspaceView[]> {
  const all: GitspaceView[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.call<{ items: GitspaceView[]; nextCursor?: string }>(
      'GET',
      `/gitspaces?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return all;
}

/** Deletes them all at once and waits until they are; names those that are not. */
async function deleteAll(api: Api, ids: string[], timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const failures: string[] = [];
  await Promise.all(
    ids.map((id) =>
      api.call('DELETE', `/gitspaces/${id}`, undefined, deadline).catch((error: unknown) => {
        failures.push(`delete ${id}: ${error instanceof Error ? error.message : String(error)}`);
      }),
    ),
  );
  const lastSeen = await untilAll(api, ids, deadline, (g) => g.state === 'deleted');
  for (const id of ids) {
    const state = lastSeen.get(id)?.state;
    if (state !== 'deleted') failures.push(`${id}: ${state ?? 'unseen'}, not deleted`);
  }
  return failures;
}

/** Polls the list until each of `ids` is `done` or the deadline passes; returns what was last seen of each. */
async function untilAll(
  api: Api,
  ids: string[],
  deadline: number,
  done: (gitspace: GitspaceView) => boolean,
): Promise<Map<string, GitspaceView>> {
  const waiting = new Set(ids);
  const lastSeen = new Map<string, GitspaceView>();
  while (waiting.size > 0 && Date.now() < deadline) {
    for (const gitspace of await listAll(api).catch(() => [])) {
      lastSeen.set(gitspace.id, gitspace);
      if (done(gitspace)) waiting.delete(gitspace.id);
    }
    if (waiting.size > 0) await sleep(CONCURRENT_POLL_MS);
  }
  return lastSeen;
}

/** VmRSS of /proc/<pid>/status in MB; undefined once the process is gone. */
async function rssMb(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  return kb === undefined ? undefined : Number(kb) / 1024;
}

function sampleCpu(stack: LoopbackStack): CpuSample {
  const own = process.cpuUsage();
  return {
    api: cpuSeconds(stack.parts.api.pid),
    runner: cpuSeconds(stack.parts.runner.pid),
    gateway: cpuSeconds(stack.parts.gateway.pid),
    temporal: cpuSeconds(stack.temporal.process.pid),
    benchmark: (own.user + own.system) / 1e6,
  };
}

/** The parts by the pids this run started, and the agents of these gitspaces as the local provider finds them. */
async function sampleRss(stack: LoopbackStack, machinesRoot: string, gitspaceIds: string[]): Promise<RssSample> {
  const agents: number[] = [];
  for (const id of gitspaceIds) {
    const processes = await agentProcessesIn(localMachinePaths(machinesRoot, id).dir);
    const sizes = await Promise.all(processes.map((p) => rssMb(p.pid)));
    if (processes.length > 0) agents.push(sizes.reduce((sum: number, size) => sum + (size ?? 0), 0));
  }
  return {
    parts: {
      api: await rssMb(stack.parts.api.pid),
      runner: await rssMb(stack.parts.runner.pid),
      gateway: await rssMb(stack.parts.gateway.pid),
      temporal: await rssMb(stack.temporal.process.pid),
    },
    agents,
  };
}

/** One start's breakdown, and which start it is. */
type StartBreakdown = Breakdown & { gitspace: string; runningMs?: number };

/** The breakdown of the start whose time to running was the median: a typical start, not the cold or the worst. */
async function breakDownMedianStart(
  temporal: DevServer,
  runs: { id: string; name: string; startRunId: string; runningMs?: number }[],
): Promise<StartBreakdown | undefined> {
  const measured = runs.filter((r) => r.runningMs !== undefined && r.startRunId);
  measured.sort((a, b) => a.runningMs! - b.runningMs!);
  const median = measured[Math.floor((measured.length - 1) / 2)];
  if (!median) return undefined;
  const connection = await connectClient(temporal.connection);
  try {
    const client = new Client({ connection, namespace: temporal.connection.namespace });
    const handle = client.workflow.getHandle(lifecycleWorkflowId(median.id), median.startRunId);
    // A start records `running` before its last steps: its whole history is there once it closes.
    await Promise.race([handle.result().catch(() => undefined), sleep(30_000)]);
    const history = await handle.fetchHistory();
    return { gitspace: median.name, runningMs: median.runningMs, ...breakDownHistory(history) };
  } finally {
    await connection.close();
  }
}

interface Breakdown {
  totalMs: number;
  activities: { name: string; attempt: number; queuedMs: number; runMs: number; outcome: string }[];
  workflowTasks: { count: number; queuedMs: number; runMs: number; maxQueuedMs: number; maxRunMs: number };
  /** The workflow's time outside every activity (from scheduled to closed): what would be left if they were instant. */
  leftIfActivitiesInstantMs: number;
}

/** Where one workflow's time went, from its history's event times. */
function breakDownHistory(history: proto.api.history.v1.IHistory): Breakdown {
  const events = history.events ?? [];
  const time = (e: proto.api.history.v1.IHistoryEvent) =>
    Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
  const id = (value: unknown) => String(value);
  const activities = new Map<
    string,
    { name: string; scheduled: number; started?: number; closed?: number; attempt: number; outcome: string }
  >();
  const tasks = new Map<string, { scheduled: number; started?: number; closed?: number }>();
  for (const event of events) {
    const at = time(event);
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      activities.set(id(event.eventId), {
        name: scheduled.activityType?.name ?? '?',
        scheduled: at,
        attempt: 1,
        outcome: 'open',
      });
    }
    const started = event.activityTaskStartedEventAttributes;
    const activity = (scheduledEventId: unknown) => activities.get(id(scheduledEventId));
    if (started) {
      const a = activity(started.scheduledEventId);
      if (a) Object.assign(a, { started: at, attempt: started.attempt ?? 1 });
    }
    const closings = [
      ['completed', event.activityTaskCompletedEventAttributes],
      ['failed', event.activityTaskFailedEventAttributes],
      ['timed out', event.activityTaskTimedOutEventAttributes],
      ['cancelled', event.activityTaskCanceledEventAttributes],
    ] as const;
    for (const [outcome, attributes] of closings) {
      const a = attributes ? activity(attributes.scheduledEventId) : undefined;
      if (a) Object.assign(a, { closed: at, outcome });
    }
    if (event.workflowTaskScheduledEventAttributes) tasks.set(id(event.eventId), { scheduled: at });
    const taskStarted = event.workflowTaskStartedEventAttributes;
    if (taskStarted) {
      const task = tasks.get(id(taskStarted.scheduledEventId));
      if (task) task.started = at;
    }
    for (const attributes of [
      event.workflowTaskCompletedEventAttributes,
      event.workflowTaskFailedEventAttributes,
      event.workflowTaskTimedOutEventAttributes,
    ]) {
      const task = attributes ? tasks.get(id(attributes.scheduledEventId)) : undefined;
      if (task) task.closed = at;
    }
  }
  const first = events[0] ? time(events[0]) : 0;
  const last = events.length > 0 ? time(events[events.length - 1]!) : 0;
  // Activities may overlap: count the time covered by any of them once.
  const spans = [...activities.values()]
    .map((a) => [a.scheduled, a.closed ?? last] as const)
    .sort((x, y) => x[0] - y[0]);
  let covered = 0;
  let reach = -Infinity;
  for (const [from, to] of spans) {
    if (to > reach) covered += to - Math.max(from, reach);
    reach = Math.max(reach, to);
  }
  const taskList = [...tasks.values()];
  const queued = taskList.map((t) => (t.started ?? t.scheduled) - t.scheduled);
  const ran = taskList.map((t) => (t.closed ?? t.started ?? t.scheduled) - (t.started ?? t.scheduled));
  return {
    totalMs: last - first,
    activities: [...activities.values()].map((a) => ({
      name: a.name,
      attempt: a.attempt,
      queuedMs: (a.started ?? a.scheduled) - a.scheduled,
      runMs: (a.closed ?? last) - (a.started ?? a.scheduled),
      outcome: a.outcome,
    })),
    workflowTasks: {
      count: taskList.length,
      queuedMs: sum(queued),
      runMs: sum(ran),
      maxQueuedMs: Math.max(0, ...queued),
      maxRunMs: Math.max(0, ...ran),
    },
    leftIfActivitiesInstantMs: last - first - covered,
  };
}

interface Figures {
  machine: { cpus: number; loadAverageBefore: number[] };
  /** `local`, or `simulated, 2 s boot`. */
  provider: string;
  /** Where the dev server kept its state (--temporal-in-memory). */
  temporalStore: string;
  apiReadyAfterTemporalSeconds: number;
  warmUp: { runningMs?: number; stopMs?: number; deleteMs?: number };
  sequential: { count: number; runningMs: Percentiles; stopMs: Percentiles; deleteMs: Percentiles };
  /** First starts that adopted a pooled machine (--warm-pool). */
  warmPool?: { size: number; runningMs: Percentiles };
  sweep: SweepLevel[];
  rss: { before: RssSample; after: RssSample; agentsSequential: number[] };
  breakdown?: StartBreakdown;
  failures: string[];
}

/** The issue's goal for a figure, and whether this run met it (undefined: not measured, or not a goal here). */
interface Row {
  measure: string;
  value: string;
  now: string;
  goal: string;
  met?: boolean;
}

function printReport(f: Figures): void {
  const local = f.provider === 'local';
  const { sequential: seq } = f;
  const atMost = (value: number | undefined, limit: number) => (value === undefined ? undefined : value <= limit);
  const rows: Row[] = [
    {
      measure: `create → running, ${seq.count} sequential (p50 / p90 / p99 / max)`,
      value: `${s(seq.runningMs.p50)} / ${s(seq.runningMs.p90)} / ${s(seq.runningMs.p99)} / ${s(seq.runningMs.max)} s`,
      now: ISSUE_16.sequential.now,
      // The goal is the local provider's: a simulated start includes its boot time.
      goal: local ? ISSUE_16.sequential.goal : `(local only; includes the ${f.provider.split(', ')[1]})`,
      ...(local && seq.runningMs.p50 !== undefined
        ? { met: seq.runningMs.p50 <= 1000 && (seq.runningMs.p99 ?? Infinity) <= 2500 }
        : {}),
    },
    {
      measure: 'stop / delete (p50; p90)',
      value: `${s(seq.stopMs.p50)} / ${s(seq.deleteMs.p50)} s; ${s(seq.stopMs.p90)} / ${s(seq.deleteMs.p90)} s`,
      now: ISSUE_16.stopDelete.now,
      goal: ISSUE_16.stopDelete.goal,
      ...definedMet(
        seq.stopMs.p50 !== undefined ? atMost(Math.max(seq.stopMs.p50, seq.deleteMs.p50 ?? 0), 500) : undefined,
      ),
    },
  ];
  if (f.warmPool) {
    const { runningMs: pool } = f.warmPool;
    rows.push({
      measure: `create → running from a warm pool of ${f.warmPool.size}, sequential (p50 / p90 / p99 / max)`,
      value: `${s(pool.p50)} / ${s(pool.p90)} / ${s(pool.p99)} / ${s(pool.max)} s`,
      now: `${s(seq.runningMs.p50)} / ${s(seq.runningMs.p90)} / ${s(seq.runningMs.p99)} / ${s(seq.runningMs.max)} s without`,
      goal: 'faster than without',
      ...definedMet(
        pool.p50 === undefined || seq.runningMs.p50 === undefined ? undefined : pool.p50 < seq.runningMs.p50,
      ),
    });
  }
  for (const level of f.sweep) {
    // The issue measured 50 at once: its figures sit beside that level only.
    const now = (text: string) => (level.count === 50 ? text : '');
    rows.push(
      {
        measure: `${level.count} at once: POST latency (p50 / p99 / max)`,
        value: `${s(level.postMs.p50)} / ${s(level.postMs.p99)} / ${s(level.postMs.max)} s`,
        now: now(ISSUE_16.postLatency.now),
        goal: ISSUE_16.postLatency.goal,
        ...definedMet(atMost(level.postMs.p99, 200)),
      },
      {
        measure: `${level.count} at once: first / last running`,
        value: `${s(level.firstRunningMs)} / ${s(level.lastRunningMs)} s`,
        now: now(ISSUE_16.firstLastRunning.now),
        goal: '',
      },
      {
        measure: `${level.count} at once: starts/s`,
        value: level.startsPerSecond === undefined ? '–' : level.startsPerSecond.toFixed(1),
        now: now('1.3'),
        goal: ISSUE_16.firstLastRunning.goal,
        ...definedMet(level.startsPerSecond === undefined ? undefined : level.startsPerSecond >= 50),
      },
      {
        measure: `${level.count} at once: running / in error / stuck / not created`,
        value: `${level.running} / ${level.errored.length} / ${level.stuck.length} / ${level.postFailures.length}`,
        now: '',
        goal: 'all running, none stuck',
        met: level.running === level.count,
      },
      {
        measure: `${level.count} at once: RSS of the API process, before → all running → deleted`,
        value: `${mb(level.rss.before.parts.api)} → ${mb(level.rss.peak.parts.api)} → ${mb(level.rss.after.parts.api)} MB`,
        now: now(ISSUE_16.apiRss.now),
        goal: ISSUE_16.apiRss.goal,
      },
    );
  }
  const agents = [...f.rss.agentsSequential, ...f.sweep.flatMap((level) => level.rss.peak.agents)];
  if (local) {
    rows.push({
      measure: `RSS of one local gitspace's agent (average / max of ${agents.length})`,
      value: `${mb(average(agents))} / ${mb(max(agents))} MB`,
      now: ISSUE_16.agentRss.now,
      goal: ISSUE_16.agentRss.goal,
      ...definedMet(atMost(max(agents), 40)),
    });
  }
  const out: string[] = [];
  out.push(
    `\nLifecycle benchmark (issue 16) — provider ${f.provider}; Temporal dev server: ${f.temporalStore}; ` +
      `${f.machine.cpus} CPUs, load average ` +
      `${f.machine.loadAverageBefore.join(' ')} before; API ready ${f.apiReadyAfterTemporalSeconds.toFixed(1)} s after ` +
      `Temporal; warm-up start ${s(f.warmUp.runningMs)} s (not counted)\n`,
  );
  out.push(
    table(
      ['measure', 'this run', 'Now (issue 16)', 'Goal (issue 16)', 'met?'],
      rows.map((r) => [r.measure, r.value, r.now, r.goal, r.met === undefined ? '' : r.met ? 'yes' : 'NO']),
    ),
  );

  const parts = ['api', 'runner', 'gateway', 'temporal'] as const;
  const rssRows: string[][] = parts.map((name) => [
    name === 'api' ? 'api (control plane + worker, PGlite)' : name,
    mb(f.rss.before.parts[name]),
    ...f.sweep.map((level) => `${mb(level.rss.peak.parts[name])} → ${mb(level.rss.after.parts[name])}`),
    mb(f.rss.after.parts[name]),
  ]);
  if (local) {
    rssRows.push([
      'agent, average / max',
      '',
      ...f.sweep.map(
        (level) =>
          `${mb(average(level.rss.peak.agents))} / ${mb(max(level.rss.peak.agents))} (${level.rss.peak.agents.length} running)`,
      ),
      '',
    ]);
  }
  out.push(`\nRSS (MB) of every process, from /proc/<pid>/status VmRSS\n`);
  out.push(
    table(['process', 'before', ...f.sweep.map((level) => `${level.count} running → deleted`), 'at the end'], rssRows),
  );

  if (f.sweep.length > 0) {
    const names = ['api', 'runner', 'gateway', 'temporal', 'benchmark'] as const;
    out.push(`\nCPU seconds of every process from the creates until all were running (ms per start)\n`);
    out.push(
      table(
        ['process', ...f.sweep.map((level) => `${level.count} at once`)],
        names.map((name) => [
          name === 'benchmark' ? 'benchmark (its clients and polls)' : name,
          ...f.sweep.map((level) => {
            const seconds = level.cpu[name];
            return seconds === undefined
              ? '–'
              : `${seconds.toFixed(1)} (${((seconds * 1000) / level.count).toFixed(0)})`;
          }),
        ]),
      ),
    );
  }

  if (f.breakdown) out.push(breakdownText(f.breakdown, 'the sequential median'));
  for (const level of f.sweep) {
    if (level.breakdown) out.push(breakdownText(level.breakdown, `the median of ${level.count} at once`));
  }
  if (f.failures.length > 0) out.push(`\nnot converged (${f.failures.length}):\n  ${f.failures.join('\n  ')}\n`);
  process.stdout.write(`${out.join('')}\n`);
}

/** Where one start's time went: each activity's queueing and run, and the workflow tasks. */
function breakdownText(b: StartBreakdown, which: string): string {
  const t = b.workflowTasks;
  return (
    `\nOne start (${b.gitspace}, ${which}: ${s(b.runningMs)} s to running) from its Temporal history: ` +
    `${b.activities.length} activities, ${t.count} workflow tasks, ${b.totalMs.toFixed(0)} ms from start to close\n` +
    table(
      ['activity', 'queued (scheduled → started) ms', 'ran (started → closed) ms', 'outcome'],
      b.activities.map((a) => [
        a.attempt > 1 ? `${a.name} (attempt ${a.attempt})` : a.name,
        a.queuedMs.toFixed(0),
        a.runMs.toFixed(0),
        a.outcome,
      ]),
    ) +
    `workflow tasks: ${t.count}, queued ${t.queuedMs.toFixed(0)} ms in all (max ${t.maxQueuedMs.toFixed(0)}), ` +
    `ran ${t.runMs.toFixed(0)} ms in all (max ${t.maxRunMs.toFixed(0)})\n` +
    `left if every activity were instant: ${b.leftIfActivitiesInstantMs.toFixed(0)} ms of ${b.totalMs.toFixed(0)} ms\n`
  );
}

/** `{ met }` when it is known. */
const definedMet = (met: boolean | undefined) => (met === undefined ? {} : { met });
/** Milliseconds as seconds with two decimals. */
const s = (value: number | undefined) => (value === undefined ? '–' : (value / 1000).toFixed(2));
const mb = (value: number | undefined) => (value === undefined ? '–' : value.toFixed(0));

interface Percentiles {
  count: number;
  p50?: number;
  p90?: number;
  p99?: number;
  max?: number;
}

/** Nearest-rank percentiles of the figures that were measured (a failed step has none). */
function percentiles(values: (number | undefined)[]): Percentiles {
  const measured = values.filter((v): v is number => v !== undefined);
  const rank = (p: number) => nearestRank(measured, p);
  return { count: measured.length, p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: rank(1) };
}

const defined = (values: (number | undefined)[]) => values.filter((v): v is number => v !== undefined);
const min = (values: (number | undefined)[]) => (defined(values).length ? Math.min(...defined(values)) : undefined);
const max = (values: (number | undefined)[]) => (defined(values).length ? Math.max(...defined(values)) : undefined);
const sum = (values: number[]) => values.reduce((total, v) => total + v, 0);
const average = (values: number[]) => (values.length ? sum(values) / values.length : undefined);
const ms = (value: number | undefined) => (value === undefined ? '–' : `${value} ms`);

/** Ctrl-C: every wait ends at its next pause, and the run still ends every process it started. */
let interrupted = false;
process.once('SIGINT', () => {
  interrupted = true;
  process.stderr.write('\ninterrupted: stopping everything this run started\n');
});
async function sleep(milliseconds: number): Promise<void> {
  if (interrupted) throw new Error('interrupted');
  await new Promise((r) => setTimeout(r, milliseconds));
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
