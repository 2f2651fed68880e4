import { ApplicationFailure } from '@temporalio/common';
import { UNIT_INFRASTRUCTURE, inputsOf, runWorkflow, useWorkflowHarness, type Call } from '../support/workflow-harness';

/** The warm pool's maintenance workflow (workflows/warm-pool.ts) on the time-skipping test server. */
const harness = useWorkflowHarness();

const infrastructure = { infrastructureId: UNIT_INFRASTRUCTURE, provider: 'simulated', providerConfig: {} };
const machine = { machineType: 'any', diskSizeGb: 10 };
const done = async () => undefined;

/** Runs maintainWarmPool with a plan of these keys to make and to delete, and these runner activities. */
function maintain(
  plan: { prepare: string[]; retire: string[] },
  runner: { prepareWarmMachine?: (input: any) => Promise<void>; deleteMachine?: (input: any) => Promise<void> },
) {
  return runWorkflow(harness(), 'maintainWarmPool', () => ({ infrastructureId: UNIT_INFRASTRUCTURE }), {
    controlPlane: {
      planWarmPool: async () => ({
        infrastructure,
        prepare: plan.prepare.map((key) => ({ key, machine, order: `order-${key}` })),
        retire: plan.retire.map((key) => ({ key, order: `order-${key}` })),
      }),
      warmMachineReady: done,
      warmMachineFailed: done,
      forgetWarmMachine: done,
    },
    runner: { prepareWarmMachine: done, deleteMachine: done, ...runner },
  });
}
const keysOf = (calls: Call[], name: string) =>
  inputsOf(calls, name).map((input) => input.key ?? input.spec.gitspaceId);

it('makes what the plan lacks and deletes what it retires, each with its own order', async () => {
  const run = await maintain({ prepare: ['warm-a', 'warm-b'], retire: ['warm-old'] }, {});
  expect(run.error).toBeUndefined();
  // Made at once: in whichever order they finish.
  expect(run.value).toEqual({ ready: expect.arrayContaining(['warm-a', 'warm-b']), failed: [], deleted: ['warm-old'] });
  expect((run.value as { ready: string[] }).ready).toHaveLength(2);
  for (const input of [...inputsOf(run.calls, 'prepareWarmMachine'), ...inputsOf(run.calls, 'deleteMachine')]) {
    expect(input.order).toBe(`order-${input.key ?? input.spec.gitspaceId}`);
  }
  expect(inputsOf(run.calls, 'prepareWarmMachine')[0]).toMatchObject({ infrastructure, machine });
  expect(keysOf(run.calls, 'warmMachineReady').sort()).toEqual(['warm-a', 'warm-b']);
  expect(keysOf(run.calls, 'forgetWarmMachine')).toEqual(['warm-old']);
});

it('a machine that cannot be made is recorded failed (its shape backs off) before it is deleted, then forgotten', async () => {
  const run = await maintain(
    { prepare: ['warm-ok', 'warm-bad'], retire: [] },
    {
      prepareWarmMachine: async ({ key }) => {
        if (key === 'warm-bad') throw ApplicationFailure.nonRetryable('no capacity in the zone', 'QuotaExceededError');
      },
    },
  );
  expect(run.error).toBeUndefined();
  expect(run.value).toEqual({
    ready: ['warm-ok'],
    failed: [{ key: 'warm-bad', message: 'no capacity in the zone' }],
    deleted: ['warm-bad'],
  });
  const order = run.calls.map((call) => `${call.name} ${call.input.key ?? call.input.spec?.gitspaceId ?? ''}`);
  expect(order.indexOf('warmMachineFailed warm-bad')).toBeLessThan(order.indexOf('deleteMachine warm-bad'));
  expect(order.indexOf('deleteMachine warm-bad')).toBeLessThan(order.indexOf('forgetWarmMachine warm-bad'));
  expect(keysOf(run.calls, 'warmMachineReady')).toEqual(['warm-ok']);
});

it('a machine that cannot be deleted is not forgotten: it stays retiring for the next run, and the run still ends', async () => {
  const run = await maintain(
    { prepare: [], retire: ['warm-stuck', 'warm-gone'] },
    {
      deleteMachine: async ({ spec }) => {
        if (spec.gitspaceId === 'warm-stuck')
          throw ApplicationFailure.nonRetryable('the cloud refused', 'PermissionDeniedError');
      },
    },
  );
  expect(run.error).toBeUndefined();
  expect(run.value).toEqual({ ready: [], failed: [], deleted: ['warm-gone'] });
  expect(keysOf(run.calls, 'forgetWarmMachine')).toEqual(['warm-gone']);
});
