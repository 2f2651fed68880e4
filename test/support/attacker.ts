import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Client, Connection } from '@temporalio/client';
import {
  defaultPayloadConverter,
  type DefaultEncodedFailureAttributes,
  type Payload,
  type PayloadCodec,
} from '@temporalio/common';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { infrastructureTaskQueue, lifecycleWorkflowId, type GitspaceSpec } from '../../contracts/lifecycle';
import { silentLogger } from '../../common/logger';
import { payloadDataConverter } from '../../common/payload-codec';
import { createLocalProvider, localMachinesRoot } from '../../providers/local/provider';
import type { TestStack } from './stack';

const { EventType, CommandType } = temporal.api.enums.v1;
type History = temporal.api.history.v1.IHistory;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
type Failure = temporal.api.failure.v1.IFailure;

/**
 * The attacker of the issue 11 attack tests (test/payload-encryption, work-orders and planted-secrets): someone who
 * reaches Temporal's port. `plain` has that only (no codec, no key); `withKeys` has the payload keys too (the stack's
 * codec): the strongest attacker short of the control plane's work-order signing key.
 */
export interface Attacker {
  connection: Connection;
  plain: Client;
  withKeys: Client;
  /** The payload codec `withKeys` uses (the stack's). */
  codec: PayloadCodec;
  close(): Promise<void>;
}

export async function connectAttacker(stack: TestStack): Promise<Attacker> {
  const connection = await Connection.connect({ address: stack.temporal.address });
  const codec = stack.controlPlane.payloadCodec;
  return {
    connection,
    codec,
    plain: new Client({ connection, namespace: 'default' }),
    withKeys: new Client({ connection, namespace: 'default', dataConverter: payloadDataConverter(codec) }),
    close: () => connection.close(),
  };
}

/**
 * A failure's message and stack trace as whoever holds the payload keys reads them: the failure converter seals both
 * into encoded attributes (Temporal keeps `Encoded failure`); a failure without them is read as it is.
 */
export async function openFailure(codec: PayloadCodec, failure: Failure): Promise<DefaultEncodedFailureAttributes> {
  if (!failure.encodedAttributes) return { message: failure.message ?? '', stack_trace: failure.stackTrace ?? '' };
  const [decoded] = await codec.decode([failure.encodedAttributes]);
  return defaultPayloadConverter.fromPayload<DefaultEncodedFailureAttributes>(decoded!);
}

/** A failure's message as whoever holds the payload keys reads it ('' for no failure). */
export async function failureMessage(codec: PayloadCodec, failure: Failure | undefined): Promise<string> {
  return failure ? (await openFailure(codec, failure)).message : '';
}

/** Polls a run's history until `done` finds an event in it or `timeoutMs` passes; resolves with the event found. */
export async function historyEvent(
  client: Client,
  run: { workflowId: string; runId?: string },
  done: (event: HistoryEvent) => boolean,
  timeoutMs = 30_000,
): Promise<HistoryEvent | undefined> {
  const handle = client.workflow.getHandle(run.workflowId, run.runId);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await handle.fetchHistory()).events?.find(done);
    if (found || Date.now() >= deadline) return found;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface ForgedActivityResult {
  /** The activity completed: the worker acted on the forged input. */
  completed: boolean;
  /** Why it failed, as the worker reported it. */
  failure?: temporal.api.failure.v1.IFailure;
}

/**
 * What anyone who reaches Temporal's port can do without any worker of theirs: start a run of a workflow type on a
 * task queue of their own, poll its first workflow task and complete it by hand with one ScheduleActivityTask command
 * that puts `activityType` on `taskQueue` (a runner's) with an input of their making. Resolves with the activity's
 * outcome; the forged run is terminated either way.
 */
