import type { DataConverter } from '@temporalio/common';
import { type ActivityInterceptorsFactory, type NativeConnection, Worker } from '@temporalio/worker';
import { createInfrastructureActivities, type InfrastructureActivityDeps } from '../activities/infrastructure';
import { infrastructureTaskQueue } from '../contracts/lifecycle';
import { PACKAGE_VERSION } from '../common/package-version';
import { RUNNER_CONTRACT_VERSION, runnerIdentity } from '../common/work-order';

export interface RunnerWorkerOptions extends InfrastructureActivityDeps {
  connection: NativeConnection;
  namespace: string;
  /** The payload codec (common/payload-codec.ts): required, so the runner acts on no plaintext payload. */
  dataConverter: DataConverter;
  /** The runner contract version it speaks (default RUNNER_CONTRACT_VERSION), named in its identity. */
  contractVersion?: number;
  /** Interceptors of every activity (the runner's metrics: workers/runner-metrics.ts). */
  activityInterceptors?: ActivityInterceptorsFactory[];
}

/** Infrastructure steps one runner runs at once. */
const RUNNER_ACTIVITY_SLOTS = 1000;

/**
 * The runner (delegate + VM runner): polls only its infrastructure's task queue and runs the infrastructure
 * activities. It connects out to Temporal and to nothing in the control plane.
 */
export function createRunnerWorker(options: RunnerWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    dataConverter: options.dataConverter,
    taskQueue: infrastructureTaskQueue(options.infrastructureId),
    identity: runnerIdentity({
      packageVersion: PACKAGE_VERSION,
      contractVersion: options.contractVersion ?? RUNNER_CONTRACT_VERSION,
    }),
    activities: createInfrastructureActivities(options),
    // A start's steps mostly wait (for a cloud, a booting machine, an agent): a slot is a pending promise, so hundreds
    // of gitspaces starting at once each hold one instead of queueing behind the SDK's default hundred.
    maxConcurrentActivityTaskExecutions: RUNNER_ACTIVITY_SLOTS,
    activityTaskPollerBehavior: { type: 'autoscaling' },
    ...(options.activityInterceptors ? { interceptors: { activity: options.activityInterceptors } } : {}),
  });
}
