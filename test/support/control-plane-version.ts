import { NativeConnection, type Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { WorkerDeploymentVersion } from '@temporalio/common';
import { connectionOptions } from '../../common/temporal-connection';
import { lifecycleRunningCheck } from '../../api/server';
import { silentLogger } from '../../common/logger';
import { payloadDataConverter } from '../../common/payload-codec';
import { createWorkOrderSigner } from '../../common/work-order';
import { DEFAULT_ORPHAN_GRACE_SECONDS } from '../../api/reconciliation';
import { createAutoStopArming, createAutoStopServices } from '../../api/auto-stop';
import { createLifecycleService } from '../../api/lifecycle-requests';
import {
  createControlPlaneWorker,
  makeWorkerVersionCurrent,
  type VersionPromotion,
} from '../../workers/control-plane-worker';
import type { TestStack } from './stack';

export interface ControlPlaneWorkerVersion {
  worker: Worker;
  version: WorkerDeploymentVersion;
  /** Makes this version current, as its control plane does on start (`promotion: 'auto'`). */
  makeCurrent(): Promise<VersionPromotion>;
  stop(): Promise<void>;
}

/**
 * Another version of the control-plane worker beside the stack's, as a deploy of new code starts one: same database,
 * keys and Temporal namespace, another workflow bundle (so another build id). It polls at once; it is not current
 * until `makeCurrent`.
 */
export async function startControlPlaneWorkerVersion(
  stack: TestStack,
  workflowBundle: WorkflowBundleWithSourceMap,
): Promise<ControlPlaneWorkerVersion> {
  const { client, store, payloadCodec } = stack.controlPlane;
  const connection = await NativeConnection.connect(connectionOptions(stack.temporal.connection));
  const worker = await createControlPlaneWorker({
    connection,
    namespace: stack.temporal.connection.namespace,
    dataConverter: payloadDataConverter(payloadCodec),
    workflowBundle,
    store,
    logger: silentLogger,
    runnerPickupTimeoutSeconds: 30,
    orphanGraceSeconds: DEFAULT_ORPHAN_GRACE_SECONDS,
    workOrders: await createWorkOrderSigner({ dataDir: stack.dataDir }),
    isLifecycleRunning: lifecycleRunningCheck(client),
    autoStop: createAutoStopServices({
      arming: createAutoStopArming(client, silentLogger),
      lifecycle: createLifecycleService({ client, store, logger: silentLogger }),
    }),
  });
  const running = worker.run();
  return {
    worker,
    version: worker.options.workerDeploymentOptions!.version,
    makeCurrent: () => makeWorkerVersionCurrent(client, worker, { logger: silentLogger }),
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await connection.close();
    },
  };
}
