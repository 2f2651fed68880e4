import { ConflictError, NotFoundError } from '../common/errors';
import type { Logger } from '../common/logger';
import type { Actor, AutoStopReason, AutoStopStatus } from '../contracts/lifecycle';
import type { Store } from '../db/store';

/** What the auto-stop needs of the control plane around it (built in api/server.ts). */
export interface AutoStopServices {
  /** How long before a stop its warning is given (GITSPACES_AUTO_STOP_WARNING_SECONDS; capped at half the timeout). */
  warningSeconds: number;
  /** Arms (signal-with-start) the watcher of a gitspace for a start run (api/auto-stop.ts). */
  arm(gitspaceId: string, startRunId: string): Promise<void>;
  /** Asks for a normal stop through the lifecycle service; throws ConflictError while another operation runs. */
  requestStop(gitspaceId: string, actor: Actor): Promise<void>;
}

export interface AutoStopActivityDeps {
  store: Store;
  logger: Logger;
  autoStop: AutoStopServices;
}

/** The actor of every auto-stop event. */
const AUTO_STOP = (reason?: AutoStopReason): Actor => ({ type: 'auto-stop', ...(reason ? { reason } : {}) });

/** "25 min", "8 h", "90 s": a duration as a person reads it. */
export function readableDuration(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 120 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${Math.round(seconds)} s`;
}

/** "14:05:30 UTC" (the date too when it is not today). */
function readableTime(ms: number, now = Date.now()): string {
  const at = new Date(ms).toISOString();
  const time = `${at.slice(11, 19)} UTC`;
  return at.slice(0, 10) === new Date(now).toISOString().slice(0, 10) ? time : `${at.slice(0, 10)} ${time}`;
}

/**
 * The control-plane side of the auto-stop watcher (workflows/auto-stop.ts): what it reads, the events it records and
 * the stop it asks for. Registered with the bookkeeping activities.
 */
export function createAutoStopActivities({ store, logger, autoStop }: AutoStopActivityDeps) {
  return {
    /** The gitspace's state, latest successful start and effective policy. */
    async autoStopStatus(input: { gitspaceId: string }): Promise<AutoStopStatus> {
      const facts = await store.autoStopFacts(input.gitspaceId);
      return {
        running: facts?.state === 'running',
        startRunId: facts?.startRunId ?? null,
        infrastructureId: facts?.infrastructureId ?? '',
        runningSinceMs: facts?.runningSince?.getTime() ?? null,
        policy: { idleSeconds: facts?.idle.seconds ?? null, maxLifetimeSeconds: facts?.maxLifetime.seconds ?? null },
        warningSeconds: autoStop.warningSeconds,
      };
    },

    /** The warning event, once per deadline (a retry or a restarted watcher records nothing more). */
    async recordAutoStopWarning(input: {
      gitspaceId: string;
      startRunId: string;
      reason: AutoStopReason;
      deadlineMs: number;
      timeoutMs: number;
    }): Promise<void> {
      const at = readableTime(input.deadlineMs);
      const timeout = readableDuration(input.timeoutMs / 1000);
      const message =
        input.reason === 'idle'
          ? `idle: stops at ${at} unless used (idle timeout ${timeout})`
          : `reaches its maximum lifetime of ${timeout} at ${at}: it stops then`;
      const deadline = new Date(input.deadlineMs).toISOString();
      await store.recordAutoStopWarning(
        input.gitspaceId,
        { startRunId: input.startRunId, reason: input.reason, deadline },
        { message, actor: AUTO_STOP(input.reason), data: { reason: input.reason, stopsAt: deadline } },
      );
    },

    /** Says once that use cannot be observed (no runner, no gateway): no idle stop without evidence. */
    async recordAutoStopUnobserved(input: { gitspaceId: string }): Promise<void> {
      await store.recordEvent(input.gitspaceId, {
        type: 'auto-stop-unobserved',
        message:
          "the gateway's view of this gitspace's use cannot be read (is its runner up?): no idle stop until it can",
        actor: AUTO_STOP(),
      });
    },

    /**
     * Asks for the stop, when the gitspace still runs under the start the watcher watched: `stale` otherwise,
     * `conflict` while another operation holds it (the watcher asks again later).
     */
    async requestAutoStop(input: {
      gitspaceId: string;
      startRunId: string;
      reason: AutoStopReason;
    }): Promise<'requested' | 'stale' | 'conflict'> {
      const requestId = await store.recordAutoStopRequest(input);
      if (!requestId) return 'stale';
      try {
        await autoStop.requestStop(input.gitspaceId, { type: 'auto-stop', reason: input.reason, requestId });
      } catch (error) {
        if (error instanceof NotFoundError) return 'stale';
        if (!(error instanceof ConflictError)) throw error;
        const facts = await store.autoStopFacts(input.gitspaceId);
        return facts?.state === 'running' ? 'conflict' : 'stale';
      }
      logger.info('auto-stop requested', input);
      return 'requested';
    },

    /** Arms the gitspace's watcher for this start (called by the start workflow once it is running). */
    async armAutoStop(input: { gitspaceId: string; startRunId: string }): Promise<void> {
      await autoStop.arm(input.gitspaceId, input.startRunId);
    },
  };
}
