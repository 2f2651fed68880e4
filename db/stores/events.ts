import { sql, type Transaction } from 'kysely';
import { NotFoundError } from '../../common/errors';
import type { Actor } from '../../contracts/lifecycle';
import type { Db } from '../connect';
import type { Database, EventRow, GitspaceRow } from '../schema';

/**
 * Each gitspace's event log. An event is appended in the transaction of the change it records, under the gitspace
 * row's lock (`lockGitspace`, then `appendEvent`), so a gitspace's events are numbered without gaps or reordering.
 */
export function createEventStore(db: Db) {
  return {
    /** Records an event that does not change the state (a step started, a reconciliation finding). */
    async recordEvent(
      gitspaceId: string,
      event: { type: string; message: string; data?: Record<string, unknown>; actor: Actor },
    ): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await lockGitspace(trx, gitspaceId);
        await appendEvent(trx, gitspaceId, { ...event, state: null, data: event.data ?? {} });
      });
    },

    async listEvents(gitspaceId: string, afterSeq = 0): Promise<EventRow[]> {
      return db
        .selectFrom('events')
        .selectAll()
        .where('gitspaceId', '=', gitspaceId)
        .where('seq', '>', afterSeq)
        .orderBy('seq')
        .execute();
    },

    /**
     * The events after each cursor, in one query however many gitspaces are watched: the change feed's read. A
     * gitspace's events are numbered without gaps under its row lock, so a cursor per gitspace misses nothing.
     */
    async eventsAfter(cursors: { gitspaceId: string; afterSeq: number }[]): Promise<EventRow[]> {
      if (cursors.length === 0) return [];
      return db
        .selectFrom('events')
        .selectAll()
        .where((eb) =>
          eb.or(
            cursors.map((cursor) =>
              eb.and([eb('gitspaceId', '=', cursor.gitspaceId), eb('seq', '>', cursor.afterSeq)]),
            ),
          ),
        )
        .orderBy('gitspaceId')
        .orderBy('seq')
        .execute();
    },
  };
}

/** Locks a gitspace's row until the transaction ends: taken before appending its events. */
export async function lockGitspace(trx: Transaction<Database>, gitspaceId: string): Promise<GitspaceRow> {
  const row = await trx.selectFrom('gitspaces').selectAll().where('id', '=', gitspaceId).forUpdate().executeTakeFirst();
  if (!row) throw new NotFoundError('gitspace', gitspaceId);
  return row;
}

/** Appends an event with the gitspace's next number; the caller holds its row lock (or inserted the row in `trx`). */
export async function appendEvent(
  trx: Transaction<Database>,
  gitspaceId: string,
  event: { type: string; state: string | null; message: string; data: Record<string, unknown>; actor: Actor },
): Promise<void> {
  const { next } = await trx
    .selectFrom('events')
    .select(sql<number>`coalesce(max(seq), 0) + 1`.as('next'))
    .where('gitspaceId', '=', gitspaceId)
    .executeTakeFirstOrThrow();
  await trx
    .insertInto('events')
    .values({ gitspaceId, seq: Number(next), ...event })
    .execute();
}
