import { sql, type Transaction } from 'kysely';
import { NotFoundError } from '../../common/errors';
import type { Actor } from '../../contracts/lifecycle';
import type { Db } from '../connect';
import type { Database, EventRow, GitspaceRow, OperationRow } from '../schema';

/** Where a gitspace's record stands, for the change feed (see `gitspaceVersions`). */
export interface GitspaceVersion {
  id: string;
  ownerId: string;
  state: GitspaceRow['state'];
  /** Its last event's number (0: none). */
  seq: number;
  /** How many operations it has had. */
  operations: number;
  /** The status of its latest operation; null before the first. */
  operationStatus: OperationRow['status'] | null;
}

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
     * Where each gitspace's record stands, in one query (the change feed's read, api/event-feed.ts): its owner, the
     * number of its last event, how many operations it has had and the status of the latest. Everything GET
     * /gitspaces/:id shows changes one of these: a state change or a step appends an event, and the two changes of an
     * operation that append none (a new one recorded, one ending) change the count or the status. Every gitspace, or
     * only those of `ownerIds`.
     */
    async gitspaceVersions(
      filter: { ownerIds?: readonly string[]; ids?: readonly string[] } = {},
    ): Promise<GitspaceVersion[]> {
      if (filter.ownerIds?.length === 0 || filter.ids?.length === 0) return [];
      let query = db
        .selectFrom('gitspaces as g')
        .select(['g.id', 'g.ownerId', 'g.state'])
        .select((eb) => [
          // Each a read of the last entries of an index: (gitspace_id, seq) and (gitspace_id, created_at).
          eb
            .selectFrom('events as e')
            .select((inner) => inner.fn.coalesce(inner.fn.max('e.seq'), sql<number>`0`).as('seq'))
            .whereRef('e.gitspaceId', '=', 'g.id')
            .as('seq'),
          eb
            .selectFrom('operations as o')
            .select((inner) => inner.fn.countAll<string>().as('operations'))
            .whereRef('o.gitspaceId', '=', 'g.id')
            .as('operations'),
          eb
            .selectFrom('operations as o')
            .select('o.status')
            .whereRef('o.gitspaceId', '=', 'g.id')
            .orderBy('o.createdAt', 'desc')
            .orderBy('o.id', 'desc')
            .limit(1)
            .as('operationStatus'),
        ]);
      if (filter.ownerIds) query = query.where('g.ownerId', 'in', filter.ownerIds);
      if (filter.ids) query = query.where('g.id', 'in', filter.ids);
      const rows = await query.execute();
      return rows.map((row) => ({
        id: row.id,
        ownerId: row.ownerId,
        state: row.state,
        seq: Number(row.seq ?? 0),
        operations: Number(row.operations ?? 0),
        operationStatus: row.operationStatus ?? null,
      }));
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
  await notifyChange(trx, gitspaceId);
}

/** The channel on which each committed change names its gitspace, for the change feeds that listen (api/event-feed.ts). */
export const CHANGES_CHANNEL = 'gitspace_changes';

/**
 * Names the gitspace on `CHANGES_CHANNEL` when `trx` commits (never if it rolls back), so a listening change feed reads
 * it at once instead of at its next poll. PostgreSQL sends one notification per transaction for the same gitspace.
 */
export async function notifyChange(trx: Transaction<Database>, gitspaceId: string): Promise<void> {
  await sql`select pg_notify(${CHANGES_CHANNEL}, ${gitspaceId})`.execute(trx);
}
