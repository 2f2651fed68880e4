import { newId } from '../../common/ids';
import type { Actor, AutoStopReason, GitspaceState } from '../../contracts/lifecycle';
import type { Db } from '../connect';
import type { Kysely } from 'kysely';
import type { AutoStopWarned, Database } from '../schema';
import { appendEvent, lockGitspace } from './events';

/** A policy value and where it comes from: the gitspace's own, its infrastructure's, or none. */
export interface EffectiveSeconds {
  seconds: number | null;
  source: 'gitspace' | 'infrastructure' | 'none';
}

/** A gitspace's auto-stop policy as set on it (null: its infrastructure's; 0: never). */
export interface AutoStopSetting {
  idleTimeoutSeconds?: number | null;
  maxLifetimeSeconds?: number | null;
}

/** What the watcher needs to decide: the state, the latest successful start and the effective policy. */
export interface AutoStopFacts {
  state: GitspaceState;
  infrastructureId: string;
  /** The run of the latest start that succeeded, and when it did. */
  startRunId: string | null;
  runningSince: Date | null;
  idle: EffectiveSeconds;
  maxLifetime: EffectiveSeconds;
  warned: AutoStopWarned | null;
}

/**
 * The effective value: the gitspace's own when set (0 means never), else its infrastructure's (null or 0: none).
 * A null or 0 result means the rule is off.
 */
export function effectiveSeconds(own: number | null, infrastructure: number | null): EffectiveSeconds {
  if (own !== null) return { seconds: own === 0 ? null : own, source: 'gitspace' };
  if (infrastructure !== null && infrastructure > 0) return { seconds: infrastructure, source: 'infrastructure' };
  return { seconds: null, source: 'none' };
}

/** The gitspace's latest start that succeeded: the run a running gitspace is running under. */
function latestStart(db: Kysely<Database>, gitspaceId: string) {
  return db
    .selectFrom('operations')
    .select(['runId', 'finishedAt'])
    .where('gitspaceId', '=', gitspaceId)
    .where('action', '=', 'start')
    .where('status', '=', 'succeeded')
    .orderBy('createdAt', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/** The auto-stop's records (migration 0013): the policy of a gitspace, its warning marker and the stops requested. */
export function createAutoStopStore(db: Db) {
  return {
    async autoStopFacts(gitspaceId: string): Promise<AutoStopFacts | undefined> {
      const row = await db
        .selectFrom('gitspaces as g')
        .innerJoin('infrastructures as i', 'i.id', 'g.infrastructureId')
        .select([
          'g.state',
          'g.infrastructureId',
          'g.autoStopIdleSeconds as ownIdle',
          'g.autoStopMaxLifetimeSeconds as ownLifetime',
          'g.autoStopWarned as warned',
          'i.autoStopIdleSeconds as infraIdle',
          'i.autoStopMaxLifetimeSeconds as infraLifetime',
        ])
        .where('g.id', '=', gitspaceId)
        .executeTakeFirst();
      if (!row) return undefined;
      const start = await latestStart(db, gitspaceId);
      return {
        state: row.state,
        infrastructureId: row.infrastructureId,
        startRunId: start?.runId ?? null,
        runningSince: start?.finishedAt ?? null,
        idle: effectiveSeconds(row.ownIdle, row.infraIdle),
        maxLifetime: effectiveSeconds(row.ownLifetime, row.infraLifetime),
        warned: row.warned,
      };
    },

    /**
     * The latest successful start of every running gitspace, in one query: the watchers the control plane arms when
     * it starts.
     */
    async runningStarts(): Promise<{ gitspaceId: string; startRunId: string }[]> {
      return db
        .selectFrom('operations as o')
        .innerJoin('gitspaces as g', 'g.id', 'o.gitspaceId')
        .select(['o.gitspaceId', 'o.runId as startRunId'])
        .distinctOn('o.gitspaceId')
        .where('g.state', '=', 'running')
        .where('o.action', '=', 'start')
        .where('o.status', '=', 'succeeded')
        .orderBy('o.gitspaceId')
        .orderBy('o.createdAt', 'desc')
        .orderBy('o.id', 'desc')
        .execute();
    },

    /**
     * Sets a gitspace's own policy (a field left out keeps its value) and, with `event`, records who changed it, in the
     * same transaction.
     */
    async setGitspaceAutoStop(
      gitspaceId: string,
      setting: AutoStopSetting,
      event?: { message: string; actor: Actor },
    ): Promise<void> {
      const values = {
        ...(setting.idleTimeoutSeconds !== undefined ? { autoStopIdleSeconds: setting.idleTimeoutSeconds } : {}),
        ...(setting.maxLifetimeSeconds !== undefined ? { autoStopMaxLifetimeSeconds: setting.maxLifetimeSeconds } : {}),
      };
      if (Object.keys(values).length === 0) return;
      await db.transaction().execute(async (trx) => {
        await lockGitspace(trx, gitspaceId);
        await trx.updateTable('gitspaces').set(values).where('id', '=', gitspaceId).execute();
        if (event)
          await appendEvent(trx, gitspaceId, { type: 'auto-stop-policy', state: null, data: { ...setting }, ...event });
      });
    },

    /**
     * Records the warning for this deadline with its event, once: a second call for the same marker (a retried
     * activity, a restarted watcher) records nothing and answers false.
     */
    async recordAutoStopWarning(
      gitspaceId: string,
      warned: AutoStopWarned,
      event: { message: string; actor: Actor; data: Record<string, unknown> },
    ): Promise<boolean> {
      return db.transaction().execute(async (trx) => {
        const current = await lockGitspace(trx, gitspaceId);
        const given = current.autoStopWarned;
        if (
          given &&
          given.startRunId === warned.startRunId &&
          given.reason === warned.reason &&
          given.deadline === warned.deadline
        ) {
          return false;
        }
        await trx.updateTable('gitspaces').set({ autoStopWarned: warned }).where('id', '=', gitspaceId).execute();
        await appendEvent(trx, gitspaceId, { type: 'auto-stop-warning', state: null, ...event });
        return true;
      });
    },

    /**
     * Records a stop request when the gitspace is still running under `startRunId` (its latest successful start);
     * otherwise answers undefined: the watcher's facts are stale. Under the gitspace's row lock.
     */
    async recordAutoStopRequest(input: {
      gitspaceId: string;
      startRunId: string;
      reason: AutoStopReason;
    }): Promise<string | undefined> {
      return db.transaction().execute(async (trx) => {
        const current = await lockGitspace(trx, input.gitspaceId);
        if (current.state !== 'running') return undefined;
        const start = await latestStart(trx, input.gitspaceId);
        if (start?.runId !== input.startRunId) return undefined;
        const id = newId('asr');
        await trx
          .insertInto('autoStopRequests')
          .values({ id, ...input })
          .execute();
        return id;
      });
    },

    /**
     * The request with this id for this gitspace, if it was recorded for the start the gitspace still runs under: an
     * old request named again after a later start is not the watcher's word for this stop.
     */
    async findAutoStopRequest(
      gitspaceId: string,
      requestId: string,
    ): Promise<{ id: string; reason: AutoStopReason } | undefined> {
      const [request, start] = await Promise.all([
        db
          .selectFrom('autoStopRequests')
          .select(['id', 'reason', 'startRunId'])
          .where('id', '=', requestId)
          .where('gitspaceId', '=', gitspaceId)
          .executeTakeFirst(),
        latestStart(db, gitspaceId),
      ]);
      return request && request.startRunId === start?.runId ? { id: request.id, reason: request.reason } : undefined;
    },
  };
}
