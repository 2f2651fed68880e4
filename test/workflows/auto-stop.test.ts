import {
  UNIT_INFRASTRUCTURE,
  inputsOf,
  runWorkflow,
  useWorkflowHarness,
  trace,
  type ActivityMock,
  type RunOptions,
} from '../support/workflow-harness';
import { AUTO_STOP_SIGNALS, type AutoStopPolicy } from '../../contracts/lifecycle';

/**
 * The auto-stop watcher's unit tests (workflows/auto-stop.ts): the real workflow on the time-skipping test server, with
 * a gitspace and a gateway made of plain functions on the server's clock. An hour of idling takes a moment.
 */
const harness = useWorkflowHarness();

const HOUR = 3600_000;
const now = () => harness().env.currentTimeMs();

interface Gitspace {
  policy: AutoStopPolicy;
  runId?: string;
  runningSinceMs: number;
  running?: boolean;
  /** When it was last used (server time, ms); undefined: in use now (a tunnel is open). */
  lastUse?: number;
  /** What requestAutoStop answers, in turn (then `requested`). */
  answers?: string[];
}

/** Runs the watcher over one gitspace; each activity call also records the server's time it was made at. */
async function watch(gitspace: Gitspace, options: RunOptions & { input?: Record<string, unknown> } = {}) {
  const at: Record<string, number[]> = {};
  const timed =
    (name: string, fn: ActivityMock): ActivityMock =>
    async (input) => {
      (at[name] ??= []).push(await now());
      return fn(input);
    };
  const run = await runWorkflow(
    harness(),
    'autoStopGitspace',
    (gitspaceId) => ({ gitspaceId, startRunId: 'run-1', ...options.input }),
    {
      ...options,
      controlPlane: {
        autoStopStatus: timed('autoStopStatus', async () => ({
          running: gitspace.running ?? true,
          startRunId: gitspace.runId ?? 'run-1',
          infrastructureId: UNIT_INFRASTRUCTURE,
          runningSinceMs: gitspace.runningSinceMs,
          policy: gitspace.policy,
          warningSeconds: 300,
        })),
        recordAutoStopWarning: timed('recordAutoStopWarning', async () => undefined),
        recordAutoStopUnobserved: timed('recordAutoStopUnobserved', async () => undefined),
        requestAutoStop: timed('requestAutoStop', async () => gitspace.answers?.shift() ?? 'requested'),
        ...options.controlPlane,
      },
      runner: {
        observeGatewayActivity: async () => ({
          idleSeconds: gitspace.lastUse === undefined ? 0 : ((await now()) - gitspace.lastUse) / 1000,
          openWebSockets: gitspace.lastUse === undefined ? 1 : 0,
          openSshSessions: 0,
        }),
        ...(options.runner || {}),
      },
    },
  );
  return { ...run, at };
}

it('warns an idle gitspace once, then stops it for being idle', async () => {
  const t0 = await now();
  const run = await watch({ policy: { idleSeconds: 3600, maxLifetimeSeconds: null }, runningSinceMs: t0, lastUse: t0 });
  expect(run.error).toBeUndefined();
  expect(run.value).toEqual({ outcome: 'stopped', reason: 'idle' });
  const warnings = inputsOf(run.calls, 'recordAutoStopWarning');
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toEqual(expect.objectContaining({ reason: 'idle', startRunId: 'run-1', timeoutMs: HOUR }));
  expect(Math.abs(warnings[0].deadlineMs - (t0 + HOUR))).toBeLessThan(5_000);
  // The warning comes 5 minutes before the stop, the stop at the deadline.
  expect(run.at.recordAutoStopWarning![0]! - t0).toBeGreaterThanOrEqual(HOUR - 300_000 - 1_000);
  expect(run.at.requestAutoStop![0]! - t0).toBeGreaterThanOrEqual(HOUR - 1_000);
  expect(inputsOf(run.calls, 'requestAutoStop')).toEqual([
    { gitspaceId: run.gitspaceId, startRunId: 'run-1', reason: 'idle' },
  ]);
  expect(trace(run.calls).filter((name) => name !== 'autoStopStatus' && name !== 'observeGatewayActivity')).toEqual([
    'recordAutoStopWarning',
    'requestAutoStop',
  ]);
});

it('does not stop at the old deadline when the gitspace is used after the warning', async () => {
  const t0 = await now();
  const gitspace: Gitspace = {
    policy: { idleSeconds: 3600, maxLifetimeSeconds: null },
    runningSinceMs: t0,
    lastUse: t0,
  };
  const run = await watch(gitspace, {
    controlPlane: {
      // Someone comes back right after the first warning.
      recordAutoStopWarning: async () => {
        if (gitspace.lastUse === t0) gitspace.lastUse = await now();
      },
    },
  });
  expect(run.value).toEqual({ outcome: 'stopped', reason: 'idle' });
  const warnings = inputsOf(run.calls, 'recordAutoStopWarning');
  expect(warnings).toHaveLength(2);
  expect(warnings[1].deadlineMs - warnings[0].deadlineMs).toBeGreaterThan(HOUR - 400_000);
  expect(run.at.requestAutoStop![0]! - t0).toBeGreaterThanOrEqual(2 * HOUR - 400_000);
});

