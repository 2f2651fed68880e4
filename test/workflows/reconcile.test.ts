import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import {
  UNIT_INFRASTRUCTURE,
  inputsOf,
  machineFor,
  runWorkflow,
  useWorkflowHarness,
  trace,
  type ActivityMock,
  type RunOptions,
} from '../support/workflow-harness';

/** The reconcile workflow's unit tests: the real workflow on the time-skipping test server, plain activities. */
const harness = useWorkflowHarness();

const infrastructure = { infrastructureId: UNIT_INFRASTRUCTURE, provider: 'local', providerConfig: { zone: 'z' } };
const machines = ['gs-a', 'gs-b', 'gs-c', 'gs-d'].map((id) => machineFor(id, 'running'));

function reconcile(plan: Record<string, unknown>, runner: Record<string, ActivityMock> = {}, options: RunOptions = {}) {
  return runWorkflow(harness(), 'reconcileInfrastructure', () => ({ infrastructureId: UNIT_INFRASTRUCTURE }), {
    controlPlane: {
      describeInfrastructure: async () => infrastructure,
      reconcile: async () => plan,
      recordReconciliation: async () => undefined,
    },
    runner: {
      observeMachines: async () => machines,
      removeRoute: async () => undefined,
      stopMachine: async () => ({}),
      deleteMachine: async () => ({}),
      ...runner,
    },
    ...options,
  });
}

it('observes, asks for a plan, carries it out with its signed order, and records what it did', async () => {
  const run = await reconcile({
    removeRoutes: ['gs-a'],
    stopMachines: ['gs-b'],
    deleteMachines: ['gs-c'],
    awaitingGrace: ['gs-d'],
    order: 'plan-order',
  });
  const result = {
    observed: 4,
    stopped: ['gs-b'],
    deleted: ['gs-c'],
    routesRemoved: ['gs-a'],
    awaitingGrace: ['gs-d'],
    failed: [],
  };
  expect(run.error).toBeUndefined();
  expect(run.value).toEqual(result);
  expect(trace(run.calls)).toEqual([
    'describeInfrastructure',
    'observeMachines',
    'reconcile',
    'removeRoute',
    'stopMachine',
    'deleteMachine',
    'recordReconciliation',
  ]);
  // Observing is read-only, so unsigned; every repair carries the plan's order.
  expect(inputsOf(run.calls, 'observeMachines')).toEqual([{ infrastructure }]);
  expect(inputsOf(run.calls, 'reconcile')).toEqual([{ infrastructureId: UNIT_INFRASTRUCTURE, machines }]);
  expect(inputsOf(run.calls, 'removeRoute')).toEqual([{ gitspaceId: 'gs-a', order: 'plan-order' }]);
  expect(inputsOf(run.calls, 'stopMachine')).toEqual([
    { spec: { ...infrastructure, gitspaceId: 'gs-b' }, order: 'plan-order' },
  ]);
  expect(inputsOf(run.calls, 'deleteMachine')).toEqual([
    { spec: { ...infrastructure, gitspaceId: 'gs-c' }, order: 'plan-order' },
  ]);
  const [recorded] = inputsOf(run.calls, 'recordReconciliation');
  expect(recorded).toEqual({ infrastructureId: UNIT_INFRASTRUCTURE, runId: expect.any(String), result });
  expect(recorded.runId).not.toBe('');
});

it('a repair that fails (after its retries) is reported and does not keep the others from running', async () => {
  const run = await reconcile(
    { removeRoutes: [], stopMachines: ['gs-b', 'gs-c'], deleteMachines: ['gs-d'], awaitingGrace: [] },
    {
      stopMachine: async (i) => {
        if (i.spec.gitspaceId === 'gs-b')
          throw ApplicationFailure.nonRetryable('the cloud refused', 'ProviderAuthError');
        return {};
      },
      deleteMachine: async () => {
        throw ApplicationFailure.retryable('disk busy', 'RateLimitedError');
      },
    },
  );
  expect(run.error).toBeUndefined();
  expect(run.value).toMatchObject({
    stopped: ['gs-c'],
    deleted: [],
    failed: [
      { gitspaceId: 'gs-b', action: 'stop', message: 'the cloud refused' },
      { gitspaceId: 'gs-d', action: 'delete', message: 'disk busy' },
    ],
  });
  // A retryable failure is tried three times, a non-retryable one once.
  expect(inputsOf(run.calls, 'deleteMachine')).toHaveLength(3);
  expect(inputsOf(run.calls, 'stopMachine').map((i) => i.spec.gitspaceId)).toEqual(['gs-b', 'gs-c']);
  expect(inputsOf(run.calls, 'recordReconciliation')[0].result.failed).toHaveLength(2);
});

it('a plan without an order (recorded before work orders) repairs without one', async () => {
  const run = await reconcile({ removeRoutes: ['gs-a'], stopMachines: [], deleteMachines: [], awaitingGrace: [] });
  expect(run.error).toBeUndefined();
  expect(inputsOf(run.calls, 'removeRoute')).toEqual([{ gitspaceId: 'gs-a' }]);
});

it('fails when the runner refuses to observe (a wrong infrastructure), recording nothing', async () => {
  const run = await reconcile(
    { removeRoutes: [], stopMachines: [], deleteMachines: [], awaitingGrace: [] },
    {
      observeMachines: async () => {
        throw ApplicationFailure.retryable('this runner serves another infrastructure', 'WrongInfrastructureError');
      },
    },
  );
  expect(run.error).toBeInstanceOf(WorkflowFailedError);
  expect(run.error.cause).toBeInstanceOf(ActivityFailure);
  expect(run.error.cause.cause).toMatchObject({
    message: 'this runner serves another infrastructure',
    type: 'WrongInfrastructureError',
  });
  expect(inputsOf(run.calls, 'observeMachines')).toHaveLength(1);
  expect(trace(run.calls)).toEqual(['describeInfrastructure', 'observeMachines']);
});
