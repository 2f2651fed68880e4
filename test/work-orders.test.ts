import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { type GitspaceSpec } from '../contracts/lifecycle';
import { LIFECYCLE_ORDER_TTL_SECONDS, createWorkOrderSigner, type WorkOrderRequest } from '../common/work-order';
import { localMachinePaths, localMachinesRoot } from '../providers/local/provider';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import {
  connectAttacker,
  expectWorkOrderRefused,
  forgeRunnerActivity,
  localMachineStatus,
  outcomeOf,
  readRealStart,
  startForeignListener,
  type Attacker,
  type ForgedActivityResult,
} from './support/attacker';
import { startGitServer, type GitServer } from './support/git-server';
import { lifecycleClosed, startTestStack, waitForGitspace, type TestStack } from './support/stack';

/**
 * Issue 11, signed work orders: the runner acts only on work the control plane ordered for the activity's own
 * workflow run. The attacker here has more than Temporal's port: the payload keys too (a client built with the
 * stack's codec), but not the control plane's work-order signing key. Real Temporal dev server, control plane,
 * runner, gateway, git server and local machine.
 */
describe('signed work orders', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let git: GitServer;
  let stack: TestStack;
  /** Temporal's address and the payload codec, not the work-order key. */
  let attacker: Attacker;
  let gitspaceId: string;
  /** The spec and order of the real start, as the attacker reads them from its history. */
  let realSpec: GitspaceSpec;
  let realOrder: string;
  let realStartRunId: string;

  const machineStatus = () => localMachineStatus(stack, gitspaceId);

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('app', { 'README.md': 'hi\n' });
    stack = await startTestStack({ workflowBundle: bundle });
    attacker = await connectAttacker(stack);
    const created = await stack.api('POST', '/api/v1/gitspaces', {
      name: 'victim',
      repository: { url: git.urlOf('app') },
      infrastructureId: 'local',
      machineId: 'local-default',
    });
    expect(created.status).toBe(201);
    gitspaceId = created.body.gitspace.id;
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'running');
    await lifecycleClosed(stack, gitspaceId);
    // What the attacker copies out of the real start's history (readable: the attacker has the payload keys).
    ({ runId: realStartRunId, spec: realSpec, order: realOrder } = await readRealStart(attacker, gitspaceId));
    expect(typeof realOrder).toBe('string');
    expect(realSpec.gitspaceId).toBe(gitspaceId);
  });
  afterAll(async () => {
    await attacker?.close();
    await stack?.stop();
    await git?.stop();
  });

  /** One infrastructure activity on the runner's queue, in the attacker's own run of a lifecycle workflow. */
  const forge = (
    activityType: string,
    build: (run: { workflowId: string; runId: string }) => Promise<unknown> | unknown,
    options: { workflowType?: string; workflowId?: string } = {},
  ): Promise<ForgedActivityResult> => forgeRunnerActivity(attacker, { gitspaceId, activityType, build, ...options });

  /** A refusal: the named non-retryable type, before the runner touched anything. */
  const expectRefused = (result: ForgedActivityResult, reason: RegExp) =>
    expectWorkOrderRefused(attacker.codec, result, reason);

  /** An order the control plane would sign, made with its key (to show what the checks refuse even then). */
  const signedByControlPlane = async (request: WorkOrderRequest, clock: () => number = Date.now) =>
    (await createWorkOrderSigner({ dataDir: stack.dataDir, now: clock })).sign(request);

  const ref = () => ({
    gitspaceId,
    infrastructureId: realSpec.infrastructureId,
    provider: realSpec.provider,
    providerConfig: realSpec.providerConfig,
  });

  /** The control plane's order for the real gitspace and spec, bound to the forged run. */
  const orderFor = (
    action: WorkOrderRequest['action'],
    run: { workflowId: string; runId: string },
    clock?: () => number,
  ) => signedByControlPlane({ action, ...run, gitspaceId, infrastructure: ref(), spec: realSpec }, clock);

  it('refuses a forged stop or delete run: no order, or one signed by another key; the machine keeps running', async () => {
    await expectRefused(await forge('stopMachine', () => ({ spec: ref() })), /carries no work order/);
    const attackerKey = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const attackerSigner = await createWorkOrderSigner({ privateKeyPem: attackerKey });
    await expectRefused(
      await forge(
        'deleteMachine',
        async (run) => ({
          spec: ref(),
          order: await attackerSigner.sign({
            action: 'delete',
            ...run,
            gitspaceId,
            infrastructure: ref(),
            spec: realSpec,
          }),
        }),
        { workflowType: 'deleteGitspace' },
      ),
      new RegExp(`untrusted work order key: the work order is signed with key '${attackerSigner.keyId}'`),
    );
    await expectRefused(await forge('removeRoute', () => ({ gitspaceId, order: 'eyJ.forged.order' })), /not valid/);
    expect(await machineStatus()).toBe('running');
    expect((await stack.api('GET', `/api/v1/gitspaces/${gitspaceId}`)).body.state).toBe('running');
  });

  it("refuses the real start's order replayed into another run of the same workflow id", async () => {
    // The start's order allows stopMachine (its compensation) and matches the spec: only the run differs.
    await expectRefused(
      await forge('stopMachine', () => ({ spec: ref(), order: realOrder })),
      new RegExp(`signed for workflow run gitspace-${gitspaceId}/${realStartRunId}`),
    );
    expect(await machineStatus()).toBe('running');
  });

  it('refuses an expired order and an order for another action', async () => {
    const longAgo = () => Date.now() - (LIFECYCLE_ORDER_TTL_SECONDS + 3600) * 1000;
    await expectRefused(
      await forge('stopMachine', async (run) => ({ spec: ref(), order: await orderFor('stop', run, longAgo) })),
      /expired/,
    );
    await expectRefused(
      await forge('deleteMachine', async (run) => ({ spec: ref(), order: await orderFor('stop', run) })),
      /stop order does not allow deleteMachine/,
    );
    expect(await machineStatus()).toBe('running');
  });

  it('refuses an altered spec; the same order with the spec it was signed for is obeyed', async () => {
    const order = (run: { workflowId: string; runId: string }) => orderFor('start', run);
    await expectRefused(
      await forge(
        'ensureMachine',
        async (run) => ({
          spec: { ...realSpec, repository: { url: 'https://attacker.example/steal.git' } },
          order: await order(run),
        }),
        { workflowType: 'startGitspace' },
      ),
      /spec in the input is not the one/,
    );
    await expectRefused(
      await forge(
        'waitForMachine',
        async (run) => ({
          spec: { ...realSpec, providerConfig: { repositoryNetworks: { allowLoopback: true, allowPrivate: true } } },
          target: 'running',
          order: await order(run),
        }),
        { workflowType: 'startGitspace' },
      ),
      /infrastructure in the input is not the one/,
    );
    // The control: a valid order for this run and the unaltered spec is acted on.
    const obeyed = await forge(
      'waitForMachine',
      async (run) => ({ spec: realSpec, target: 'running', order: await order(run) }),
      { workflowType: 'startGitspace' },
    );
    expect(obeyed).toEqual({ completed: true });
  });

  it("never dials an agent address from prepareWorkspace's input, even with a valid order", async () => {
    const trap = await startForeignListener();
    try {
      const agentUrl = trap.url;
      await expectRefused(
        await forge('prepareWorkspace', () => ({ spec: realSpec, agentUrl }), { workflowType: 'startGitspace' }),
        /carries no work order/,
      );
      // With an order for this very run, the runner finds the agent through its provider: the real one, which
      // refuses this run's agent secret. The trap sees nothing either way.
      const withOrder = await outcomeOf(
        attacker.codec,
        await forge(
          'prepareWorkspace',
          async (run) => ({ spec: realSpec, agentUrl, order: await orderFor('start', run) }),
          {
            workflowType: 'startGitspace',
          },
        ),
      );
      // Past the order check, refused by the real agent (a timeout or any other failure would not say this).
      expect(withOrder).toMatchObject({
        completed: false,
        message: expect.stringMatching(/agent secret is missing or wrong/),
      });
      expect(withOrder.type).not.toBe('WorkOrderRefusedError');
      await expectRefused(
        await forge('registerRoute', () => ({ gitspaceId, target: agentUrl, spec: realSpec }), {
          workflowType: 'startGitspace',
        }),
        /carries no work order/,
      );
      expect(trap.connections()).toBe(0);
      expect((await stack.api('GET', `/api/v1/gitspaces/${gitspaceId}`)).body.state).toBe('running');
    } finally {
      await trap.close();
    }
  });

  it('attack: no pooled machine is made without a warm-pool order, adopted without the start naming it, or a gitspace deleted as one', async () => {
    const key = 'warm-aaaaaaaaaaaa';
    const { gitspaceId: _, ...infrastructure } = ref();
    const machine = { machineType: 'local', diskSizeGb: 10 };
    await expectRefused(
      await forge('prepareWarmMachine', () => ({ infrastructure, key, machine }), { workflowType: 'maintainWarmPool' }),
      /carries no work order/,
    );
    await expectRefused(
      await forge(
        'prepareWarmMachine',
        async (run) => ({ infrastructure, key, machine, order: await orderFor('start', run) }),
        { workflowType: 'startGitspace' },
      ),
      /a start order does not allow prepareWarmMachine/,
    );
    // The real spec with a start order of this run, but a pooled machine that order does not give it.
    await expectRefused(
      await forge(
        'ensureMachine',
        async (run) => ({ spec: realSpec, warmMachine: key, order: await orderFor('start', run) }),
        { workflowType: 'startGitspace' },
      ),
      /does not give pooled machine 'warm-aaaaaaaaaaaa' to this start/,
    );
    // A warm-pool order the control plane signed for a pooled machine does not reach the gitspace's own.
    await expectRefused(
      await forge(
        'deleteMachine',
        async (run) => ({
          spec: ref(),
          order: await signedByControlPlane({ action: 'warm-pool', ...run, infrastructure, gitspaceId: key }),
        }),
        { workflowType: 'maintainWarmPool', workflowId: 'warm-pool-local-attack' },
      ),
      /the work order is for gitspace 'warm-aaaaaaaaaaaa'/,
    );
    expect(await machineStatus()).toBe('running');
    expect(existsSync(localMachinePaths(localMachinesRoot(stack.dataDir), key).dir)).toBe(false);
  });

  it('the owner still stops and deletes through the API: the real orders are obeyed', async () => {
    expect((await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/actions`, { action: 'stop' })).status).toBe(202);
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'stopped');
    expect(await machineStatus()).toBe('stopped');
    expect((await stack.api('DELETE', `/api/v1/gitspaces/${gitspaceId}`)).status).toBe(202);
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'deleted');
    expect(await machineStatus()).toBe('absent');
  });
});
