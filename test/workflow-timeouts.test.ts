import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { STEPS, type StepName } from '../contracts/lifecycle';
import {
  ACTOR,
  inputsOf,
  machineFor,
  runWorkflow,
  startWorkflowHarness,
  trace,
  type ActivityMock,
  type WorkflowHarness,
} from './support/workflow-harness';

/**
 * The start-to-close and heartbeat timeout wordings, from real server-side timeouts. In the system set, not the fast
 * one: the time-skipping test server does not skip time while an activity runs, so each timeout takes its real 30 s
 * (the retries before it are skipped). The pickup timeout's wording is in the fast set (test/workflows/gitspace-lifecycle.test.ts).
 */
let harness: WorkflowHarness;
beforeAll(async () => {
  harness = await startWorkflowHarness();
}, 120_000);
afterAll(async () => {
  await harness?.teardown();
});

const healthyRunner: Record<string, ActivityMock> = {
  ensureMachine: async (i) => machineFor(i.spec.gitspaceId, 'running'),
  waitForMachine: async (i) => machineFor(i.spec.gitspaceId, i.target),
  waitForAgent: async () => 'http://10.0.0.2:8080',
  prepareWorkspace: async () => undefined,
  registerRoute: async () => undefined,
  removeRoute: async () => undefined,
  stopMachine: async () => ({}),
};

/** Fails its first seven attempts at once (retried, backoff skipped); the eighth and last hangs without a heartbeat. */
const hangsOnLastAttempt: ActivityMock = async () => {
  if (Context.current().info.attempt < 8) throw ApplicationFailure.retryable('not yet', 'CapacityUnavailableError');
  for (;;) await Context.current().sleep(1000);
};

it.each<[StepName, string, string[]]>([
  [
    'ensureMachine',
    'the runner stopped reporting progress for 30s',
    ['recordStep stopMachine', 'stopMachine', 'recordStep waitForMachine', 'waitForMachine', 'failOperation'],
  ],
  [
    'registerRoute',
    'it took longer than 30s',
    [
      'recordStep removeRoute',
      'removeRoute',
      'recordStep stopMachine',
      'stopMachine',
      'recordStep waitForMachine',
      'waitForMachine',
      'failOperation',
    ],
  ],
])(
  'a start whose %s times out on its last attempt fails with "%s" and compensates',
  async (step, bound, compensation) => {
    const run = await runWorkflow(harness, 'startGitspace', (gitspaceId) => ({ gitspaceId, actor: ACTOR }), {
      runner: { ...healthyRunner, [step]: hangsOnLastAttempt },
    });
    const message = `'${STEPS[step]}' timed out: ${bound}`;
    expect(run.error).toBeInstanceOf(WorkflowFailedError);
    expect((run.error as WorkflowFailedError).cause).toMatchObject({ message, type: 'StepTimeoutError' });
    expect(inputsOf(run.calls, step)).toHaveLength(8);
    expect(trace(run.calls).slice(-compensation.length)).toEqual(compensation);
    expect(inputsOf(run.calls, 'failOperation')).toEqual([
      {
        gitspaceId: run.gitspaceId,
        actor: ACTOR,
        error: { action: 'start', step, message, cause: 'StepTimeoutError' },
      },
    ]);
  },
  120_000,
);
