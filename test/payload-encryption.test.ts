import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { CONTROL_PLANE_TASK_QUEUE, infrastructureTaskQueue, lifecycleWorkflowId } from '../contracts/lifecycle';
import { createCodecServer } from '../codec/server';
import { silentLogger } from '../common/logger';
import { ENCRYPTED_ENCODING } from '../common/payload-codec';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import {
  connectAttacker,
  hasEvent,
  openFailure as openWithKey,
  scheduleForgedActivity,
  workflowTaskRefusal,
  type Attacker,
} from './support/attacker';
import { startGitServer, type GitServer } from './support/git-server';
import { lifecycleClosed, startTestStack, waitForGitspace, type TestStack } from './support/stack';

const { EventType } = temporal.api.enums.v1;
type History = temporal.api.history.v1.IHistory;
type Failure = temporal.api.failure.v1.IFailure;
const run = promisify(execFile);

/**
 * Issue 11: Temporal is an untrusted courier. Whoever can reach Temporal's port — with a plain client, without the
 * payload keys — sees only ciphertext in history, and what they start or schedule there is refused by the workers
 * before any workflow or activity code runs. Real Temporal dev server, control plane, runner, gateway, git server.
 */
describe('payloads encrypted with keys Temporal never sees', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let git: GitServer;
  let stack: TestStack;
  /** Only `attacker.plain` attacks here: Temporal's address, nothing else (no codec, no key, no API token). */
  let attacker: Attacker;
  let plain: Client;
  const secretName = `orchid-${randomBytes(4).toString('hex')}`;
  const secretRepo = `vault-${randomBytes(4).toString('hex')}`;
  let gitspaceId: string;

  beforeAll(async () => {
    bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository(secretRepo, { 'README.md': 'hi\n' });
    stack = await startTestStack({ workflowBundle: bundle });
    attacker = await connectAttacker(stack);
    plain = attacker.plain;
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
    await attacker?.close();
    await stack?.stop();
    await git?.stop();
  });

  const historyOf = async (workflowId: string, runId?: string): Promise<History> =>
    plain.workflow.getHandle(workflowId, runId).fetchHistory();
  const eventsOf = async (id: string) => (await stack.api('GET', `/api/v1/gitspaces/${id}/events`)).body.items;

  /** Every Payload message in a history: objects with a `metadata` map whose `encoding` is set. */
  const payloadsIn = (value: unknown, where = '', found: { where: string; encoding: string; data: string }[] = []) => {
    if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return found;
    const candidate = value as temporal.api.common.v1.IPayload;
    if (candidate.metadata && typeof candidate.metadata === 'object' && 'encoding' in candidate.metadata) {
      const decode = (bytes?: Uint8Array | null) => new TextDecoder().decode(bytes ?? new Uint8Array());
      found.push({ where, encoding: decode(candidate.metadata.encoding), data: decode(candidate.data) });
      return found;
    }
    for (const [key, child] of Object.entries(value)) payloadsIn(child, `${where}.${key}`, found);
    return found;
  };

  /** Every Failure message in a history, causes included. */
  const failuresIn = (value: unknown, found: Failure[] = []): Failure[] => {
    if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return found;
    for (const [key, child] of Object.entries(value)) {
      if ((key === 'failure' || key === 'cause') && child && typeof child === 'object') found.push(child as Failure);
      failuresIn(child, found);
    }
    return found;
  };
  /** A failure's message and stack trace as whoever holds the payload keys reads them. */
  const openFailure = (failure: Failure) => openWithKey(attacker.codec, failure);

  /** The CLI's JSON as text, plus every base64 `data` in it decoded (the CLI shows payload data in base64). */
  const readableIn = (json: string): string[] => [
    json,
    ...[...json.matchAll(/"data":\s*"([A-Za-z0-9+/=]*)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8')),
  ];

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
        // A patch marker (`patched()`) names its patch for the SDK, which reads it before any codec: that name only.
        if (payload.where.includes('.markerRecordedEventAttributes.details.patch-data.')) {
          expect(JSON.parse(payload.data)).toEqual({ id: expect.stringMatching(/^[a-z-]+$/), deprecated: false });
          continue;
        }
        // A local activity's marker (a step's `recordStep`) keeps the SDK's own bookkeeping, written before any codec:
        // its number, attempt, id, type and times; no input of ours. Its result is in `result`, encrypted below.
        if (payload.where.includes('.markerRecordedEventAttributes.details.data.')) {
          expect(JSON.parse(payload.data)).toEqual({
            seq: expect.any(Number),
            attempt: expect.any(Number),
            activity_id: expect.stringMatching(/^\d+$/),
            activity_type: 'recordStep',
            complete_time: expect.objectContaining({ seconds: expect.any(Number) }),
            backoff: null,
            original_schedule_time: expect.objectContaining({ seconds: expect.any(Number) }),
          });
          continue;
        }
        payloads++;
        expect({ where: payload.where, encoding: payload.encoding }).toEqual({
          where: payload.where,
          encoding: ENCRYPTED_ENCODING,
        });
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

  it('encrypts failure messages and stack traces: a failed start names its marker only to those with the key', async () => {
    // The repository's own command fails and prints the marker: the agent's message carries its last output, the runner
    // fails prepareWorkspace with it, and the workflow fails with it.
    const marker = `ember-${randomBytes(6).toString('hex')}`;
    const repo = `failing-${randomBytes(4).toString('hex')}`;
    await git.createRepository(repo, {
      '.devcontainer/devcontainer.json': JSON.stringify({ postCreateCommand: `echo ${marker}; exit 3` }),
    });
    const created = await stack.api('POST', '/api/v1/gitspaces', {
      name: `failing-${randomBytes(3).toString('hex')}`,
      repository: { url: git.urlOf(repo) },
      infrastructureId: 'local',
      machineId: 'local-default',
    });
    expect(created.status).toBe(201);
    const id: string = created.body.gitspace.id;
    const failed = await waitForGitspace(stack, id, (g) => g.state === 'error', 90_000);
    // The control plane holds the key: the workflow read the runner's message and recorded it for the API.
    expect(failed.lastError).toMatchObject({
      action: 'start',
      step: 'prepareWorkspace',
      cause: 'LifecycleCommandError',
    });
    expect(failed.lastError.message).toContain(marker);
    await lifecycleClosed(stack, id);

    // Without the key (the attacker's plain client): the marker is nowhere in the history, bytes and all.
    const workflowId = lifecycleWorkflowId(id);
    const history = await historyOf(workflowId);
    const bytes = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
    expect(bytes.includes(marker)).toBe(false);
    const activityFailed = history.events!.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED);
    const workflowFailed = history.events!.find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED);
    expect(activityFailed.length).toBeGreaterThanOrEqual(1);
    expect(workflowFailed).toBeDefined();
    const written = [
      ...activityFailed.map((e) => e.activityTaskFailedEventAttributes!.failure!),
      workflowFailed!.workflowExecutionFailedEventAttributes!.failure!,
    ];
    // Every failure a Gitspaces worker wrote, causes included, keeps only a placeholder: its own and the workflow's.
    const sdkFailures = failuresIn(history).filter((f) => f.source === 'TypeScriptSDK');
    expect(sdkFailures).toEqual(expect.arrayContaining(written));
    for (const failure of sdkFailures) {
      expect(failure.message).toBe('Encoded failure');
      expect(failure.stackTrace ?? '').toBe('');
      expect(new TextDecoder().decode(failure.encodedAttributes?.metadata?.encoding ?? new Uint8Array())).toBe(
        ENCRYPTED_ENCODING,
      );
    }
    // Nor as an operator's CLI shows it without the codec.
    const cli = process.env.TEMPORAL_CLI_PATH!;
    const show = ['workflow', 'show', '-w', workflowId, '--address', stack.temporal.address, '--output', 'json'];
    const withoutCodec = (await run(cli, show, { maxBuffer: 64 * 1024 * 1024 })).stdout;
    expect(withoutCodec).toContain('Encoded failure');
    expect(readableIn(withoutCodec).some((text) => text.includes(marker))).toBe(false);

    // With the key: the runner's failure, message and stack trace, and the workflow's, which repeats the message.
    const runnerFailure = await openFailure(activityFailed[0]!.activityTaskFailedEventAttributes!.failure!);
    expect(runnerFailure.message).toContain(marker);
    expect(runnerFailure.stack_trace).toMatch(/\bat\b/);
    expect((await openFailure(written[written.length - 1]!)).message).toContain(marker);
    // The control plane's client decodes it as an error with its real message.
    const outcome = await stack.controlPlane.client.workflow
      .getHandle(workflowId)
      .result()
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(outcome).toBeInstanceOf(WorkflowFailedError);
    expect((outcome as WorkflowFailedError).cause?.message).toContain(marker);
    // And the CLI through the codec server, as the README shows.
    const token = `codec-${randomBytes(8).toString('hex')}`;
    const codecServer = createCodecServer({
      codec: stack.controlPlane.payloadCodec,
      token,
      allowedOrigins: [],
      logger: silentLogger,
    });
    await new Promise<void>((resolve) => codecServer.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(codecServer.address() as AddressInfo).port}`;
      const withCodec = (
        await run(cli, [...show, '--codec-endpoint', endpoint, '--codec-auth', `Bearer ${token}`], {
          maxBuffer: 64 * 1024 * 1024,
        })
      ).stdout;
      expect(readableIn(withCodec).some((text) => text.includes(marker))).toBe(true);
    } finally {
      codecServer.closeAllConnections();
      await new Promise((resolve) => codecServer.close(resolve));
    }
  });

  it('refuses a stop started straight on Temporal without the key: no activity runs, the gitspace keeps running', async () => {
    const before = await eventsOf(gitspaceId);
    // As `temporal workflow start --type stopGitspace --input '{"gitspaceId": "…"}'` would.
    const forged = await plain.workflow.start('stopGitspace', {
      workflowId: lifecycleWorkflowId(gitspaceId),
      taskQueue: CONTROL_PLANE_TASK_QUEUE,
      args: [{ gitspaceId }],
    });
    // Refused, and given time to do harm had it been able to.
    const { history: after, reason } = await workflowTaskRefusal(attacker, {
      workflowId: forged.workflowId,
      runId: forged.firstExecutionRunId,
    });
    const failed = after.events!.find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED);
    // Why, only for those with the key: the worker's failure message is sealed like any payload.
    expect(failed?.workflowTaskFailedEventAttributes?.failure?.message).toBe('Encoded failure');
    expect(reason).toMatch(/refused a payload/);
    expect(hasEvent(after, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)).toBe(false);
    expect(hasEvent(after, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)).toBe(false);
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
      const { history, reason } = await workflowTaskRefusal(attacker, {
        workflowId: forged.workflowId,
        runId: forged.firstExecutionRunId,
      });
      expect(reason).toMatch(/refused a payload/);
      expect(hasEvent(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)).toBe(false);
      expect(hasEvent(history, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)).toBe(false);
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
      const forged = await scheduleForgedActivity(attacker.connection, plain, {
        workflowType: 'attack',
        activityType: 'prepareWorkspace',
        taskQueue: infrastructureTaskQueue('local'),
        input: () => defaultPayloadConverter.toPayload(input),
      });
      expect(forged.completed).toBe(false);
      const failure = forged.failure!;
      expect(failure).toBeDefined();
      expect(failure.message).toBe('Encoded failure');
      expect((await openFailure(failure)).message).toMatch(/refused a payload that is not encrypted/);
      expect(failure.applicationFailureInfo?.type).toBe('PayloadRefusedError');
      expect(dialled).toEqual([]);
      expect((await stack.api('GET', `/api/v1/gitspaces/${gitspaceId}`)).body.state).toBe('running');
    } finally {
      await new Promise((resolve) => trap.close(resolve));
    }
  });
});
