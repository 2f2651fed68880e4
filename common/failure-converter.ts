import { DefaultFailureConverter } from '@temporalio/common';

/**
 * The failure converter of every Gitspaces client and worker, workflow code included (the workflow bundle loads this
 * module by path, so it imports nothing but `@temporalio/common`). A failure's message and stack trace travel in its
 * encoded attributes, a payload the payload codec seals like any other: Temporal keeps only `Encoded failure`. The
 * failure's type, its non-retryable flag and server-made failures (timeouts, cancellations) stay plaintext.
 */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
