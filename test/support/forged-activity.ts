import { randomBytes } from 'node:crypto';
import type { Client, Connection } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';

const { EventType, CommandType } = temporal.api.enums.v1;

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
    const deadline = Date.now() + 30_000;
    for (;;) {
      const history = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      const outcome = history.events!.find(
        (e) =>
          e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED ||
          e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED ||
          e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
      );
      if (outcome) {
        const failure = outcome.activityTaskFailedEventAttributes?.failure ?? undefined;
        return {
          completed: outcome.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
          ...(failure ? { failure } : {}),
        };
      }
      if (Date.now() > deadline) throw new Error(`no activity result in ${run.workflowId}/${run.runId}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await handle.terminate('test: forged run').catch(() => undefined);
  }
}
