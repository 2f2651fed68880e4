import { sql, type Transaction } from 'kysely';
import { ConflictError, NotFoundError, QuotaReachedError } from '../../common/errors';
import type { Actor, GitspaceState } from '../../contracts/lifecycle';
import type { Db } from '../connect';
import type { Database, GitspaceRow, NewGitspace, OperationRow } from '../schema';
import { appendEvent, lockGitspace } from './events';

export interface StateChange {
  to: GitspaceState;
  /** Who asked for the change: recorded on its event. */
  actor: Actor;
  /** The change is refused (ConflictError) unless the gitspace is in one of these states. */
  allowedFrom?: readonly GitspaceState[];
  message: string;
  data?: Record<string, unknown>;
  url?: string | null;
  lastError?: Record<string, unknown> | null;
  /** The machine's SSH host key (`ssh-ed25519 AAAA…`), as its agent reported it at this start; unset: kept as it is. */
  sshHostKey?: string;
}

/** Where a page of gitspaces ends: the last row's creation time (microseconds since the epoch, as text) and id. */
export interface GitspacePosition {
  createdAtMicros: string;
  id: string;
}

/** Gitspaces and their state changes; each creation and change writes its event in the same transaction. */
export function createGitspaceStore(db: Db) {
  return {
    /**
     * Creates a gitspace in state `stopped`, its owner named as the actor of its `created` event. With an idempotency
     * key, a request already seen returns the gitspace it made (`replayed`) instead of a second one; the same key with
     * another request is a conflict. With `maxPerOwner`, an owner who already has that many gitspaces (deleted ones
     * do not count) gets a QuotaReachedError: the count is taken under the owner's row lock, so concurrent creates
     * cannot pass it together.
     */
    async createGitspace(
      values: Omit<NewGitspace, 'state' | 'url' | 'lastError'>,
      idempotency?: { key: string; requestHash: string },
      limits: { maxPerOwner?: number } = {},
    ): Promise<{ gitspace: GitspaceRow; replayed: boolean }> {
      return db.transaction().execute(async (trx) => {
        if (idempotency) {
          // The key row is written first: a concurrent request with the same key waits here for this one to commit.
          const claimed = await trx
            .insertInto('idempotencyKeys')
            .values({
              userId: values.ownerId,
              key: idempotency.key,
              requestHash: idempotency.requestHash,
              gitspaceId: values.id,
            })
            .onConflict((oc) => oc.columns(['userId', 'key']).doNothing())
            .executeTakeFirst();
          if (Number(claimed.numInsertedOrUpdatedRows ?? 0) === 0) {
            const seen = await trx
              .selectFrom('idempotencyKeys')
              .selectAll()
              .where('userId', '=', values.ownerId)
              .where('key', '=', idempotency.key)
              .executeTakeFirstOrThrow();
            if (seen.requestHash !== idempotency.requestHash) {
              throw new ConflictError(
                'this Idempotency-Key was already used with a different request body; use a new key',
              );
            }
            const gitspace = await trx
              .selectFrom('gitspaces')
              .selectAll()
              .where('id', '=', seen.gitspaceId)
              .executeTakeFirstOrThrow();
            return { gitspace, replayed: true };
          }
        }
        return { gitspace: await insertGitspace(trx, values, limits.maxPerOwner), replayed: false };
      });
    },

    async getGitspace(id: string): Promise<GitspaceRow> {
      const row = await db.selectFrom('gitspaces').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw new NotFoundError('gitspace', id);
      return row;
    },

    /** The gitspaces with these ids (the change feed's read of what changed), in no particular order. */
    async gitspacesByIds(ids: readonly string[]): Promise<GitspaceRow[]> {
      if (ids.length === 0) return [];
      return db.selectFrom('gitspaces').selectAll().where('id', 'in', ids).execute();
    },

    /**
     * A page of gitspaces, newest first: by creation time, then id, both descending, from just after `after` (a
     * position a page before gave out). Keyset paging: a row added between two pages does not shift the next one, so
     * the pages cover each row that existed when paging began exactly once. `next` is the position after the last row,
     * when there are more. Each row's latest operation comes in the same statement (what the list shows of it), read
     * from the end of the operations' (gitspace_id, created_at) index.
     */
    async pageGitspaces(filter: {
      ownerId?: string;
      states?: readonly GitspaceState[];
      after?: GitspacePosition;
      limit: number;
    }): Promise<{ rows: GitspaceRow[]; latestOperations: Map<string, OperationRow>; next?: GitspacePosition }> {
      let page = db
        .selectFrom('gitspaces')
        .selectAll()
        // Microseconds since the epoch, exact: a Date would round the position to milliseconds.
        .select(sql<string>`(extract(epoch from created_at) * 1000000)::bigint::text`.as('position'));
      if (filter.ownerId) page = page.where('ownerId', '=', filter.ownerId);
      if (filter.states) page = page.where('state', 'in', filter.states);
      if (filter.after) {
        const { createdAtMicros, id } = filter.after;
        page = page.where(({ eb, refTuple, tuple }) =>
          eb(
            refTuple('createdAt', 'id'),
            '<',
            tuple(sql<Date>`timestamptz 'epoch' + ${createdAtMicros}::bigint * interval '1 microsecond'`, id),
          ),
        );
      }
      // The page first, then the latest operation of its rows only, whatever plan the page gets.
      const found = await db
        .selectFrom(
          page
            .orderBy('createdAt', 'desc')
            .orderBy('id', 'desc')
            .limit(filter.limit + 1)
            .as('g'),
        )
        .leftJoinLateral(
          (eb) =>
            eb
              .selectFrom('operations')
              .selectAll()
              .whereRef('operations.gitspaceId', '=', 'g.id')
              .orderBy('operations.createdAt', 'desc')
              .orderBy('operations.id', 'desc')
              .limit(1)
              .as('o'),
          (join) => join.onTrue(),
        )
        .selectAll('g')
        .select([
          'o.id as operationId',
          'o.action as operationAction',
          'o.workflowId as operationWorkflowId',
          'o.runId as operationRunId',
          'o.status as operationStatus',
          'o.step as operationStep',
          'o.createdAt as operationCreatedAt',
          'o.finishedAt as operationFinishedAt',
        ])
        .orderBy('g.createdAt', 'desc')
        .orderBy('g.id', 'desc')
        .execute();
      const rows: GitspaceRow[] = [];
      const latestOperations = new Map<string, OperationRow>();
      for (const entry of found.slice(0, filter.limit)) {
        const {
          position: _position,
          operationId,
          operationAction,
          operationWorkflowId,
          operationRunId,
          operationStatus,
          operationStep,
          operationCreatedAt,
          operationFinishedAt,
          ...row
        } = entry;
        rows.push(row);
        if (operationId !== null) {
          latestOperations.set(row.id, {
            id: operationId,
            gitspaceId: row.id,
            action: operationAction!,
            workflowId: operationWorkflowId!,
            runId: operationRunId!,
            status: operationStatus!,
            step: operationStep,
            createdAt: operationCreatedAt!,
            finishedAt: operationFinishedAt,
          });
        }
      }
      const last = found.length > filter.limit ? found[filter.limit - 1] : undefined;
      return { rows, latestOperations, ...(last ? { next: { createdAtMicros: last.position, id: last.id } } : {}) };
    },

    async listGitspaces(filter: {
      ownerId?: string;
      infrastructureId?: string;
      states?: GitspaceState[];
    }): Promise<GitspaceRow[]> {
      let query = db.selectFrom('gitspaces').selectAll();
      if (filter.ownerId) query = query.where('ownerId', '=', filter.ownerId);
      if (filter.infrastructureId) query = query.where('infrastructureId', '=', filter.infrastructureId);
      if (filter.states) query = query.where('state', 'in', filter.states);
      return query.orderBy('createdAt').orderBy('id').execute();
    },

    /** Moves a gitspace to a new state and records the event, atomically. */
    async changeState(gitspaceId: string, change: StateChange): Promise<GitspaceRow> {
      return db.transaction().execute((trx) => applyStateChange(trx, gitspaceId, change));
    },
  };
}

