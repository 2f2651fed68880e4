import { setTimeout as sleep } from 'node:timers/promises';
import { isGrpcServiceError, type Client } from '@temporalio/client';
import type { DataConverter, WorkerDeploymentVersion } from '@temporalio/common';
import { type NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createControlPlaneActivities, type ControlPlaneActivityDeps } from '../activities/bookkeeping';
import { createPruningActivities, type PruningActivityDeps } from '../activities/pruning';
import { createWarmPoolActivities } from '../activities/warm-pool';
import { CONTROL_PLANE_TASK_QUEUE } from '../contracts/lifecycle';
import type { Logger } from '../common/logger';
import { workflowBundleBuildId } from './workflow-bundle';

/** gRPC's status code for a request refused in the current state. */
const FAILED_PRECONDITION = 9;

/** The Worker Deployment every control-plane worker belongs to; each build of the workflow code is one version of it. */
export const CONTROL_PLANE_DEPLOYMENT = 'gitspaces-control-plane';

/**
 * Worker Versioning of the control plane (README: upgrading the control plane). Every workflow is PINNED to the version
 * it started on: a lifecycle run never replays on other workflow code, so a deploy can change the workflows freely,
 * and the old version's worker serves its runs until they are done (drained). The reconcile workflow is pinned too:
 * each scheduled run is a short workflow of its own, so the next run simply starts on the newest version.
 */
export interface ControlPlaneVersioning {
  /** GITSPACES_BUILD_ID; default `<package version>-<hash of the workflow bundle>` (workflowBundleBuildId). */
  buildId?: string;
  /**
   * GITSPACES_VERSION_PROMOTION. `auto` (default): the control plane makes its own version current once its worker
   * polls, so new runs start on it. `manual`: an operator does (`temporal worker deployment set-current-version` or
   * `set-ramping-version`), e.g. to finish a rolling deploy of several replicas first.
   */
  promotion?: 'auto' | 'manual';
}

export interface ControlPlaneWorkerOptions extends ControlPlaneActivityDeps, PruningActivityDeps {
  connection: NativeConnection;
  namespace: string;
  /** The payload codec (common/payload-codec.ts): required, so no worker reads plaintext payloads. */
  dataConverter: DataConverter;
  /** The bundled workflow code (see `bundleLifecycleWorkflows`). */
  workflowBundle: WorkflowBundleWithSourceMap;
  taskQueue?: string;
  versioning?: ControlPlaneVersioning;
}

/** The worker deployment version a control plane with this bundle (and build id, when configured) runs as. */
export function controlPlaneVersion(
  workflowBundle: Pick<WorkflowBundleWithSourceMap, 'code'>,
  buildId?: string,
): WorkerDeploymentVersion {
  return { deploymentName: CONTROL_PLANE_DEPLOYMENT, buildId: buildId ?? workflowBundleBuildId(workflowBundle) };
}

/**
 * The control-plane worker: runs every lifecycle workflow and the bookkeeping activities, beside the database, as one
 * version of the `gitspaces-control-plane` deployment. Runners' infrastructure queues are not versioned: a pinned
 * workflow's activities there go to whichever runner polls.
 */
export function createControlPlaneWorker(options: ControlPlaneWorkerOptions): Promise<Worker> {
  const version = controlPlaneVersion(options.workflowBundle, options.versioning?.buildId);
  // The build id an operator names to make this version current (GITSPACES_VERSION_PROMOTION=manual) or to watch it.
  options.logger.info('control-plane worker version', {
    deployment: version.deploymentName,
    buildId: version.buildId,
    promotion: options.versioning?.promotion ?? 'auto',
  });
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    dataConverter: options.dataConverter,
    taskQueue: options.taskQueue ?? CONTROL_PLANE_TASK_QUEUE,
    workflowBundle: options.workflowBundle,
    activities: {
      ...createControlPlaneActivities(options),
      ...createPruningActivities(options),
      ...createWarmPoolActivities(options),
    },
    // Pollers scale with the backlog (the SDK's autoscaling) instead of a fixed handful, for bursts of creates.
    workflowTaskPollerBehavior: { type: 'autoscaling' },
    activityTaskPollerBehavior: { type: 'autoscaling' },
    workerDeploymentOptions: {
      version,
      useWorkerVersioning: true,
      defaultVersioningBehavior: 'PINNED',
    },
  });
}

/** How often `makeWorkerVersionCurrent` asks the server again while it waits for the worker's first polls. */
const POLL_INTERVAL_MS = 200;

