import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { CONTROL_PLANE_TASK_QUEUE, infrastructureTaskQueue, lifecycleWorkflowId } from '../common/lifecycle';
import { ENCRYPTED_ENCODING } from '../common/payload-codec';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { scheduleForgedActivity } from './support/forged-activity';
import { startGitServer, type GitServer } from './support/git-server';
import { lifecycleClosed, startTestStack, waitForGitspace, type TestStack } from './support/stack';

const { EventType } = temporal.api.enums.v1;
type History = temporal.api.history.v1.IHistory;

/**
 * Issue 11: Temporal is an untrusted courier. Whoever can reach Temporal's port — with a plain client, without the
 * payload keys — sees only ciphertext in history, and what they start or schedule there is refused by the workers
 * before any workflow or activity code runs. Real Temporal dev server, control plane, runner, gateway, git server.
 */
describe('payloads encrypted with keys Temporal never sees', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let git: GitServer;
  let stack: TestStack;
  let connection: Connection;
  /** The attacker's client: Temporal's address, nothing else (no codec, no key, no API token). */
  let plain: Client;
  const secretName = `orchid-${randomBytes(4).toString('hex')}`;
  const secretRepo = `vault-${randomBytes(4).toString('hex')}`;
  let gitspaceId: string;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository(secretRepo, { 'README.md': 'hi\n' });
    stack = await startTestStack({ workflowBundle: bundle });
    connection = await Connection.connect({ address: stack.temporal.address });
    plain = new Client({ connection, namespace: 'default' });
    const created = await stack.api('POST', '/api/v1/gitspaces', {
      name: secretName,
      repository: { url: git.urlOf(secretRepo) },
      infrastructureId: 'local',
      machineId: 'local-default',
    });
    expect(created.status).toBe(201);
    gitspaceId = created.body.gitspace.id;
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'running');
  });
  afterAll(async () => {
    await connection?.close();
    await stack?.stop();
    await git?.stop();
  });

  const historyOf = async (workflowId: string, runId?: string): Promise<History> =>
    plain.workflow.getHandle(workflowId, runId).fetchHistory();
  const eventsOf = async (id: string) => (await stack.api('GET', `/api/v1/gitspaces/${id}/events`)).body.items;
  const waitForHistory = async (workflowId: string, done: (h: History) => boolean, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    let history = await historyOf(workflowId);
    while (!done(history) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      history = await historyOf(workflowId);
    }
    return history;
  };
  const has = (history: History, type: temporal.api.enums.v1.EventType) =>
    (history.events ?? []).some((e) => e.eventType === type);

  /** Every Payload message in a history: objects with a `metadata` map whose `encoding` is set. */
  const payloadsIn = (value: unknown, where = '', found: { where: string; encoding: string }[] = []) => {
    if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return found;
    const candidate = value as temporal.api.common.v1.IPayload;
    if (candidate.metadata && typeof candidate.metadata === 'object' && 'encoding' in candidate.metadata) {
      found.push({ where, encoding: new TextDecoder().decode(candidate.metadata.encoding!) });
      return found;
    }
    for (const [key, child] of Object.entries(value)) payloadsIn(child, `${where}.${key}`, found);
    return found;
  };

  it('leaves only ciphertext in every history: every payload binary/encrypted, no gitspace name or repository', async () => {
    // A stop too, so the history has stop, start and the reconciliation run's payloads.
    expect((await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/actions`, { action: 'stop' })).status).toBe(202);
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'stopped');
    expect((await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/actions`, { action: 'start' })).status).toBe(202);
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'running');
    await lifecycleClosed(stack, gitspaceId);

    let runs = 0;
    let payloads = 0;
    for await (const run of plain.workflow.list()) {
      const history = await historyOf(run.workflowId, run.runId);
      runs++;
      for (const payload of payloadsIn(history)) {
        // Search attributes are Temporal's index, plaintext by design: ids only (checked with the bytes below).
        if (payload.where.includes('.searchAttributes.')) continue;
        payloads++;
        expect(payload).toEqual({ where: payload.where, encoding: ENCRYPTED_ENCODING });
      }
      // The history exactly as Temporal stores and serves it, bytes and all (search attributes included).
      const bytes = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
      for (const secret of [secretName, secretRepo]) {
        expect({ workflow: run.workflowId, secret, found: bytes.includes(secret) }).toEqual({
          workflow: run.workflowId,
          secret,
          found: false,
        });
      }
    }
    expect(runs).toBeGreaterThanOrEqual(3);
    expect(payloads).toBeGreaterThan(10);
    // The control plane, which holds the key, reads the same history in plaintext.
    const description = await stack.controlPlane.client.workflow.getHandle(lifecycleWorkflowId(gitspaceId)).describe();
    expect(await description.staticSummary()).toContain(secretName);
  });

  it('refuses a stop started straight on Temporal without the key: no activity runs, the gitspace keeps running', async () => {
    const before = await eventsOf(gitspaceId);
    // As `temporal workflow start --type stopGitspace --input '{"gitspaceId": "…"}'` would.
    const forged = await plain.workflow.start('stopGitspace', {
      workflowId: lifecycleWorkflowId(gitspaceId),
      taskQueue: CONTROL_PLANE_TASK_QUEUE,
      args: [{ gitspaceId }],
    });
    const history = await waitForHistory(forged.workflowId, (h) => has(h, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED));
    expect(has(history, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)).toBe(true);
    const failed = history.events!.find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)!;
    expect(JSON.stringify(failed.workflowTaskFailedEventAttributes?.failure)).toMatch(/refused a payload/);
    // Give it time to do harm, had it been able to.
    await new Promise((r) => setTimeout(r, 2000));
    const after = await historyOf(forged.workflowId);
    expect(has(after, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)).toBe(false);
    expect(has(after, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)).toBe(false);
    expect((await stack.api('GET', `/api/v1/gitspaces/${gitspaceId}`)).body.state).toBe('running');
    expect(await eventsOf(gitspaceId)).toEqual(before);

    await forged.terminate('test: forged stop');
    // The real owner's stop, through the API, still works.
    expect((await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/actions`, { action: 'stop' })).status).toBe(202);
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'stopped');
    expect((await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/actions`, { action: 'start' })).status).toBe(202);
    await waitForGitspace(stack, gitspaceId, (g) => g.state === 'running');
  });

  it("refuses a workflow started with the server's own plaintext marker as its input: no workflow code runs", async () => {
    // The codec lets the server's 'ACTIVITY_ID_NOT_STARTED' through with an activity's outcome, and only there.
    const forged = await plain.workflow.start('stopGitspace', {
      workflowId: `forged-marker-${randomBytes(4).toString('hex')}`,
      taskQueue: CONTROL_PLANE_TASK_QUEUE,
      args: ['ACTIVITY_ID_NOT_STARTED'],
    });
    try {
      const history = await waitForHistory(forged.workflowId, (h) => has(h, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED));
      const failed = history.events!.find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED);
      expect(JSON.stringify(failed?.workflowTaskFailedEventAttributes?.failure)).toMatch(/refused a payload/);
      expect(has(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)).toBe(false);
      expect(has(history, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)).toBe(false);
    } finally {
      await forged.terminate('test: forged marker');
    }
  });

  it("refuses a forged prepareWorkspace scheduled on the runner's queue: the attacker's agent address is never dialled", async () => {
    const dialled: string[] = [];
    const trap: Server = createServer((request, response) => {
      dialled.push(`${request.method} ${request.url}`);
      response.end('{}');
    });
    await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
    try {
      const agentUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}`;
      const gitspace = (await stack.api('GET', `/api/v1/gitspaces/${gitspaceId}`)).body;
      // The attacker's own workflow, whose task the attacker completes by hand with a ScheduleActivityTask command.
      const input = {
        spec: {
          gitspaceId,
          name: gitspace.name,
          ownerId: gitspace.ownerId,
          infrastructureId: 'local',
          infrastructureName: 'local',
          provider: 'local',
          providerConfig: { repositoryNetworks: { allowLoopback: true } },
          gatewayUrl: stack.gatewayUrl,
          machine: { id: 'local-default', machineType: 'local', diskSizeGb: 10 },
          ide: 'terminal',
          repository: { url: git.urlOf(secretRepo) },
        },
        agentUrl,
      };
      const forged = await scheduleForgedActivity(connection, plain, {
        workflowType: 'attack',
        activityType: 'prepareWorkspace',
        taskQueue: infrastructureTaskQueue('local'),
        input: () => defaultPayloadConverter.toPayload(input),
      });
      expect(forged.completed).toBe(false);
      const failure = forged.failure!;
      expect(failure).toBeDefined();
      expect(failure.message).toMatch(/refused a payload that is not encrypted/);
      expect(failure.applicationFailureInfo?.type).toBe('PayloadRefusedError');
      expect(dialled).toEqual([]);
      expect((await stack.api('GET', `/api/v1/gitspaces/${gitspaceId}`)).body.state).toBe('running');
    } finally {
      await new Promise((resolve) => trap.close(resolve));
    }
  });
});
