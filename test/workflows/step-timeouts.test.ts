import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { InfrastructureActivities } from '../../activities/infrastructure';
import { STEPS, type StepName } from '../../contracts/lifecycle';
import {
  ACTOR,
  inputsOf,
  machineFor,
  runWorkflow,
  useWorkflowHarness,
  trace,
  type ActivityMock,
} from '../support/workflow-harness';

/**
 * Every infrastructure step's timeout wordings (start-to-close and heartbeat), each from a real server-side timeout at
 * the limit the workflow gave that step, with the limit read back from the activity's own info rather than copied
 * here: the test fails when a message stops naming its step or the limit the server enforced, or changes its words.
 *
 * How the minutes pass in seconds: the time-skipping test server does not skip time while an activity runs (see
 * test/support/workflow-harness.ts), so the activity moves the server's clock itself with `env.sleep`, which unlocks
 * time skipping for that long, heartbeating between sleeps when it must. It stops short of its deadline and lets the
 * last fraction of a second pass in real time, so the server times the attempt out while the attempt's own time lock
 * is held, as in a real run. (A sleep over the deadline would have the timeout release a lock the sleep had already
 * released: the lock count ends one too high, and retry backoffs take real time for the rest of the file.)
 */
const harness = useWorkflowHarness();

type InfraStep = keyof InfrastructureActivities & StepName;
const ACTION_OF = { startGitspace: 'start', stopGitspace: 'stop', deleteGitspace: 'delete' } as const;
type LifecycleWorkflow = keyof typeof ACTION_OF;

/** Every infrastructure step, with a workflow that runs it as a step of its own (not as compensation). */
const STEPS_BY_WORKFLOW: [InfraStep, LifecycleWorkflow][] = [
  ['ensureMachine', 'startGitspace'],
  ['waitForMachine', 'startGitspace'],
  ['waitForAgent', 'startGitspace'],
  ['prepareWorkspace', 'startGitspace'],
  ['registerRoute', 'startGitspace'],
  ['removeRoute', 'stopGitspace'],
  ['stopMachine', 'stopGitspace'],
  ['deleteMachine', 'deleteGitspace'],
];
/** The steps that must heartbeat (a runner that dies mid-step is noticed in seconds). */
const HEARTBEATING_STEPS: InfraStep[] = [
  'ensureMachine',
  'waitForMachine',
  'waitForAgent',
  'prepareWorkspace',
  'stopMachine',
  'deleteMachine',
];

const STOP_THE_MACHINE = ['recordStep stopMachine', 'stopMachine', 'recordStep waitForMachine', 'waitForMachine'];

/** How far short of its deadline an attempt stops moving the clock; the rest passes in real time. */
const SHORT_OF_DEADLINE_MS = 250;
/** Longer than the harness runner's heartbeat throttle (50 ms): the last heartbeat has reached the server. */
const HEARTBEAT_DELIVERY_MS = 60;

/** A runner whose every step succeeds, each the way the workflow that calls it expects. */
function healthyRunner(): Record<InfraStep, ActivityMock> {
  const done = async () => undefined;
  return {
    ensureMachine: async (i) => machineFor(i.spec.gitspaceId, 'running'),
    waitForMachine: async (i) => (i.target === 'gone' ? null : machineFor(i.spec.gitspaceId, i.target)),
    waitForAgent: async () => 'http://10.0.0.2:8080',
    prepareWorkspace: done,
    registerRoute: done,
    removeRoute: done,
    stopMachine: async () => ({}),
    deleteMachine: async () => ({}),
  };
}

