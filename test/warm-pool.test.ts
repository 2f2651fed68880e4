/**
 * Warm pools end to end (workflows/warm-pool.ts): the real stack on a `simulated` infrastructure, whose machines boot
 * in a set time and whose agents the runner answers for over real HTTP. The pool fills, a first start adopts one of its
 * machines (the one its signed order names), the pool refills, reconciliation leaves pooled machines alone, and a pool
 * set to 0 deletes every machine it made.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { reconcileNow } from './support/emulated-machine';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';

jest.setTimeout(180_000);

const INFRASTRUCTURE = 'sim';
const MACHINE = `${INFRASTRUCTURE}-pooled`;

describe('warm pools', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ runner: false, simulatedProvider: true, warmPoolEverySeconds: 3600 });
    const created = await stack.api('POST', '/api/v1/infrastructures', {
      name: INFRASTRUCTURE,
      provider: 'simulated',
      config: { bootSeconds: 0.3 },
      gatewayUrl: stack.gatewayUrl,
    });
    expect(created.status).toBe(201);
    await stack.startRunner({ infrastructureId: INFRASTRUCTURE, simulatedProvider: true });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const machine = async () =>
    (await stack.api('GET', `/api/v1/infrastructures/${INFRASTRUCTURE}/machines`)).body.items.find(
      (m: { id: string }) => m.id === MACHINE,
    );
  const keys = async (state?: string) =>
    (await stack.controlPlane.store.listWarmMachines(INFRASTRUCTURE))
      .filter((row) => state === undefined || row.state === state)
      .map((row) => row.key)
      .sort();
  /** Waits until the pool holds exactly `ready` ready machines and nothing else. */
  const poolSettles = async (ready: number) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const rows = await stack.controlPlane.store.listWarmMachines(INFRASTRUCTURE);
      if (rows.length === ready && rows.every((row) => row.state === 'ready')) return;
      if (Date.now() > deadline) throw new Error(`the pool did not settle at ${ready}: ${JSON.stringify(rows)}`);
      // Retired claims are deleted by the next run: ask for one, as a size change does.
      await stack.api('PATCH', `/api/v1/infrastructures/${INFRASTRUCTURE}/machines/${MACHINE}`, {
        warmPoolSize: (await machine()).warmPoolSize,
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };

  /** The decoded input and result of the start's ensureMachine, from its history. */
  const ensureMachineOf = async (gitspaceId: string) => {
    const handle = stack.controlPlane.client.workflow.getHandle(`gitspace-${gitspaceId}`);
    const { events } = await handle.fetchHistory();
    const decode = async (payloads: temporal.api.common.v1.IPayloads | null | undefined) => {
      const [payload] = await stack.controlPlane.payloadCodec.decode(payloads?.payloads ?? []);
      return defaultPayloadConverter.fromPayload<any>(payload!);
    };
    const scheduled = events!.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'ensureMachine',
    )!;
    const completed = events!.find(
      (e) => e.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === scheduled.eventId!.toString(),
    )!;
    return {
      input: await decode(scheduled.activityTaskScheduledEventAttributes!.input),
      result: await decode(completed.activityTaskCompletedEventAttributes!.result),
    };
  };

  it('refuses a warm pool on a provider whose machines cannot change owner, and a size out of range', async () => {
    const local = await stack.api('POST', '/api/v1/infrastructures/local/machines', {
      name: 'pooled',
      machineType: 'local',
      diskSizeGb: 10,
      warmPoolSize: 1,
    });
    expect(local.status).toBe(400);
    expect(local.body.error.message).toMatch(
      /warm pools are offered on aws and simulated infrastructures, not on 'local'/,
    );
    expect((await stack.api('GET', '/api/v1/infrastructures/local/machines')).body.items).not.toContainEqual(
      expect.objectContaining({ name: 'pooled' }),
    );
    for (const warmPoolSize of [-1, 51, 1.5, '2']) {
      const refused = await stack.api('POST', `/api/v1/infrastructures/${INFRASTRUCTURE}/machines`, {
        name: 'bad',
        machineType: 'any',
        diskSizeGb: 10,
        warmPoolSize,
      });
      expect(refused.status).toBe(400);
    }
    expect((await stack.controlPlane.store.infrastructuresWithWarmPools()).has(INFRASTRUCTURE)).toBe(false);
  });

  it('fills to its size; a first start adopts a pooled machine named in its order, and the pool refills', async () => {
    const created = await stack.api('POST', `/api/v1/infrastructures/${INFRASTRUCTURE}/machines`, {
      name: 'pooled',
      machineType: 'any',
      diskSizeGb: 10,
      warmPoolSize: 2,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ warmPoolSize: 2 });
    await poolSettles(2);
    expect((await machine()).warmPool).toEqual({ ready: 2, preparing: 0 });
    const pooled = await keys('ready');

    const response = await stack.api('POST', '/api/v1/gitspaces', {
      name: 'first',
      repository: { url: 'https://git.example.test/org/repo.git' },
      infrastructureId: INFRASTRUCTURE,
      machineId: MACHINE,
      ide: 'terminal',
    });
    expect(response.status).toBe(201);
    const gitspaceId: string = response.body.gitspace.id;
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'running');

    const { input, result } = await ensureMachineOf(gitspaceId);
    expect(pooled).toContain(input.warmMachine);
    // The pooled machine itself, now the gitspace's: one of the two the pool made first (a simulated runner numbers its
    // machines as it makes them), under the gitspace's id; a machine made for the start would be the third.
    expect(result).toMatchObject({ gitspaceId, labels: { 'gitspace-id': gitspaceId } });
    expect(['simulated-1', 'simulated-2']).toContain(result.providerId);

    await poolSettles(2);
    const refilled = await keys('ready');
    expect(refilled).not.toContain(input.warmMachine);
    expect(refilled).toEqual(expect.arrayContaining(pooled.filter((key) => key !== input.warmMachine)));

    // Reconciliation sees the gitspace's machine and the pool's two, and leaves the pool's alone.
    const reconciled = await reconcileNow(stack, INFRASTRUCTURE, 'after-claim');
    expect(reconciled).toMatchObject({ observed: 3, stopped: [], deleted: [], awaitingGrace: [], failed: [] });

    // A gitspace's second start (stopped, then started) boots its own machine and claims nothing.
    expect((await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/actions`, { action: 'stop' })).status).toBe(202);
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'stopped');
    expect((await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/actions`, { action: 'start' })).status).toBe(202);
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'running');
    expect(await keys('ready')).toEqual(refilled);
    expect(await keys('claimed')).toEqual([]);
  });

  it('a pool set to 0 deletes every machine it made, and only then may its shape be removed', async () => {
    const gitspaces = (await stack.api('GET', `/api/v1/gitspaces`)).body.items;
    for (const gitspace of gitspaces) {
      expect((await stack.api('DELETE', `/api/v1/gitspaces/${gitspace.id}`)).status).toBe(202);
      await waitForGitspace(stack, gitspace.id, (g) => g.state === 'deleted');
    }
    const refused = await stack.api('DELETE', `/api/v1/infrastructures/${INFRASTRUCTURE}/machines/${MACHINE}`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/2 machine\(s\) in a warm pool/);

    expect(
      (await stack.api('PATCH', `/api/v1/infrastructures/${INFRASTRUCTURE}/machines/${MACHINE}`, { warmPoolSize: 0 }))
        .status,
    ).toBe(200);
    await poolSettles(0);
    const reconciled = await reconcileNow(stack, INFRASTRUCTURE, 'after-empty');
    expect(reconciled.observed).toBe(0);
    expect((await stack.api('DELETE', `/api/v1/infrastructures/${INFRASTRUCTURE}/machines/${MACHINE}`)).status).toBe(
      204,
    );
  });
});
