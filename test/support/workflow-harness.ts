/**
 * The workflow unit tests' harness: the real workflow bundle (with the project's failure converter) on the
 * time-skipping test server, the project's encrypting data converter, and plain functions as activities on the
 * control-plane queue and on one infrastructure's queue. Every activity call is recorded in order, with its input.
 *
 * What time skipping does and does not do here: the Java test server (1.31.0) does not skip time while an activity is
 * scheduled or running (it holds a time lock from the schedule until the activity completes, fails or times out), so
 * server-side activity timeouts (schedule-to-start, start-to-close, heartbeat) take real time; retry backoffs and
 * workflow timers are skipped. The tests use a one-second runner pickup timeout (it comes from `beginOperation`). An
 * activity cannot report a timeout itself either (the SDK turns any error it throws into an ApplicationFailure), so
 * the start-to-close and heartbeat wordings are tested from real timeouts: in test/workflows/step-timeouts.test.ts
 * the step's activity moves the server's clock itself with `env.sleep` (which does skip), heartbeating between sleeps,
 * and stops just short of its limit, so the server times out every step, 3 to 30 minutes, in a fraction of a second.
 */
import { randomBytes } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { BeginResult } from '../../activities/bookkeeping';
import {
  CONTROL_PLANE_TASK_QUEUE,
  infrastructureTaskQueue,
  type Actor,
  type GitspaceSpec,
} from '../../contracts/lifecycle';
import { EncryptionCodec, PayloadKeyRing, payloadDataConverter } from '../../common/payload-codec';
import { bundleLifecycleWorkflows } from '../../workers/workflow-bundle';
import { installWorkerRuntime } from '../../workers/runtime';
import { createTimeSkippingEnvironment } from './time-skipping';

export interface Call {
  queue: 'control-plane' | 'runner';
  name: string;
  input: any;
}

export type ActivityMock = (input: any) => Promise<unknown>;

export const UNIT_INFRASTRUCTURE = 'unit';
export const ACTOR: Actor = { type: 'user', id: 'u-ada', name: 'ada' };
export const ORDER = 'signed-work-order';

export function specFor(gitspaceId: string): GitspaceSpec {
  return {
    gitspaceId,
    name: 'demo',
    ownerId: 'u-ada',
    infrastructureId: UNIT_INFRASTRUCTURE,
    infrastructureName: UNIT_INFRASTRUCTURE,
    provider: 'local',
    providerConfig: {},
    gatewayUrl: 'https://gateway.example.test',
    machine: { machineType: 'local', diskSizeGb: 10 },
    ide: 'terminal',
    repository: { url: 'https://git.example.test/org/repo.git' },
  } as GitspaceSpec;
}

export function machineFor(gitspaceId: string, status: string) {
  return { gitspaceId, providerId: `m-${gitspaceId}`, status, disks: [], labels: {} };
}

export interface WorkflowHarness {
  env: TestWorkflowEnvironment;
  bundle: WorkflowBundleWithSourceMap;
  teardown(): Promise<void>;
}

/** Starts the file's harness before its tests and tears it down after them; the harness, once started. */
export function useWorkflowHarness(): () => WorkflowHarness {
  let harness: WorkflowHarness | undefined;
  beforeAll(async () => {
    harness = await startWorkflowHarness();
  }, 120_000);
  afterAll(async () => {
    await harness?.teardown();
  });
  return () => {
    if (!harness) throw new Error('the workflow harness has not started (use it inside a test)');
    return harness;
  };
}

/** The test server and the bundle, once per test file (the environment's clock is shared: run tests one at a time). */
async function startWorkflowHarness(): Promise<WorkflowHarness> {
  installWorkerRuntime();
  const codec = new EncryptionCodec(new PayloadKeyRing([{ id: 'unit', key: randomBytes(32) }]));
  const dataConverter = payloadDataConverter(codec);
  const [env, bundle] = await Promise.all([
    createTimeSkippingEnvironment({ dataConverter }),
    bundleLifecycleWorkflows(),
  ]);
  harnessDataConverter = dataConverter;
  return { env, bundle, teardown: () => env.teardown() };
}
let harnessDataConverter: ReturnType<typeof payloadDataConverter> | undefined;