/** Limits as the workflow writes them: whole minutes as `3m`, anything else in seconds. */
function limitWords(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`;
}

/** How many attempts the workflow allows the step: the retry policy it scheduled the activity with. */
async function maximumAttemptsOf(info: Context['info']): Promise<number | undefined> {
  const { workflowId, runId } = info.workflowExecution!;
  const history = await harness().env.client.workflow.getHandle(workflowId, runId).fetchHistory();
  const scheduled = history.events?.find((e) => e.activityTaskScheduledEventAttributes?.activityId === info.activityId);
  return scheduled?.activityTaskScheduledEventAttributes?.retryPolicy?.maximumAttempts ?? undefined;
}

/**
 * The step's first call outlasts its limit on every attempt the retry policy allows, as far as the workflow can tell:
 * the workflow reports the last attempt's failure, so the attempts before it fail at once (retried, backoff skipped)
 * and only the last one drives the clock. Later calls of the step (compensation) succeed.
 */
function outlasting(limit: 'startToClose' | 'heartbeat', healthy: ActivityMock) {
  const seen: { info?: Context['info']; attempts: number; maximumAttempts?: number } = { attempts: 0 };
  const activity: ActivityMock = async (input) => {
    const context = Context.current();
    const { info } = context;
    seen.info ??= info;
    if (info.activityId !== seen.info.activityId) return healthy(input);
    // The server's clock when this attempt started, give or take the milliseconds it took to get here.
    const startedAt = await harness().env.currentTimeMs();
    seen.attempts = info.attempt;
    seen.maximumAttempts ??= await maximumAttemptsOf(info);
    if (!seen.maximumAttempts)
      throw ApplicationFailure.nonRetryable(`${info.activityType} has no attempt limit: it would never time out`);
    if (info.attempt < seen.maximumAttempts)
      throw ApplicationFailure.retryable('an earlier attempt fails at once', 'EarlierAttemptError');
    // Outlasting the start-to-close limit takes heartbeats; outlasting the heartbeat limit takes none.
    const heartbeats = limit === 'startToClose';
    const stopAt =
      startedAt + (heartbeats ? info.startToCloseTimeoutMs : info.heartbeatTimeoutMs!) - SHORT_OF_DEADLINE_MS;
    for (;;) {
      if (heartbeats) {
        context.heartbeat();
        await new Promise((resolve) => setTimeout(resolve, HEARTBEAT_DELIVERY_MS));
      }
      const now = await harness().env.currentTimeMs();
      if (now >= stopAt) break;
      const untilNextHeartbeat = heartbeats && info.heartbeatTimeoutMs ? info.heartbeatTimeoutMs - 1000 : Infinity;
      await harness().env.sleep(Math.min(stopAt - now, untilNextHeartbeat));
    }
    // The server times the attempt out now; the activity hears of it on a heartbeat, or is cancelled at shutdown.
    for (;;) {
      if (heartbeats) context.heartbeat();
      await context.sleep(HEARTBEAT_DELIVERY_MS);
    }
  };
  return { activity, seen };
}

async function expectStepTimeout(
  step: InfraStep,
  workflow: LifecycleWorkflow,
  limit: 'startToClose' | 'heartbeat',
  bound: (limitMs: number) => string,
): Promise<void> {
  const runner = healthyRunner();
  const { activity, seen } = outlasting(limit, runner[step]);
  const run = await runWorkflow(harness(), workflow, (gitspaceId) => ({ gitspaceId, actor: ACTOR }), {
    runner: { ...runner, [step]: activity },
  });
  const limitMs = limit === 'startToClose' ? seen.info?.startToCloseTimeoutMs : seen.info?.heartbeatTimeoutMs;
  expect(limitMs).toBeGreaterThan(0);
  expect(seen.attempts).toBe(seen.maximumAttempts);
  const message = `'${STEPS[step]}' timed out: ${bound(limitMs!)}`;
  expect(run.error).toBeInstanceOf(WorkflowFailedError);
  const failure = (run.error as WorkflowFailedError).cause as ApplicationFailure;
  expect(failure.message).toBe(message);
  expect(failure.type).toBe('StepTimeoutError');
  // A timed-out start compensates like any other failed one (only a step no runner picked up skips it).
  const compensation = workflow === 'startGitspace' ? STOP_THE_MACHINE : [];
  expect(trace(run.calls).slice(-compensation.length - 1)).toEqual([...compensation, 'failOperation']);
  expect(inputsOf(run.calls, 'failOperation')).toEqual([
    {
      gitspaceId: run.gitspaceId,
      actor: ACTOR,
      error: { action: ACTION_OF[workflow], step, message, cause: 'StepTimeoutError' },
    },
  ]);
}

it.each(STEPS_BY_WORKFLOW)(
  '%s (in %s) that outlasts its start-to-close limit fails naming the step and that limit',
  (step, workflow) =>
    expectStepTimeout(step, workflow, 'startToClose', (ms) => `it took longer than ${limitWords(ms)}`),
);

it.each(STEPS_BY_WORKFLOW.filter(([step]) => HEARTBEATING_STEPS.includes(step)))(
  '%s (in %s) whose runner stops heartbeating fails naming the step and the heartbeat limit',
  (step, workflow) =>
    expectStepTimeout(
      step,
      workflow,
      'heartbeat',
      (ms) => `the runner stopped reporting progress for ${limitWords(ms)}`,
    ),
);

it('the tables above name every infrastructure step the workflows run, and every one that heartbeats', async () => {
  const heartbeatLimits = new Map<string, number | undefined>();
  const runner = Object.fromEntries(
    Object.entries(healthyRunner()).map(([name, fn]): [string, ActivityMock] => [
      name,
      (input) => {
        heartbeatLimits.set(name, Context.current().info.heartbeatTimeoutMs);
        return fn(input);
      },
    ]),
  );
  for (const workflow of Object.keys(ACTION_OF) as LifecycleWorkflow[]) {
    const run = await runWorkflow(harness(), workflow, (gitspaceId) => ({ gitspaceId, actor: ACTOR }), { runner });
    expect(run.error).toBeUndefined();
  }
  expect([...heartbeatLimits.keys()].sort()).toEqual(STEPS_BY_WORKFLOW.map(([step]) => step).sort());
  expect(
    [...heartbeatLimits]
      .filter(([, heartbeat]) => heartbeat)
      .map(([step]) => step)
      .sort(),
  ).toEqual([...HEARTBEATING_STEPS].sort());
});