/** A state change and its event, under the gitspace row's lock, inside the caller's transaction. */
export async function applyStateChange(
  trx: Transaction<Database>,
  gitspaceId: string,
  change: StateChange,
): Promise<GitspaceRow> {
  const current = await lockGitspace(trx, gitspaceId);
  if (change.allowedFrom && !change.allowedFrom.includes(current.state)) {
    throw new ConflictError(`gitspace '${current.name}' is ${current.state}; it cannot become ${change.to}`);
  }
  const row = await trx
    .updateTable('gitspaces')
    .set({
      state: change.to,
      updatedAt: new Date(),
      ...(change.url !== undefined ? { url: change.url } : {}),
      ...(change.lastError !== undefined ? { lastError: change.lastError } : {}),
      ...(change.sshHostKey !== undefined ? { sshHostKey: change.sshHostKey } : {}),
    })
    .where('id', '=', gitspaceId)
    .returningAll()
    .executeTakeFirstOrThrow();
  await appendEvent(trx, gitspaceId, {
    type: 'state',
    state: change.to,
    message: change.message,
    data: change.data ?? {},
    actor: change.actor,
  });
  return row;
}

async function insertGitspace(
  trx: Transaction<Database>,
  values: Omit<NewGitspace, 'state' | 'url' | 'lastError'>,
  maxPerOwner: number | undefined,
): Promise<GitspaceRow> {
  // The owner's row lock serialises this owner's creates, so the quota holds under concurrent requests.
  const owner = await trx
    .selectFrom('users')
    .select(['id', 'name'])
    .where('id', '=', values.ownerId)
    .forUpdate()
    .executeTakeFirst();
  if (!owner) throw new NotFoundError('user', values.ownerId);
  if (maxPerOwner !== undefined) {
    const { count } = await trx
      .selectFrom('gitspaces')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .where('ownerId', '=', values.ownerId)
      .where('state', '<>', 'deleted')
      .executeTakeFirstOrThrow();
    if (Number(count) >= maxPerOwner) {
      throw new QuotaReachedError(
        `quota reached: user '${owner.name}' has ${Number(count)} of ${maxPerOwner} gitspaces; delete one before creating another`,
      );
    }
  }
  const clash = await trx
    .selectFrom('gitspaces')
    .select('id')
    .where('ownerId', '=', values.ownerId)
    .where('name', '=', values.name)
    .where('state', '<>', 'deleted')
    .executeTakeFirst();
  if (clash) throw new ConflictError(`you already have a gitspace named '${values.name}' (${clash.id})`);
  const row = await trx
    .insertInto('gitspaces')
    .values({ ...values, state: 'stopped', url: null, lastError: null })
    .returningAll()
    .executeTakeFirstOrThrow();
  await appendEvent(trx, row.id, {
    type: 'created',
    state: 'stopped',
    message: `gitspace '${row.name}' created`,
    data: {},
    actor: { type: 'user', id: owner.id, name: owner.name },
  });
  return row;
}
