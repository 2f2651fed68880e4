import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { StepName } from '../../contracts/lifecycle';
import {
  ACTOR,
  ORDER,
  UNIT_INFRASTRUCTURE,
  inputsOf,
  machineFor,
  runWorkflow,
  signal,
  useWorkflowHarness,
  trace,
  type ActivityMock,
  type RunOptions,
} from '../support/workflow-harness';

/**
 * The lifecycle workflows' unit tests: the real workflow code on the time-skipping test server, the activities plain
 * functions (test/support/workflow-harness.ts). Every branch of start's compensation, every timeout's words, the
 * cancellations and the runner that never answers, asserted on the bookkeeping calls the workflow makes.
 */
const harness = useWorkflowHarness();

const input = (gitspaceId: string) => ({ gitspaceId, actor: ACTOR });
const start = (options: RunOptions = {}) => runWorkflow(harness(), 'startGitspace', input, options);
const stop = (options: RunOptions = {}) => runWorkflow(harness(), 'stopGitspace', input, options);
const remove = (options: RunOptions = {}) => runWorkflow(harness(), 'deleteGitspace', input, options);

const OPERATION = { kind: 'zone', name: 'op-1', zone: 'z' };

/** A runner whose every step succeeds: the machine runs, then stops, then is gone, as each wait asks. */
function healthyRunner(overrides: Record<string, ActivityMock> = {}): Record<string, ActivityMock> {
  return {
    ensureMachine: async (i) => ({ ...machineFor(i.spec.gitspaceId, 'running'), operation: OPERATION }),
    waitForMachine: async (i) => (i.target === 'gone' ? null : machineFor(i.spec.gitspaceId, i.target)),
    waitForAgent: async () => 'http://10.0.0.2:8080',
    prepareWorkspace: async () => undefined,
    registerRoute: async () => undefined,
    removeRoute: async () => undefined,
    stopMachine: async () => ({ operation: { ...OPERATION, name: 'op-stop' } }),
    deleteMachine: async () => ({ operation: { ...OPERATION, name: 'op-delete' } }),
    ...overrides,
  };
}

const refuse = (message: string, type: string) => async () => {
  throw ApplicationFailure.nonRetryable(message, type);
};

