import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type WorkflowStartOptions,
} from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { ConflictError } from '../common/errors';
import type { Logger } from '../common/logger';
import {
  CONTROL_PLANE_TASK_QUEUE,
  lifecycleWorkflowId,
  type Actor,
  type GitspaceState,
  type LifecycleInput,
  type LifecycleAction,
} from '../contracts/lifecycle';
import type { OperationRow } from '../db/schema';
import type { Store } from '../db/store';
import { SEARCH_ATTRIBUTES } from '../engine/search-attributes';

export type RequestedAction = LifecycleAction | 'retry';

const WORKFLOW_TYPES: Record<LifecycleAction, string> = {
  start: 'startGitspace',
  stop: 'stopGitspace',
  delete: 'deleteGitspace',
};
const ACTION_OF_WORKFLOW_TYPE = Object.fromEntries(Object.entries(WORKFLOW_TYPES).map(([a, t]) => [t, a])) as Record<
  string,
  LifecycleAction
>;

/** The states from which a user may ask for each action. */
const ALLOWED_FROM: Record<LifecycleAction, readonly GitspaceState[]> = {
  start: ['stopped', 'error'],
  // A stop or delete during a start cancels the start first (DESIGN.md §2).
  stop: ['running', 'error', 'starting'],
  delete: ['stopped', 'running', 'error', 'starting'],
};

/** The state a gitspace shows while each action runs: set when the API accepts the action, before its workflow runs. */
const DURING: Record<LifecycleAction, GitspaceState> = { start: 'starting', stop: 'stopping', delete: 'deleting' };

const keys = {
  gitspaceId: defineSearchAttributeKey(SEARCH_ATTRIBUTES.gitspaceId, SearchAttributeType.KEYWORD),
  action: defineSearchAttributeKey(SEARCH_ATTRIBUTES.action, SearchAttributeType.KEYWORD),
  infrastructureId: defineSearchAttributeKey(SEARCH_ATTRIBUTES.infrastructureId, SearchAttributeType.KEYWORD),
  provider: defineSearchAttributeKey(SEARCH_ATTRIBUTES.provider, SearchAttributeType.KEYWORD),
};

/**
 * What the lifecycle service needs of Temporal (a `Client` is one): start a lifecycle workflow, and describe, cancel or
 * await the one running under an id. The API's route tests give a fake here and run without Temporal.
 */
export interface LifecycleTemporal {
  workflow: {
    start(workflowType: string, options: WorkflowStartOptions): Promise<{ firstExecutionRunId: string }>;
    getHandle(workflowId: string, runId?: string): LifecycleWorkflowHandle;
  };
}

export interface LifecycleWorkflowHandle {
  describe(): Promise<{ status: { name: string }; type: string; runId: string }>;
  cancel(): Promise<unknown>;
  result(): Promise<unknown>;
}

export interface LifecycleServiceOptions {
  client: LifecycleTemporal;
  store: Store;
  logger: Logger;
  /** How long a stop or delete waits for a cancelled start to finish its compensation. */
  cancelWaitMs?: number;
  /** Told of every accepted operation (the auto-stop looks again at once after a stop or delete). */
  onAccepted?: (gitspaceId: string, action: LifecycleAction) => void;
}

/**
 * Turns a user's request into a lifecycle workflow: checks the transition, cancels a running start when a stop or
 * delete arrives, and starts the workflow under the gitspace's one workflow ID (conflict policy FAIL), so a second
 * concurrent operation is refused with 409 naming the one that runs.
 */
