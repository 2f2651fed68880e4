import { ApplicationFailure, Context } from '@temporalio/activity';

/**
 * The workflow run that scheduled the current bookkeeping activity: operations and reconciliation runs are recorded by
 * its ids. An activity no workflow scheduled is a misuse, failed for good instead of retried.
 */
export function currentWorkflowRun(): { workflowId: string; runId: string } {
  const execution = Context.current().info.workflowExecution;
  if (!execution)
    throw ApplicationFailure.nonRetryable('bookkeeping activities run only inside a lifecycle workflow', 'MisuseError');
  return execution;
}
