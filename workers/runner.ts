import type { DataConverter } from '@temporalio/common';
import { type NativeConnection, Worker } from '@temporalio/worker';
import { createInfrastructureActivities, type InfrastructureActivityDeps } from '../activities/infrastructure';
import { infrastructureTaskQueue } from '../common/lifecycle';

export interface RunnerWorkerOptions extends InfrastructureActivityDeps {
  connection: NativeConnection;
  namespace: string;
  /** The payload codec (common/payload-codec.ts): required, so the runner acts on no plaintext payload. */
  dataConverter: DataConverter;
}

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
    activities: createInfrastructureActivities(options),
  });
}