export function createLifecycleService(options: LifecycleServiceOptions) {
  const { client, store, logger } = options;
  const cancelWaitMs = options.cancelWaitMs ?? 120_000;

  const describeRunning = async (gitspaceId: string): Promise<{ action: string; runId: string } | undefined> => {
    try {
      const description = await client.workflow.getHandle(lifecycleWorkflowId(gitspaceId)).describe();
      if (description.status.name !== 'RUNNING') return undefined;
      return { action: ACTION_OF_WORKFLOW_TYPE[description.type] ?? description.type, runId: description.runId };
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return undefined;
      throw error;
    }
  };

  const conflictWithRunning = async (gitspaceId: string, name: string, wanted: string): Promise<ConflictError> => {
    const running = await describeRunning(gitspaceId);
    return new ConflictError(
      running
        ? `gitspace '${name}' has a ${running.action} operation running (workflow ${lifecycleWorkflowId(gitspaceId)}, run ${running.runId}); wait for it to finish before asking to ${wanted}`
        : `gitspace '${name}' had another operation start at the same moment; try again`,
    );
  };

  /** Cancels a running start and waits for its compensation; returns once no start runs. */
  const cancelStart = async (gitspaceId: string, name: string): Promise<void> => {
    const handle: LifecycleWorkflowHandle = client.workflow.getHandle(lifecycleWorkflowId(gitspaceId));
    const running = await describeRunning(gitspaceId);
    if (!running || running.action !== 'start') return;
    logger.info('cancelling a running start', { gitspaceId, runId: running.runId });
    await handle.cancel();
    const finished = await Promise.race([
      handle.result().then(
        () => true,
        () => true,
      ),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), cancelWaitMs).unref()),
    ]);
    if (!finished) {
      throw new ConflictError(
        `the start of gitspace '${name}' is still undoing its work after cancellation; try again shortly`,
      );
    }
  };

  /**
   * When the running workflow has already recorded its outcome (it is only closing), waits a few seconds for it to
   * close; true when it did. A workflow still doing its work is a real conflict: false at once.
   */
  const previousRunCloses = async (gitspaceId: string): Promise<boolean> => {
    const running = await describeRunning(gitspaceId);
    if (!running) return true;
    const operation = await store.findOperation(running.runId);
    if (!operation || operation.status === 'running') return false;
    const handle = client.workflow.getHandle(lifecycleWorkflowId(gitspaceId), running.runId);
    return Promise.race([
      handle.result().then(
        () => true,
        () => true,
      ),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 5000).unref()),
    ]);
  };

  return {
    /**
     * Starts the workflow for `requested` on the gitspace, naming `actor` (who asked) in its input so that every event
     * of the operation names them; throws ConflictError when the transition is not allowed.
     */
    async request(gitspaceId: string, requested: RequestedAction, actor: Actor): Promise<OperationRow> {
      let gitspace = await store.getGitspace(gitspaceId);
      let action: LifecycleAction;
      if (requested === 'retry') {
        const failed = gitspace.lastError?.action;
        if (gitspace.state !== 'error' || typeof failed !== 'string') {
          throw new ConflictError(
            `gitspace '${gitspace.name}' is ${gitspace.state}; only a gitspace in error can be retried`,
          );
        }
        action = failed as LifecycleAction;
      } else {
        action = requested;
      }
      if (gitspace.state === 'deleted')
        throw new ConflictError(`gitspace '${gitspace.name}' is deleted; it cannot ${action}`);
      if (!ALLOWED_FROM[action].includes(gitspace.state)) {
        if (['starting', 'stopping', 'deleting'].includes(gitspace.state))
          throw await conflictWithRunning(gitspace.id, gitspace.name, action);
        throw new ConflictError(`gitspace '${gitspace.name}' is already ${gitspace.state}; it cannot ${action}`);
      }
      if (gitspace.state === 'starting' && action !== 'start') {
        await cancelStart(gitspace.id, gitspace.name);
        gitspace = await store.getGitspace(gitspaceId);
      }
      const infrastructure = await store.getInfrastructure(gitspace.infrastructureId);
      const workflowId = lifecycleWorkflowId(gitspace.id);
      // From the 202 on the gitspace shows the action it accepted (a stop right after a start finds it starting, a
      // retry shows starting, not the old error). The workflow's first step finds it so; should the workflow not
      // start, the gitspace goes back to where it was.
      const before = gitspace;
      // The auto-stop's request id is for the stop workflow to check (activities/operations.ts), not for the event.
      const recordedActor: Actor =
        actor.type === 'auto-stop' ? { type: 'auto-stop', ...(actor.reason ? { reason: actor.reason } : {}) } : actor;
      const during = DURING[action];
      const moved = before.state !== during;
      if (moved) {
        await store
          .changeState(gitspace.id, {
            to: during,
            actor: recordedActor,
            allowedFrom: [before.state],
            message: `${action} requested`,
            data: { action, workflowId },
            ...(action === 'start' ? { lastError: null } : { url: null }),
          })
          .catch(async (error: unknown) => {
            // Another request moved it a moment ago.
            if (error instanceof ConflictError) throw await conflictWithRunning(gitspace.id, gitspace.name, action);
            throw error;
          });
      }
      const putBack = async (reason: string) => {
        if (!moved) return;
        await store
          .changeState(gitspace.id, {
            to: before.state,
            actor: recordedActor,
            allowedFrom: [during],
            message: `${action} not started: ${reason}`,
            url: before.url,
            lastError: before.lastError,
          })
          .catch((error: unknown) =>
            logger.warn('could not put the gitspace back', { gitspaceId: gitspace.id, error }),
          );
      };
      const start = () =>
        client.workflow.start(WORKFLOW_TYPES[action], {
          workflowId,
          taskQueue: CONTROL_PLANE_TASK_QUEUE,
          args: [{ gitspaceId: gitspace.id, actor } satisfies LifecycleInput],
          workflowIdConflictPolicy: 'FAIL',
          staticSummary: `${action} gitspace '${gitspace.name}' on infrastructure '${infrastructure.name}'`,
          typedSearchAttributes: [
            { key: keys.gitspaceId, value: gitspace.id },
            { key: keys.action, value: action },
            { key: keys.infrastructureId, value: infrastructure.id },
            { key: keys.provider, value: infrastructure.provider },
          ],
        });
      const startOnce = async (): Promise<Awaited<ReturnType<typeof start>>> => {
        try {
          return await start();
        } catch (error) {
          if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
          // The previous operation has recorded its final state but its workflow is still closing: wait a moment.
          if (!(await previousRunCloses(gitspace.id))) {
            throw await conflictWithRunning(gitspace.id, gitspace.name, action);
          }
          try {
            return await start();
          } catch (retryError) {
            if (retryError instanceof WorkflowExecutionAlreadyStartedError)
              throw await conflictWithRunning(gitspace.id, gitspace.name, action);
            throw retryError;
          }
        }
      };
      let handle: Awaited<ReturnType<typeof start>>;
      try {
        handle = await startOnce();
      } catch (error) {
        await putBack(error instanceof Error ? error.message : String(error));
        throw error;
      }
      const operation = await store.recordOperation({
        gitspaceId: gitspace.id,
        action,
        workflowId,
        runId: handle.firstExecutionRunId,
      });
      options.onAccepted?.(gitspace.id, action);
      return operation;
    },
  };
}

export type LifecycleService = ReturnType<typeof createLifecycleService>;