it('stops a gitspace in constant use when it reaches its maximum lifetime', async () => {
  const t0 = await now();
  const run = await watch({ policy: { idleSeconds: 600, maxLifetimeSeconds: 8 * 3600 }, runningSinceMs: t0 });
  expect(run.value).toEqual({ outcome: 'stopped', reason: 'max-lifetime' });
  expect(inputsOf(run.calls, 'recordAutoStopWarning')).toEqual([
    expect.objectContaining({ reason: 'max-lifetime', deadlineMs: t0 + 8 * HOUR }),
  ]);
  expect(run.at.requestAutoStop![0]!).toBeGreaterThanOrEqual(t0 + 8 * HOUR);
  // Sleeps, not a busy loop: one look per idle period or so.
  expect(inputsOf(run.calls, 'autoStopStatus').length).toBeLessThan(100);
});

it('makes no idle stop without evidence when the gateway cannot be observed, but still stops at the lifetime', async () => {
  const t0 = await now();
  const run = await watch(
    { policy: { idleSeconds: 600, maxLifetimeSeconds: 3 * 3600 }, runningSinceMs: t0, lastUse: t0 },
    {
      runner: {
        observeGatewayActivity: async () => {
          throw new Error('the gateway admin listener is down');
        },
      },
    },
  );
  expect(run.value).toEqual({ outcome: 'stopped', reason: 'max-lifetime' });
  expect(inputsOf(run.calls, 'requestAutoStop')).toEqual([expect.objectContaining({ reason: 'max-lifetime' })]);
  expect(run.at.requestAutoStop![0]!).toBeGreaterThanOrEqual(t0 + 3 * HOUR);
  // Said once, across the runs it continued as new into (it looks again every minute).
  expect(inputsOf(run.calls, 'recordAutoStopUnobserved')).toHaveLength(1);
}, 60_000);

it('ends without a stop when the gitspace runs under another start', async () => {
  const t0 = await now();
  const run = await watch({
    policy: { idleSeconds: 600, maxLifetimeSeconds: null },
    runningSinceMs: t0,
    lastUse: t0 - HOUR,
    runId: 'run-other',
  });
  expect(run.value).toEqual({ outcome: 'not-running' });
  expect(inputsOf(run.calls, 'requestAutoStop')).toEqual([]);
});

it('watches the new start when armed again while it sleeps', async () => {
  const t0 = await now();
  const gitspace: Gitspace = {
    policy: { idleSeconds: 3600, maxLifetimeSeconds: null },
    runningSinceMs: t0,
    lastUse: t0,
  };
  const run = await watch(gitspace, {
    during: async (handle) => {
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Stopped and started again: a new run, running since later.
      gitspace.runId = 'run-2';
      gitspace.runningSinceMs = (await now()) + 1_800_000;
      await handle.signal(AUTO_STOP_SIGNALS.armed, { startRunId: 'run-2' });
    },
  });
  expect(run.value).toEqual({ outcome: 'stopped', reason: 'idle' });
  expect(inputsOf(run.calls, 'requestAutoStop')).toEqual([expect.objectContaining({ startRunId: 'run-2' })]);
  expect(run.at.requestAutoStop![0]!).toBeGreaterThanOrEqual(gitspace.runningSinceMs + HOUR - 1_000);
});

it('asks again a minute later while another operation holds the gitspace', async () => {
  const t0 = await now();
  const run = await watch({
    policy: { idleSeconds: 3600, maxLifetimeSeconds: null },
    runningSinceMs: t0,
    lastUse: t0,
    answers: ['conflict', 'conflict'],
  });
  expect(run.value).toEqual({ outcome: 'stopped', reason: 'idle' });
  const asked = run.at.requestAutoStop!;
  expect(asked).toHaveLength(3);
  expect(asked[1]! - asked[0]!).toBeGreaterThanOrEqual(60_000);
  expect(asked[2]! - asked[1]!).toBeGreaterThanOrEqual(60_000);
  expect(inputsOf(run.calls, 'recordAutoStopWarning')).toHaveLength(1);
});

it('gives no second warning for a deadline it warned of before continuing as new', async () => {
  const t0 = await now();
  const deadline = t0 - 10_000 + HOUR;
  const run = await watch(
    { policy: { idleSeconds: 3600, maxLifetimeSeconds: null }, runningSinceMs: t0 - HOUR, lastUse: t0 - 10_000 },
    { input: { warnedFor: `idle@${deadline}` } },
  );
  expect(run.value).toEqual({ outcome: 'stopped', reason: 'idle' });
  expect(inputsOf(run.calls, 'recordAutoStopWarning')).toEqual([]);
});
