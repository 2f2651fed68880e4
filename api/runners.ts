import type { Client } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { infrastructureTaskQueue } from '../contracts/lifecycle';
import { CONTRACT_VERSION_NEEDED, parseRunnerIdentity } from '../common/work-order';

/** The contract version a runner must speak for every operation of this control plane. */
export const RUNNER_CONTRACT_VERSION_NEEDED = Math.max(...Object.values(CONTRACT_VERSION_NEEDED));

/** A runner polling an infrastructure's task queue, as Temporal last saw it (api/schemas.ts `Runner`). */
export interface RunnerInfo {
  identity: string;
  version?: string;
  contractVersion?: number;
  upToDate: boolean;
  lastAccessTime?: string;
}

/**
 * The runners polling an infrastructure's task queue for activities, from Temporal's DescribeTaskQueue: each one's
 * identity, the versions it names there (workers/runner.ts) and when it last polled. Temporal lists the pollers of the
 * last few minutes; a runner that stopped polling drops off after that.
 */
export async function listRunners(client: Client, infrastructureId: string): Promise<RunnerInfo[]> {
  const { pollers } = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: {
      name: infrastructureTaskQueue(infrastructureId),
      kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
    },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  return (pollers ?? [])
    .map((poller): RunnerInfo => {
      const identity = poller.identity ?? '';
      const versions = parseRunnerIdentity(identity);
      const lastAccess = optionalTsToMs(poller.lastAccessTime);
      return {
        identity,
        ...(versions ? { version: versions.version, contractVersion: versions.contractVersion } : {}),
        upToDate: (versions?.contractVersion ?? 1) >= RUNNER_CONTRACT_VERSION_NEEDED,
        ...(lastAccess !== undefined ? { lastAccessTime: new Date(lastAccess).toISOString() } : {}),
      };
    })
    .sort((a, b) => (b.lastAccessTime ?? '').localeCompare(a.lastAccessTime ?? ''));
}
