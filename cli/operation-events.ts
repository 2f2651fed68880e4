/**
 * What a gitspace's events say of one lifecycle operation: its current step, and whether it ended and how. Pure, so
 * the rules are unit-tested; cli/wait.ts feeds it the live stream.
 */
import { STEPS, type GitspaceState, type LifecycleAction } from '../contracts/lifecycle';
import type { GitspaceEvent } from './types';

/** The state an action shows while it runs (set when the API accepts it) and the one it ends in. */
const STATES: Record<LifecycleAction, { during: GitspaceState; after: GitspaceState }> = {
  start: { during: 'starting', after: 'running' },
  stop: { during: 'stopping', after: 'stopped' },
  delete: { during: 'deleting', after: 'deleted' },
};

export type OperationOutcome =
  | { succeeded: true; state: GitspaceState }
  | { succeeded: false; action: string; step?: string; message: string; cause?: string };

/** A step's words ("wait for the gitspace agent"), or its name when this CLI does not know it. */
export function stepWords(step: string): string {
  return Object.hasOwn(STEPS, step) ? STEPS[step as keyof typeof STEPS] : step;
}

/**
 * Follows one operation through the events after the request for it. Only what comes after the operation's own
 * "requested" state counts: a stop that first cancels a running start sees that start end in `stopped` before its own
 * `stopping`, and must not take it for its own end.
 */
export function trackOperation(action: LifecycleAction) {
  const { during, after } = STATES[action];
  let begun = false;
  let step: string | undefined;
  return {
    /** The step the operation is on (its name), once one was reported. */
    get step() {
      return step;
    },
    /** The outcome when this event ends the operation; undefined while it goes on. */
    observe(event: GitspaceEvent): OperationOutcome | undefined {
      if (event.type === 'step' && typeof event.data.step === 'string') {
        if (begun) step = event.data.step;
        return undefined;
      }
      if (event.type !== 'state' || event.state === undefined) return undefined;
      if (event.state === during) {
        begun = true;
        return undefined;
      }
      if (!begun) return undefined;
      if (event.state === after) return { succeeded: true, state: after };
      if (event.state === 'error') {
        const data = event.data as { action?: unknown; step?: unknown; message?: unknown; cause?: unknown };
        return {
          succeeded: false,
          action: typeof data.action === 'string' ? data.action : action,
          ...(typeof data.step === 'string' ? { step: data.step } : {}),
          message: typeof data.message === 'string' ? data.message : event.message,
          ...(typeof data.cause === 'string' ? { cause: data.cause } : {}),
        };
      }
      // A start cancelled by someone's stop or delete: it did not reach running.
      if (action === 'start' && event.state === 'stopped') return { succeeded: false, action, message: event.message };
      return undefined;
    },
  };
}
