import { ActivityFailure } from '@temporalio/workflow';

/** What went wrong, in words: an activity's own failure message rather than Temporal's "Activity task failed". */
export function failureMessage(error: unknown): string {
  return error instanceof ActivityFailure && error.cause ? error.cause.message : String(error);
}
