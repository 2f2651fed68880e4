import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger } from '../common/logger';
import { signalGroup } from '../engine/dev-server';
import { agentProcessesIn, localMachinePaths } from '../providers/local/provider';
import { startGitServer } from '../test/support/git-server';
import { startLoopbackStack } from './processes';

/**
 * `npm run chaos`: many lifecycles (start, stop, start, delete) on the local provider while one part of the stack —
 * runner, control plane, gateway or the Temporal dev server — is killed with SIGKILL at a random moment and
 * restarted. After each trial it checks that the gitspace reached the state its last action asked for, that there
 * was never more than one machine (agent) for it, that nothing is left behind (agent process, machine directory,
 * gateway route) and that its event log has no gap; then it prints a table per victim.
 */
const VICTIMS = ['runner', 'api', 'gateway', 'temporal'] as const;
type Victim = (typeof VICTIMS)[number];

interface TrialResult {
  victim: Victim;
  converged: boolean;
  duplicates: number;
  orphans: number;
  /** The longest wait from an accepted action to its target state, in ms. */
  worstConvergeMs: number;
  problem?: string;
}

const ADMIN_TOKEN = 'chaos-admin-token';
const GATEWAY_ADMIN_TOKEN = 'chaos-gateway-admin-token';
const CONVERGE_TIMEOUT_MS = 240_000;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      trials: { type: 'string', default: '30' },
      victims: { type: 'string', default: VICTIMS.join(',') },
      seed: { type: 'string' },
    },
  });
  const trials = Number(values.trials);
  const victims = values.victims.split(',') as Victim[];
  if (!Number.isInteger(trials) || trials < 1 || victims.some((v) => !VICTIMS.includes(v))) {
    process.stderr.write(`usage: npm run chaos -- [--trials N] [--victims ${VICTIMS.join(',')}] [--seed N]\n`);
    return 2;
  }
  let seed = Number(values.seed ?? Date.now() % 1_000_000);
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  process.stdout.write(`chaos: ${trials} trial(s) per victim (${victims.join(', ')}), seed ${values.seed ?? seed}\n`);

  const logger = createLogger('chaos', 'warn');
  const git = await startGitServer();
  await git.createRepository('chaos', {
    'README.md': 'chaos\n',
    // A setup step that takes a moment widens the window in which a kill lands mid-start.
    '.devcontainer/devcontainer.json': '{ "postCreateCommand": "sleep 1" }\n',
  });
  const stack = await startLoopbackStack({
    name: 'chaos',
    logger,
    adminToken: ADMIN_TOKEN,
    gatewayAdminToken: GATEWAY_ADMIN_TOKEN,
    extra: { GITSPACES_RECONCILE_EVERY_SECONDS: '15', GITSPACES_RUNNER_PICKUP_TIMEOUT_SECONDS: '120' },
  }).catch(async (error: unknown) => {
    await git.stop();
    throw error;
  });

  const kill = async (victim: Victim) => {
    if (victim === 'temporal') {
      const { process: temporal } = stack.temporal;
      signalGroup(temporal, 'SIGKILL');
      await new Promise<void>((resolve) =>
        temporal.exitCode !== null || temporal.signalCode !== null ? resolve() : temporal.once('exit', () => resolve()),
      );
      await sleep(200 + random() * 1500);
      await stack.restartTemporal();
    } else {
      await stack.parts[victim].kill();
      await sleep(200 + random() * 1500);
      stack.parts[victim].start();
    }
  };

  const results: TrialResult[] = [];
  // Ctrl-C ends the run early but still stops every process it started and prints what it has.
  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
    process.stdout.write('\ninterrupted: finishing the current trial, then cleaning up\n');
  });
  try {
    for (let trial = 0; trial < trials; trial++) {
      for (const victim of victims) {
        if (interrupted) break;
        const result = await runTrial(victim, trial, {
          api: stack.apiUrl,
          machinesRoot: stack.machinesRoot,
          gitUrl: git.urlOf('chaos'),
          adminUrl: stack.gatewayAdminUrl,
          kill,
          random,
        });
        results.push(result);
        process.stdout.write(
          `  trial ${trial + 1} ${victim.padEnd(8)} ${result.converged ? 'converged' : 'DID NOT CONVERGE'} in ≤${(result.worstConvergeMs / 1000).toFixed(1)}s` +
            `${result.duplicates ? ` duplicates=${result.duplicates}` : ''}${result.orphans ? ` orphans=${result.orphans}` : ''}${result.problem ? ` — ${result.problem}` : ''}\n`,
        );
      }
    }
  } finally {
    // Also removes the machines a failed trial may have left.
    await stack.stop();
    await git.stop();
  }

  printTable(results, victims);
  const failed = results.filter((r) => !r.converged || r.duplicates > 0 || r.orphans > 0);
  process.stdout.write(`${results.length - failed.length} passed, ${failed.length} failed\n`);
  return failed.length === 0 ? 0 : 1;
}

interface TrialContext {
  api: string;
  machinesRoot: string;
  gitUrl: string;
  adminUrl: string;
  kill(victim: Victim): Promise<void>;
  random(): number;
}

