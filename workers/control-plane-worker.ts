import type { DataConverter } from '@temporalio/common';
import { type NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createControlPlaneActivities, type ControlPlaneActivityDeps } from '../activities/control-plane';
import { CONTROL_PLANE_TASK_QUEUE } from '../common/lifecycle';

export interface ControlPlaneWorkerOptions extends ControlPlaneActivityDeps {
  connection: NativeConnection;
  namespace: string;
  /** The payload codec (common/payload-codec.ts): required, so no worker reads plaintext payloads. */
  dataConverter: DataConverter;
  /** The bundled workflow code (see `bundleLifecycleWorkflows`). */
  workflowBundle: WorkflowBundleWithSourceMap;
  taskQueue?: string;
}

/** The control-plane worker: runs every lifecycle workflow and the bookkeeping activities, beside the database. */
export function createControlPlaneWorker(options: ControlPlaneWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    dataConverter: options.dataConverter,
    taskQueue: options.taskQueue ?? CONTROL_PLANE_TASK_QUEUE,
    workflowBundle: options.workflowBundle,
    activities: createControlPlaneActivities(options),
  });
}