export interface RunOptions {
  /** Runner activities by name (called after the call is recorded); `false`: no runner polls the queue. */
  runner?: Record<string, ActivityMock> | false;
  /** Control-plane activities that replace the recording defaults. */
  controlPlane?: Record<string, ActivityMock>;
  /** What beginOperation answers beyond the spec (runnerPickupTimeoutSeconds defaults to 1). */
  begin?: Partial<BeginResult>;
  /** Runs once the workflow started (cancel it, say), while the workers run. */
  during?: (handle: WorkflowHandle) => Promise<void>;
  gitspaceId?: string;
}

export interface RunOutcome {
  gitspaceId: string;
  spec: GitspaceSpec;
  calls: Call[];
  value?: unknown;
  error?: any;
}

let sequence = 0;

/** Runs one workflow to its end with recording activities; returns its value or failure and every call made. */
export async function runWorkflow(
  harness: WorkflowHarness,
  workflowType: string,
  input: (gitspaceId: string) => unknown,
  options: RunOptions = {},
): Promise<RunOutcome> {
  const gitspaceId = options.gitspaceId ?? `gs-${process.pid}-${++sequence}`;
  const spec = specFor(gitspaceId);
  const calls: Call[] = [];
  const record =
    (queue: Call['queue'], name: string, fn: ActivityMock): ActivityMock =>
    async (activityInput) => {
      calls.push({ queue, name, input: activityInput });
      return fn(activityInput);
    };
  const done = async () => undefined;
  const controlPlane: Record<string, ActivityMock> = {
    beginOperation: async () => ({ spec, actor: ACTOR, runnerPickupTimeoutSeconds: 1, order: ORDER, ...options.begin }),
    recordStep: done,
    completeOperation: done,
    failOperation: done,
    cancelOperation: done,
    armAutoStop: done,
    ...options.controlPlane,
  };
  const workers: Worker[] = [
    await Worker.create({
      connection: harness.env.nativeConnection,
      taskQueue: CONTROL_PLANE_TASK_QUEUE,
      workflowBundle: harness.bundle,
      dataConverter: harnessDataConverter!,
      activities: Object.fromEntries(
        Object.entries(controlPlane).map(([name, fn]) => [name, record('control-plane', name, fn)]),
      ),
    }),
  ];
  if (options.runner !== false) {
    workers.push(
      await Worker.create({
        connection: harness.env.nativeConnection,
        taskQueue: infrastructureTaskQueue(UNIT_INFRASTRUCTURE),
        dataConverter: harnessDataConverter!,
        activities: Object.fromEntries(
          Object.entries(options.runner ?? {}).map(([name, fn]) => [name, record('runner', name, fn)]),
        ),
        // Heartbeats (and with them cancellations) reach the server at once, not every 80% of the heartbeat timeout.
        maxHeartbeatThrottleInterval: '50ms',
      }),
    );
  }
  const handle = await harness.env.client.workflow.start(workflowType, {
    workflowId: `gitspace-${gitspaceId}`,
    taskQueue: CONTROL_PLANE_TASK_QUEUE,
    args: [input(gitspaceId)],
  });
  const outcome = workers.reduce<Promise<{ value?: unknown; error?: unknown }>>(
    (inner, worker) => worker.runUntil(inner),
    (async () => {
      await options.during?.(handle);
      return handle.result().then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
    })(),
  );
  return { gitspaceId, spec, calls, ...(await outcome) };
}

/** The calls as `queue name` lines, recordStep with its step: the order things happened in. */
export function trace(calls: Call[]): string[] {
  return calls.map((call) => (call.name === 'recordStep' ? `recordStep ${call.input.step}` : call.name));
}

/** The inputs of every call to the named activity. */
export function inputsOf(calls: Call[], name: string): any[] {
  return calls.filter((call) => call.name === name).map((call) => call.input);
}

/** A promise and its resolve, for an activity to say it has started. */
export function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