/** One lifecycle — create and start, stop, start, delete — with one kill at a random moment of a random action. */
async function runTrial(victim: Victim, trial: number, ctx: TrialContext): Promise<TrialResult> {
  const result: TrialResult = { victim, converged: false, duplicates: 0, orphans: 0, worstConvergeMs: 0 };
  const actions = [
    { action: 'create', target: 'running' },
    { action: 'stop', target: 'stopped' },
    { action: 'start', target: 'running' },
    { action: 'delete', target: 'deleted' },
  ] as const;
  const killAt = Math.floor(ctx.random() * actions.length);
  let id = '';
  try {
    for (const [index, step] of actions.entries()) {
      const killing = index === killAt ? sleep(ctx.random() * 2500).then(() => ctx.kill(victim)) : Promise.resolve();
      const accepted = Date.now();
      if (step.action === 'create') {
        const created = (await request(ctx.api, 'POST', '/api/v1/gitspaces', {
          body: {
            name: `chaos-${victim}-${trial}-${Date.now().toString(36)}`,
            repository: { url: ctx.gitUrl },
            infrastructureId: 'local',
            machineId: 'local-default',
          },
          // A create retried after a control-plane crash must not make a second gitspace.
          idempotencyKey: `chaos-${victim}-${trial}-${accepted}`,
        })) as { gitspace: { id: string } };
        id = created.gitspace.id;
      } else if (step.action === 'delete') {
        await request(ctx.api, 'DELETE', `/api/v1/gitspaces/${id}`);
      } else {
        await request(ctx.api, 'POST', `/api/v1/gitspaces/${id}/actions`, { body: { action: step.action } });
      }
      await killing;
      await until(ctx.api, id, step.target, CONVERGE_TIMEOUT_MS - (Date.now() - accepted));
      result.worstConvergeMs = Math.max(result.worstConvergeMs, Date.now() - accepted);
      const agents = await agentProcessesIn(localMachinePaths(ctx.machinesRoot, id).dir);
      if (step.target === 'running' && agents.length !== 1) result.duplicates += Math.max(0, agents.length - 1);
      if (step.target !== 'running' && agents.length > 0) result.orphans += agents.length;
    }
    result.converged = true;
    const routes = (await request(ctx.adminUrl, 'GET', '/routes', { token: GATEWAY_ADMIN_TOKEN })) as {
      routes: { gitspaceId: string }[];
    };
    if (routes.routes.some((r) => r.gitspaceId === id)) result.orphans++;
    if (existsSync(localMachinePaths(ctx.machinesRoot, id).dir)) result.orphans++;
    const { items: events } = (await request(ctx.api, 'GET', `/api/v1/gitspaces/${id}/events`)) as {
      items: { seq: number }[];
    };
    if (events.some((e, i) => e.seq !== i + 1)) result.problem = 'the event log has a gap';
  } catch (error) {
    result.problem = error instanceof Error ? error.message : String(error);
  }
  if (result.problem && result.converged) result.converged = false;
  return result;
}

/** Calls the API (or the gateway's admin API), riding out a restarting process (refused, 5xx) and a running operation (409). */
async function request(
  base: string,
  method: string,
  route: string,
  options: { body?: unknown; idempotencyKey?: string; token?: string } = {},
): Promise<unknown> {
  const { body, idempotencyKey, token = ADMIN_TOKEN } = options;
  const deadline = Date.now() + CONVERGE_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${base}${route}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
          ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await response.text();
      if (response.ok) return text ? JSON.parse(text) : undefined;
      last = `${response.status} ${text.slice(0, 200)}`;
      if (response.status !== 409 && response.status < 500) throw new Error(`${method} ${route}: ${last}`);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith(`${method} ${route}`)) throw error;
      last = error instanceof Error ? error.message : String(error);
    }
    await sleep(500);
  }
  throw new Error(`${method} ${route} was not accepted: ${last}`);
}

/** Waits for the gitspace to reach `target`; an `error` is retried once, as a user would. */
async function until(api: string, id: string, target: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const gitspace = (await request(api, 'GET', `/api/v1/gitspaces/${id}`).catch(() => undefined)) as
      { state: string; lastError?: unknown } | undefined;
    if (gitspace?.state === target) return;
    if (gitspace?.state === 'error') throw new Error(`ended in error: ${JSON.stringify(gitspace.lastError)}`);
    last = gitspace?.state ?? 'unreachable';
    await sleep(250);
  }
  throw new Error(`still ${last} after ${Math.round(timeoutMs / 1000)}s, expected ${target}`);
}

function printTable(results: TrialResult[], victims: Victim[]): void {
  const rows = victims.map((victim) => {
    const mine = results.filter((r) => r.victim === victim);
    return [
      victim,
      String(mine.length),
      String(mine.filter((r) => r.converged).length),
      String(mine.reduce((n, r) => n + r.duplicates, 0)),
      String(mine.reduce((n, r) => n + r.orphans, 0)),
      `${(Math.max(0, ...mine.map((r) => r.worstConvergeMs)) / 1000).toFixed(1)}s`,
    ];
  });
  const header = ['victim', 'trials', 'converged', 'duplicates', 'orphans', 'worst time to converge'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(
    `\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${rows.map(line).join('\n')}\n\n`,
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