export async function scheduleForgedActivity(
  connection: Connection,
  client: Client,
  options: {
    workflowType: string;
    /** Default: a fresh id of its own. */
    workflowId?: string;
    args?: unknown[];
    activityType: string;
    taskQueue: string;
    /** The activity's one input payload; given the forged run, as an order would be bound to it. */
    input: (run: { workflowId: string; runId: string }) => Payload | Promise<Payload>;
  },
): Promise<ForgedActivityResult> {
  const attackQueue = `attacker-${randomBytes(4).toString('hex')}`;
  const handle = await client.workflow.start(options.workflowType, {
    workflowId: options.workflowId ?? attackQueue,
    taskQueue: attackQueue,
    args: options.args ?? [],
  });
  const run = { workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
  try {
    const task = await connection.withDeadline(Date.now() + 30_000, () =>
      connection.workflowService.pollWorkflowTaskQueue({
        namespace: 'default',
        taskQueue: { name: attackQueue },
        identity: 'attacker',
      }),
    );
    await connection.workflowService.respondWorkflowTaskCompleted({
      namespace: 'default',
      taskToken: task.taskToken,
      identity: 'attacker',
      commands: [
        {
          commandType: CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
          scheduleActivityTaskCommandAttributes: {
            activityId: 'forged',
            activityType: { name: options.activityType },
            taskQueue: { name: options.taskQueue },
            input: { payloads: [await options.input(run)] },
            startToCloseTimeout: msToTs('30s'),
            scheduleToCloseTimeout: msToTs('60s'),
            heartbeatTimeout: msToTs('30s'),
            retryPolicy: { maximumAttempts: 1 },
          },
        },
      ],
    });
    const outcome = await historyEvent(client, run, (e) =>
      [
        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
      ].includes(e.eventType!),
    );
    if (!outcome) throw new Error(`no activity result in ${run.workflowId}/${run.runId}`);
    const failure = outcome.activityTaskFailedEventAttributes?.failure ?? undefined;
    return {
      completed: outcome.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
      ...(failure ? { failure } : {}),
    };
  } finally {
    await handle.terminate('test: forged run').catch(() => undefined);
  }
}

/** What the gitspace's real start put in Temporal, as an attacker with the payload keys copies it out of history. */
export interface RealStart {
  runId: string;
  spec: GitspaceSpec;
  /** The start's signed work order, bound to `runId`. */
  order: string;
  /** The sealed repository token prepareWorkspace was given, if the gitspace has one. */
  repositoryTokenSealed?: string;
}

/** Reads the gitspace's latest start (its lifecycle workflow must have closed: see lifecycleClosed). */
export async function readRealStart(attacker: Attacker, gitspaceId: string): Promise<RealStart> {
  const workflowId = lifecycleWorkflowId(gitspaceId);
  const { runId } = await attacker.withKeys.workflow.getHandle(workflowId).describe();
  const history = await attacker.withKeys.workflow.getHandle(workflowId, runId).fetchHistory();
  const scheduled = history.events!.find(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'prepareWorkspace',
  );
  if (!scheduled) throw new Error(`the latest run of ${workflowId} (${runId}) scheduled no prepareWorkspace`);
  const [decoded] = await attacker.codec.decode([scheduled.activityTaskScheduledEventAttributes!.input!.payloads![0]!]);
  const input = defaultPayloadConverter.fromPayload<{
    spec: GitspaceSpec;
    order: string;
    repositoryTokenSealed?: string;
  }>(decoded!);
  return {
    runId,
    spec: input.spec,
    order: input.order,
    ...(input.repositoryTokenSealed ? { repositoryTokenSealed: input.repositoryTokenSealed } : {}),
  };
}

/**
 * The attacker's own run of a lifecycle workflow (type and, by default, workflow id of the real ones, on the
 * attacker's own task queue), whose first task the attacker completes by hand: it schedules one infrastructure
 * activity on the runner's queue (gitspaces-infra-<id>) with an input of the attacker's making, encrypted with the
 * payload keys. `build` gets the forged run, as an order would be bound to it.
 */
export function forgeRunnerActivity(
  attacker: Attacker,
  options: {
    gitspaceId: string;
    activityType: string;
    build: (run: { workflowId: string; runId: string }) => Promise<unknown> | unknown;
    /** Default stopGitspace. */
    workflowType?: string;
    /** Default the gitspace's lifecycle workflow id. */
    workflowId?: string;
    /** Default local. */
    infrastructureId?: string;
  },
): Promise<ForgedActivityResult> {
  return scheduleForgedActivity(attacker.connection, attacker.withKeys, {
    workflowType: options.workflowType ?? 'stopGitspace',
    workflowId: options.workflowId ?? lifecycleWorkflowId(options.gitspaceId),
    args: [{ gitspaceId: options.gitspaceId }],
    activityType: options.activityType,
    taskQueue: infrastructureTaskQueue(options.infrastructureId ?? 'local'),
    input: async (run) =>
      (await attacker.codec.encode([defaultPayloadConverter.toPayload(await options.build(run))]))[0]!,
  });
}

/** How a forged activity ended, as whoever holds the payload keys reads it. */
export interface ForgedOutcome {
  completed: boolean;
  type: string | undefined;
  nonRetryable: boolean | undefined;
  message: string;
}

export async function outcomeOf(codec: PayloadCodec, result: ForgedActivityResult): Promise<ForgedOutcome> {
  return {
    completed: result.completed,
    type: result.failure?.applicationFailureInfo?.type ?? undefined,
    nonRetryable: result.failure?.applicationFailureInfo?.nonRetryable ?? undefined,
    message: await failureMessage(codec, result.failure),
  };
}

/** The outcome of a refused order (for toEqual): failed as the named non-retryable WorkOrderRefusedError. */
export const workOrderRefusal = (reason: RegExp) => ({
  completed: false,
  type: 'WorkOrderRefusedError',
  nonRetryable: true,
  message: expect.stringMatching(reason),
});

/** The runner's refusal of a forged activity, for the reason given. */
export async function expectWorkOrderRefused(
  codec: PayloadCodec,
  result: ForgedActivityResult,
  reason: RegExp,
): Promise<void> {
  expect(await outcomeOf(codec, result)).toEqual(workOrderRefusal(reason));
}

/**
 * A lifecycle workflow started straight on Temporal without the payload keys (plaintext input, as `temporal workflow
 * start --type stopGitspace --input …` makes it): waits up to 30 s for a worker to fail its workflow task, then
 * `harmMs` more (time to do harm, had it been able to). Resolves with its history and why the task failed (undefined
 * when none failed: the workflow ran).
 */
export async function workflowTaskRefusal(
  attacker: Attacker,
  run: { workflowId: string; runId?: string },
  harmMs = 2000,
): Promise<{ history: History; reason: string | undefined }> {
  const failed = await historyEvent(
    attacker.plain,
    run,
    (e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
  );
  await new Promise((r) => setTimeout(r, harmMs));
  const reason = failed
    ? await failureMessage(attacker.codec, failed.workflowTaskFailedEventAttributes?.failure ?? undefined)
    : undefined;
  return { history: await attacker.plain.workflow.getHandle(run.workflowId, run.runId).fetchHistory(), reason };
}

/** A local gitspace's machine as the runner's provider sees it: its status, or `absent`. */
export async function localMachineStatus(stack: TestStack, gitspaceId: string): Promise<string> {
  const provider = createLocalProvider({ rootDir: localMachinesRoot(stack.dataDir), logger: silentLogger });
  const options = { idempotencyKey: 'test-describe', signal: AbortSignal.timeout(10_000) };
  return (await provider.describe(gitspaceId, options))?.status ?? 'absent';
}

/** Whether a history has an event of the type. */
export const hasEvent = (history: History, type: temporal.api.enums.v1.EventType): boolean =>
  (history.events ?? []).some((e) => e.eventType === type);

/**
 * A foreign listener on loopback, the attacker's "agent" or repository: it records every connection and every byte
 * it receives (answering HTTP requests with 200 `{}`, so a client that reached it would go on talking).
 */
export interface ForeignListener {
  url: string;
  /** Connections accepted so far. */
  connections(): number;
  /** Every byte received so far, all connections together. */
  received(): Buffer;
  close(): Promise<void>;
}

export async function startForeignListener(): Promise<ForeignListener> {
  const chunks: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (/\r\n\r\n/.test(chunk.toString('latin1'))) {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: () => accepted,
    received: () => Buffer.concat(chunks),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