/** The workflow failed with this message and type (the failure converter's encoded attributes opened). */
function expectFailedWith(error: unknown, message: string, type: string): void {
  expect(error).toBeInstanceOf(WorkflowFailedError);
  const cause = (error as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  expect((cause as ApplicationFailure).message).toBe(message);
  expect((cause as ApplicationFailure).type).toBe(type);
  expect((cause as ApplicationFailure).nonRetryable).toBe(true);
}

function expectCancelled(error: unknown): void {
  expect(error).toBeInstanceOf(WorkflowFailedError);
  expect((error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
}

describe('startGitspace', () => {
  it('stays running when its auto-stop cannot be armed (the control plane arms it again when it starts)', async () => {
    const run = await start({
      runner: healthyRunner(),
      controlPlane: {
        armAutoStop: async () => {
          throw ApplicationFailure.nonRetryable('Temporal refused the signal', 'ArmingFailedError');
        },
      },
    });
    expect(run.error).toBeUndefined();
    expect(run.value).toEqual({ url: `https://gateway.example.test/gitspaces/${run.gitspaceId}/` });
    expect(trace(run.calls).slice(-2)).toEqual(['completeOperation', 'armAutoStop']);
  });

  it('runs every step in order with the work order, hands the cloud operation on, and records running with the url', async () => {
    const run = await start({ runner: healthyRunner(), begin: { repositoryTokenSealed: 'sealed-token' } });
    expect(run.error).toBeUndefined();
    const url = `https://gateway.example.test/gitspaces/${run.gitspaceId}/`;
    expect(run.value).toEqual({ url });
    expect(trace(run.calls)).toEqual([
      'beginOperation',
      'recordStep ensureMachine',
      'ensureMachine',
      'recordStep waitForMachine',
      'waitForMachine',
      'recordStep waitForAgent',
      'waitForAgent',
      'recordStep prepareWorkspace',
      'prepareWorkspace',
      'recordStep registerRoute',
      'registerRoute',
      'completeOperation',
      'armAutoStop',
    ]);
    expect(inputsOf(run.calls, 'beginOperation')).toEqual([
      { gitspaceId: run.gitspaceId, action: 'start', actor: ACTOR },
    ]);
    // Running: its auto-stop watcher is armed for this very start.
    expect(inputsOf(run.calls, 'armAutoStop')).toEqual([
      { gitspaceId: run.gitspaceId, startRunId: expect.stringMatching(/^[0-9a-f-]{36}$/) },
    ]);
    for (const call of run.calls.filter((c) => c.queue === 'runner')) expect(call.input.order).toBe(ORDER);
    expect(inputsOf(run.calls, 'waitForMachine')[0]).toMatchObject({ target: 'running', operation: OPERATION });
    expect(inputsOf(run.calls, 'prepareWorkspace')[0].repositoryTokenSealed).toBe('sealed-token');
    expect(inputsOf(run.calls, 'recordStep')[0]).toEqual({
      gitspaceId: run.gitspaceId,
      step: 'ensureMachine',
      actor: ACTOR,
    });
    expect(inputsOf(run.calls, 'completeOperation')).toEqual([
      {
        gitspaceId: run.gitspaceId,
        action: 'start',
        url,
        machine: machineFor(run.gitspaceId, 'running'),
        actor: ACTOR,
      },
    ]);
    expect(inputsOf(run.calls, 'failOperation')).toEqual([]);
  });

  it('records the SSH host key the route step brings back with running (none from an agent before SSH, above)', async () => {
    const sshHostKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFVzbXNnCSQ2ZlJ3WmVoRUtlSFNTaHZ3ZnYycnFQWUlWZWE';
    const run = await start({ runner: healthyRunner({ registerRoute: async () => ({ sshHostKey }) }) });
    expect(run.error).toBeUndefined();
    expect(inputsOf(run.calls, 'completeOperation')).toEqual([
      expect.objectContaining({ action: 'start', sshHostKey }),
    ]);
  });

  const stopAndWait = ['recordStep stopMachine', 'stopMachine', 'recordStep waitForMachine', 'waitForMachine'];
  const removeThenStop = ['recordStep removeRoute', 'removeRoute', ...stopAndWait];
  it.each<[StepName, string[]]>([
    ['ensureMachine', stopAndWait],
    ['waitForMachine', stopAndWait],
    ['waitForAgent', stopAndWait],
    ['prepareWorkspace', stopAndWait],
    ['registerRoute', removeThenStop],
  ])(
    'a failure at %s compensates with %j (in reverse order of the steps) and records the step and message',
    async (failing, compensation) => {
      const message = `${failing} broke`;
      const run = await start({ runner: healthyRunner({ [failing]: refuse(message, 'QuotaExceededError') }) });
      expectFailedWith(run.error, message, 'QuotaExceededError');
      const steps = trace(run.calls);
      const afterFailure = steps.slice(steps.indexOf(failing) + 1);
      if (failing === 'waitForMachine') {
        // The first waitForMachine is the failing step; the compensation's waits for 'stopped'.
        expect(inputsOf(run.calls, 'waitForMachine').map((i) => i.target)).toEqual(['running', 'stopped']);
      }
      expect(afterFailure).toEqual([...compensation, 'failOperation']);
      expect(inputsOf(run.calls, 'stopMachine')[0].spec.gitspaceId).toBe(run.gitspaceId);
      expect(inputsOf(run.calls, 'waitForMachine').at(-1)).toMatchObject({
        target: 'stopped',
        operation: { ...OPERATION, name: 'op-stop' },
      });
      expect(inputsOf(run.calls, 'failOperation')).toEqual([
        {
          gitspaceId: run.gitspaceId,
          actor: ACTOR,
          error: { action: 'start', step: failing, message, cause: 'QuotaExceededError' },
        },
      ]);
      expect(inputsOf(run.calls, 'completeOperation')).toEqual([]);
      expect(inputsOf(run.calls, 'cancelOperation')).toEqual([]);
    },
  );

  it('a machine that disappears while starting fails at waitForMachine with InstanceNotFoundError, compensated', async () => {
    const run = await start({
      runner: healthyRunner({
        waitForMachine: async (i) => (i.target === 'running' ? null : machineFor('x', 'stopped')),
      }),
    });
    expectFailedWith(run.error, 'the machine disappeared while starting', 'InstanceNotFoundError');
    expect(inputsOf(run.calls, 'failOperation')[0].error).toEqual({
      action: 'start',
      step: 'waitForMachine',
      message: 'the machine disappeared while starting',
      cause: 'InstanceNotFoundError',
    });
    expect(trace(run.calls).slice(-5)).toEqual([...stopAndWait, 'failOperation']);
  });

  it('compensation steps that fail are listed after the failure, each with its reason', async () => {
    const run = await start({
      runner: healthyRunner({
        registerRoute: refuse('the gateway refused the route', 'GatewayError'),
        removeRoute: refuse('the gateway is down', 'GatewayError'),
        stopMachine: refuse('the cloud refused to stop it', 'ProviderAuthError'),
      }),
    });
    const message =
      'the gateway refused the route; the gateway route could not be removed: the gateway is down; ' +
      'the machine could not be stopped: the cloud refused to stop it';
    expectFailedWith(run.error, message, 'GatewayError');
    // The machine's wait is part of stopping it: a failed stop skips it.
    expect(trace(run.calls).slice(-5)).toEqual([
      'recordStep removeRoute',
      'removeRoute',
      'recordStep stopMachine',
      'stopMachine',
      'failOperation',
    ]);
    expect(inputsOf(run.calls, 'failOperation')[0].error).toEqual({
      action: 'start',
      step: 'registerRoute',
      message,
      cause: 'GatewayError',
    });
  });

  it('a runner older than the contract fails at once (not retried), said once though compensation is refused alike', async () => {
    const refusal = `runner for infrastructure '${UNIT_INFRASTRUCTURE}' is version 1, needs 2; upgrade it (runner contract version)`;
    const run = await start({
      runner: healthyRunner({
        ensureMachine: refuse(refusal, 'RunnerContractVersionError'),
        stopMachine: refuse(refusal, 'RunnerContractVersionError'),
      }),
    });
    expectFailedWith(run.error, refusal, 'RunnerContractVersionError');
    expect(inputsOf(run.calls, 'ensureMachine')).toHaveLength(1);
    expect(inputsOf(run.calls, 'stopMachine')).toHaveLength(1);
    expect(inputsOf(run.calls, 'failOperation')[0].error).toEqual({
      action: 'start',
      step: 'ensureMachine',
      message: refusal,
      cause: 'RunnerContractVersionError',
    });
  });

  it('retries a retryable step failure (backoff skipped) and goes on when it succeeds', async () => {
    let attempts = 0;
    const run = await start({
      runner: healthyRunner({
        ensureMachine: async (i) => {
          if (++attempts < 3) throw ApplicationFailure.retryable('no capacity right now', 'CapacityUnavailableError');
          return machineFor(i.spec.gitspaceId, 'running');
        },
      }),
    });
    expect(run.error).toBeUndefined();
    expect(inputsOf(run.calls, 'ensureMachine')).toHaveLength(3);
    expect(inputsOf(run.calls, 'completeOperation')).toHaveLength(1);
  });

  it('gives up a retryable failure after 8 attempts, with the last attempt’s words', async () => {
    let attempts = 0;
    const run = await start({
      runner: healthyRunner({
        waitForAgent: async () => {
          throw ApplicationFailure.retryable(`agent not up (attempt ${++attempts})`, 'AgentUnreachableError');
        },
      }),
    });
    expectFailedWith(run.error, 'agent not up (attempt 8)', 'AgentUnreachableError');
    expect(inputsOf(run.calls, 'waitForAgent')).toHaveLength(8);
  });

  it.each([
    'InvalidMachineSpecError',
    'QuotaExceededError',
    'ProviderAuthError',
    'InstanceNotFoundError',
    'WorkOrderRefusedError',
  ])('does not retry a %s', async (type) => {
    const run = await start({
      runner: healthyRunner({
        ensureMachine: async () => {
          throw ApplicationFailure.retryable('refused', type);
        },
      }),
    });
    expectFailedWith(run.error, 'refused', type);
    expect(inputsOf(run.calls, 'ensureMachine')).toHaveLength(1);
  });

  it('with no runner polling, fails after the pickup timeout naming the infrastructure, and skips compensation', async () => {
    const run = await start({ runner: false });
    const message = `no runner is serving infrastructure '${UNIT_INFRASTRUCTURE}': nothing picked up 'ensure the machine exists and runs' within 1s`;
    expectFailedWith(run.error, message, 'RunnerUnavailableError');
    expect(trace(run.calls)).toEqual(['beginOperation', 'recordStep ensureMachine', 'failOperation']);
    expect(inputsOf(run.calls, 'failOperation')[0]).toEqual({
      gitspaceId: run.gitspaceId,
      actor: ACTOR,
      error: { action: 'start', step: 'ensureMachine', message, cause: 'RunnerUnavailableError' },
    });
  });

  it('the pickup timeout is the one beginOperation gives', async () => {
    const run = await start({ runner: false, begin: { runnerPickupTimeoutSeconds: 2 } });
    expect(inputsOf(run.calls, 'failOperation')[0].error.message).toMatch(/ within 2s$/);
  });

  it.each<[StepName, string[]]>([
    ['waitForAgent', stopAndWait],
    ['registerRoute', removeThenStop],
  ])(
    'a start cancelled (by a stop) at %s compensates with %j, records the cancellation and ends cancelled',
    async (blocking, compensation) => {
      const started = signal();
      const run = await start({
        runner: healthyRunner({
          [blocking]: async () => {
            started.resolve();
            for (;;) {
              Context.current().heartbeat();
              await Context.current().sleep(20);
            }
          },
        }),
        during: async (handle) => {
          await started.promise;
          await handle.cancel();
        },
      });
      expectCancelled(run.error);
      const steps = trace(run.calls);
      expect(steps.slice(steps.indexOf(blocking) + 1)).toEqual([...compensation, 'cancelOperation']);
      expect(inputsOf(run.calls, 'cancelOperation')).toEqual([
        { gitspaceId: run.gitspaceId, action: 'start', actor: ACTOR },
      ]);
      expect(inputsOf(run.calls, 'failOperation')).toEqual([]);
      expect(inputsOf(run.calls, 'completeOperation')).toEqual([]);
    },
  );
});

describe('stopGitspace', () => {
  it('removes the route, stops the machine, waits for it with the stop operation, and records stopped', async () => {
    const run = await stop({ runner: healthyRunner() });
    expect(run.error).toBeUndefined();
    expect(trace(run.calls)).toEqual([
      'beginOperation',
      'recordStep removeRoute',
      'removeRoute',
      'recordStep stopMachine',
      'stopMachine',
      'recordStep waitForMachine',
      'waitForMachine',
      'completeOperation',
    ]);
    expect(inputsOf(run.calls, 'removeRoute')).toEqual([{ gitspaceId: run.gitspaceId, order: ORDER }]);
    expect(inputsOf(run.calls, 'waitForMachine')[0]).toMatchObject({
      target: 'stopped',
      operation: { ...OPERATION, name: 'op-stop' },
    });
    expect(inputsOf(run.calls, 'completeOperation')).toEqual([
      { gitspaceId: run.gitspaceId, action: 'stop', machine: machineFor(run.gitspaceId, 'stopped'), actor: ACTOR },
    ]);
  });

  it('a failed step records the error at that step, with nothing to compensate', async () => {
    const run = await stop({
      runner: healthyRunner({ stopMachine: refuse('the cloud said no', 'ProviderAuthError') }),
    });
    expectFailedWith(run.error, 'the cloud said no', 'ProviderAuthError');
    expect(trace(run.calls).slice(-3)).toEqual(['recordStep stopMachine', 'stopMachine', 'failOperation']);
    expect(inputsOf(run.calls, 'failOperation')).toEqual([
      {
        gitspaceId: run.gitspaceId,
        actor: ACTOR,
        error: { action: 'stop', step: 'stopMachine', message: 'the cloud said no', cause: 'ProviderAuthError' },
      },
    ]);
  });

  it('with no runner polling, fails after the pickup timeout at the first step', async () => {
    const run = await stop({ runner: false });
    const message = `no runner is serving infrastructure '${UNIT_INFRASTRUCTURE}': nothing picked up 'remove the gateway route' within 1s`;
    expectFailedWith(run.error, message, 'RunnerUnavailableError');
    expect(inputsOf(run.calls, 'failOperation')[0].error).toEqual({
      action: 'stop',
      step: 'removeRoute',
      message,
      cause: 'RunnerUnavailableError',
    });
  });

  it('a cancelled stop records that it did not finish (status cancelled) and ends cancelled', async () => {
    const started = signal();
    const run = await stop({
      runner: healthyRunner({
        stopMachine: async () => {
          started.resolve();
          for (;;) {
            Context.current().heartbeat();
            await Context.current().sleep(20);
          }
        },
      }),
      during: async (handle) => {
        await started.promise;
        await handle.cancel();
      },
    });
    expectCancelled(run.error);
    expect(inputsOf(run.calls, 'failOperation')).toEqual([
      {
        gitspaceId: run.gitspaceId,
        actor: ACTOR,
        error: {
          action: 'stop',
          step: 'stopMachine',
          message: "the stop was cancelled at 'stop the machine' before it finished; retry it",
          cause: 'OperationCancelledError',
        },
        status: 'cancelled',
      },
    ]);
    expect(inputsOf(run.calls, 'completeOperation')).toEqual([]);
  });
});

describe('deleteGitspace', () => {
  it('removes the route, deletes the machine, waits until it is gone, and records deleted', async () => {
    const run = await remove({ runner: healthyRunner() });
    expect(run.error).toBeUndefined();
    expect(trace(run.calls)).toEqual([
      'beginOperation',
      'recordStep removeRoute',
      'removeRoute',
      'recordStep deleteMachine',
      'deleteMachine',
      'recordStep waitForMachine',
      'waitForMachine',
      'completeOperation',
    ]);
    expect(inputsOf(run.calls, 'waitForMachine')[0]).toMatchObject({
      target: 'gone',
      operation: { ...OPERATION, name: 'op-delete' },
    });
    expect(inputsOf(run.calls, 'completeOperation')).toEqual([
      { gitspaceId: run.gitspaceId, action: 'delete', actor: ACTOR },
    ]);
  });

  it('with no runner polling, deletes the record with a warning and leaves the machine to reconciliation', async () => {
    const run = await remove({ runner: false });
    expect(run.error).toBeUndefined();
    expect(trace(run.calls)).toEqual(['beginOperation', 'recordStep removeRoute', 'completeOperation']);
    expect(inputsOf(run.calls, 'completeOperation')).toEqual([
      {
        gitspaceId: run.gitspaceId,
        action: 'delete',
        actor: ACTOR,
        warning:
          `no runner is serving infrastructure '${UNIT_INFRASTRUCTURE}': nothing picked up 'remove the gateway route' within 1s; ` +
          'its machine, disks and gateway route (if any) are left for reconciliation to delete once a runner serves the infrastructure again',
      },
    ]);
    expect(inputsOf(run.calls, 'failOperation')).toEqual([]);
  });

  it('a failed delete records the error (a runner that answers is not a missing one)', async () => {
    const run = await remove({
      runner: healthyRunner({ deleteMachine: refuse('disk is locked', 'QuotaExceededError') }),
    });
    expectFailedWith(run.error, 'disk is locked', 'QuotaExceededError');
    expect(inputsOf(run.calls, 'completeOperation')).toEqual([]);
    expect(inputsOf(run.calls, 'failOperation')[0].error.step).toBe('deleteMachine');
  });

  it('a cancelled delete records that it did not finish and ends cancelled', async () => {
    const started = signal();
    const run = await remove({
      runner: healthyRunner({
        deleteMachine: async () => {
          started.resolve();
          for (;;) {
            Context.current().heartbeat();
            await Context.current().sleep(20);
          }
        },
      }),
      during: async (handle) => {
        await started.promise;
        await handle.cancel();
      },
    });
    expectCancelled(run.error);
    expect(inputsOf(run.calls, 'failOperation')).toEqual([
      {
        gitspaceId: run.gitspaceId,
        actor: ACTOR,
        error: {
          action: 'delete',
          step: 'deleteMachine',
          message: "the delete was cancelled at 'delete the machine and its disks' before it finished; retry it",
          cause: 'OperationCancelledError',
        },
        status: 'cancelled',
      },
    ]);
  });
});
