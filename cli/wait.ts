/** Waiting for a lifecycle operation on the gitspace's event stream, with progress, until it succeeds or fails. */
import type { LifecycleAction } from '../contracts/lifecycle';
import { gitspacePath, type ApiClient } from './api-client';
import type { CliContext } from './context';
import { InterruptedError, LifecycleFailedError } from './errors';
import { followEvents } from './event-stream';
import { stepWords, trackOperation, type OperationOutcome } from './operation-events';
import type { Gitspace, GitspaceEvent, Page } from './types';

/** The last event of the gitspace: an operation's events are the ones after it (read before asking for it). */
export async function lastEventSeq(client: ApiClient, gitspaceId: string): Promise<number> {
  const events = await client.get<Page<GitspaceEvent>>(gitspacePath(gitspaceId, '/events'));
  return events.items.reduce((last, event) => Math.max(last, event.seq), 0);
}

/**
 * Follows the events after `after` until the operation ends; returns the gitspace as it then is. Throws
 * LifecycleFailedError (exit 1) with the step and message when it failed, InterruptedError on Ctrl-C.
 */
export async function waitForOperation(
  context: CliContext,
  client: ApiClient,
  target: { gitspace: Pick<Gitspace, 'id' | 'name'>; action: LifecycleAction; after: number },
): Promise<Gitspace> {
  const { gitspace, action } = target;
  const tracker = trackOperation(action);
  const progress = context.progress();
  const describe = () => `${action} '${gitspace.name}': ${tracker.step ? stepWords(tracker.step) : 'requested'}`;
  progress.update(describe());
  const interrupt = context.interruptible();
  let outcome: OperationOutcome | undefined;
  try {
    await followEvents(client, gitspace.id, {
      after: target.after,
      signal: interrupt.signal,
      onEvent(event) {
        outcome = tracker.observe(event);
        progress.update(describe());
        return outcome !== undefined;
      },
      onReconnect: (reason) => progress.note(`the event stream dropped (${reason}); resuming`),
    });
  } finally {
    interrupt.dispose();
    progress.end();
  }
  if (!outcome) {
    throw new InterruptedError(
      `stopped waiting; the ${action} of '${gitspace.name}' goes on (follow it with \`gitspaces logs --follow ${gitspace.id}\`)`,
    );
  }
  if (!outcome.succeeded) {
    const words = outcome.step ? stepWords(outcome.step) : undefined;
    throw new LifecycleFailedError(
      `${outcome.action} of gitspace '${gitspace.name}' failed${words ? ` at '${words}'` : ''}: ${outcome.message}`,
      {
        action: outcome.action,
        ...(outcome.step ? { step: outcome.step, stepWords: words } : {}),
        ...(outcome.cause ? { cause: outcome.cause } : {}),
      },
      // A failure leaves the gitspace in error, to retry; a start cancelled by a stop or delete left it stopped.
      outcome.step
        ? `see its events with \`gitspaces logs ${gitspace.id}\`; try it again with \`gitspaces retry ${gitspace.id}\``
        : `see its events with \`gitspaces logs ${gitspace.id}\``,
    );
  }
  return client.get<Gitspace>(gitspacePath(gitspace.id));
}