/** What `makeWorkerVersionCurrent` did. */
export interface VersionPromotion {
  /** False when the version was current already. */
  changed: boolean;
  /** The build id that was current before, if any. */
  previous?: string;
  /** Open workflows pinned to other versions of the deployment: their workers must keep running until they finish. */
  pinnedElsewhere: number;
}

/**
 * Makes a running worker's deployment version the current one, so new workflows start on it; runs pinned to the
 * version that was current keep going there. Waits (up to `timeoutMs`) until the server has seen the worker poll
 * every task queue the current version polls (it refuses the change before). Nothing to do when the version is
 * current already (another replica, or a restart of the same build). Workflows started meanwhile are not lost: they
 * start on the version current when a worker first picks them up. Warns when runs pinned to other versions are open:
 * the drain an operator has to wait for (README: upgrading the control plane).
 */
export async function makeWorkerVersionCurrent(
  client: Client,
  worker: Worker,
  options: { logger: Logger; timeoutMs?: number },
): Promise<VersionPromotion> {
  const version = worker.options.workerDeploymentOptions?.version;
  if (!version) throw new Error('this worker has no deployment version');
  const namespace = client.options.namespace;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let seen = false;
    let previous: string | undefined;
    try {
      const { workerDeploymentInfo: info } = await client.workflowService.describeWorkerDeployment({
        namespace,
        deploymentName: version.deploymentName,
      });
      const current = info?.routingConfig?.currentDeploymentVersion;
      if (current?.buildId === version.buildId) {
        return { changed: false, pinnedElsewhere: await pinnedElsewhere(client, version, options.logger) };
      }
      previous = current?.buildId || undefined;
      seen = info?.versionSummaries?.some((summary) => summary.deploymentVersion?.buildId === version.buildId) ?? false;
    } catch (error) {
      // NOT_FOUND until the deployment's first worker has polled.
      if (Date.now() > deadline) throw error;
    }
    if (seen) {
      try {
        await client.workflowService.setWorkerDeploymentCurrentVersion({
          namespace,
          deploymentName: version.deploymentName,
          buildId: version.buildId,
          identity: client.options.identity ?? '',
        });
      } catch (error) {
        // FAILED_PRECONDITION while the server has not yet seen this version poll every task queue (workflow and
        // activity tasks) that the current version polls.
        if (!isGrpcServiceError(error) || error.code !== FAILED_PRECONDITION || Date.now() > deadline) throw error;
        await sleep(POLL_INTERVAL_MS);
        continue;
      }
      options.logger.info('control-plane version is current: new workflows start on it', {
        deployment: version.deploymentName,
        buildId: version.buildId,
        ...(previous ? { previous } : {}),
      });
      return {
        changed: true,
        ...(previous ? { previous } : {}),
        pinnedElsewhere: await pinnedElsewhere(client, version, options.logger),
      };
    }
    if (Date.now() > deadline) {
      throw new Error(
        `the worker of ${version.deploymentName} ${version.buildId} was not seen polling within ${timeoutMs} ms`,
      );
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

/**
 * Counts the open workflows pinned to other versions of the deployment and, when there are any, says what an operator
 * must do: keep those versions' control planes running until the runs finish (or move the runs, which replays them on
 * this version's code). Visibility may lag a moment behind; a failed count is not fatal.
 */
async function pinnedElsewhere(client: Client, version: WorkerDeploymentVersion, logger: Logger): Promise<number> {
  const ours = `${version.deploymentName}:${version.buildId}`;
  const query =
    `TemporalWorkerDeployment = '${version.deploymentName}' AND ExecutionStatus = 'Running' ` +
    `AND TemporalWorkerDeploymentVersion != '${ours}'`;
  try {
    const { count } = await client.workflow.count(query);
    if (count > 0) {
      logger.warn(
        'runs pinned to other control-plane versions are open: keep those versions running until they finish',
        {
          count,
          list: `temporal workflow list --query "${query}"`,
          drain: `temporal worker deployment describe --name ${version.deploymentName} (DRAINING until their runs close, then DRAINED)`,
          move: `temporal workflow update-options --query "${query}" --versioning-override-behavior pinned --versioning-override-deployment-name ${version.deploymentName} --versioning-override-build-id ${version.buildId} (replays them on this code: only for changes guarded by patched())`,
        },
      );
    }
    return count;
  } catch (error) {
    logger.warn('could not count the runs pinned to other control-plane versions', {
      error: error instanceof Error ? error.message : String(error),
    });
    return 0;
  }
}
