import { createHash } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import { ConflictError, NotFoundError, QuotaReachedError } from '../common/errors';
import { newId, newToken } from '../common/ids';
import type { Actor, GitspaceState, LifecycleAction, OperationStatus } from '../contracts/lifecycle';
import type { Db } from './connect';
import type {
  Database,
  EventRow,
  GitspaceRow,
  InfrastructureRow,
  MachineRow,
  NewGitspace,
  OperationRow,
  ReconcileOutcome,
  UserRow,
} from './schema';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

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
}

/**
 * The control plane's data access. Every state change of a gitspace writes an event in the same transaction, under
 * the gitspace row's lock, so the event log has no gap and no reordering.
 */
export function createStore(db: Db) {
  return {
    db,

    async createUser(name: string, role: UserRow['role']): Promise<{ user: UserRow; token: string }> {
      return db.transaction().execute(async (trx) => {
        // The unique name decides, also between two processes creating the same user at once.
        const user = await trx
          .insertInto('users')
          .values({ id: newId('usr'), name, role })
          .returningAll()
          .executeTakeFirstOrThrow()
          .catch(conflictOnDuplicate(`a user named '${name}' already exists`));
        const token = newToken('gsp');
        await trx
          .insertInto('apiTokens')
          .values({ id: newId('tok'), userId: user.id, tokenHash: hashToken(token), lastUsedAt: null })
          .execute();
        return { user, token };
      });
    },

    /** Registers a token for a user (the configured admin token); a token already registered is left as it is. */
    async addToken(userId: string, token: string): Promise<void> {
      await db
        .insertInto('apiTokens')
        .values({ id: newId('tok'), userId, tokenHash: hashToken(token), lastUsedAt: null })
        .onConflict((oc) => oc.column('tokenHash').doNothing())
        .execute();
    },

    async findUserByName(name: string): Promise<UserRow | undefined> {
      return db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
    },

    async findUserById(id: string): Promise<UserRow | undefined> {
      return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    },

    async findUserByToken(token: string): Promise<UserRow | undefined> {
      return db
        .selectFrom('apiTokens')
        .innerJoin('users', 'users.id', 'apiTokens.userId')
        .selectAll('users')
        .where('apiTokens.tokenHash', '=', hashToken(token))
        .executeTakeFirst();
    },

    async listUsers(): Promise<UserRow[]> {
      return db.selectFrom('users').selectAll().orderBy('createdAt').orderBy('id').execute();
    },

    async createInfrastructure(
      values: Omit<InfrastructureRow, 'createdAt' | 'updatedAt' | 'runnerPublicKeys' | 'deletedAt'> & {
        runnerPublicKeys?: string[];
      },
    ): Promise<InfrastructureRow> {
      return db
        .insertInto('infrastructures')
        .values({ ...values, runnerPublicKeys: JSON.stringify(values.runnerPublicKeys ?? []) })
        .returningAll()
        .executeTakeFirstOrThrow()
        .catch(async (error: unknown) => {
          const retired = await db
            .selectFrom('infrastructures')
            .select('id')
            .where('id', '=', values.id)
            .where('deletedAt', 'is not', null)
            .executeTakeFirst()
            .catch(() => undefined);
          return conflictOnDuplicate(
            retired
              ? `an infrastructure named '${values.name}' was removed, and the records of its deleted gitspaces still name it; choose another name`
              : `an infrastructure named '${values.name}' already exists`,
          )(error);
        });
    },

    async listInfrastructures(): Promise<InfrastructureRow[]> {
      return db
        .selectFrom('infrastructures')
        .selectAll()
        .where('deletedAt', 'is', null)
        .orderBy('createdAt')
        .orderBy('id')
        .execute();
    },

    async getInfrastructure(id: string): Promise<InfrastructureRow> {
      const row = await db
        .selectFrom('infrastructures')
        .selectAll()
        .where('id', '=', id)
        .where('deletedAt', 'is', null)
        .executeTakeFirst();
      if (!row) throw new NotFoundError('infrastructure', id);
      return row;
    },

    async updateInfrastructure(
      id: string,
      patch: Partial<Pick<InfrastructureRow, 'config' | 'gatewayUrl' | 'runnerPublicKeys'>>,
    ): Promise<InfrastructureRow> {
      const { runnerPublicKeys, ...rest } = patch;
      const row = await db
        .updateTable('infrastructures')
        .set({
          ...rest,
          ...(runnerPublicKeys ? { runnerPublicKeys: JSON.stringify(runnerPublicKeys) } : {}),
          updatedAt: new Date(),
        })
        .where('id', '=', id)
        .where('deletedAt', 'is', null)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw new NotFoundError('infrastructure', id);
      return row;
    },

    /**
     * How many live gitspaces hold a sealed token, by infrastructure and by the runner key it is sealed to (`legacy`
     * for tokens sealed by earlier versions): an operator retires a runner key when its count is 0. All infrastructures,
     * or only the one named.
     */
    async countSealedTokens(infrastructureId?: string): Promise<Map<string, Record<string, number>>> {
      const keyId = sql<string>`case when repository_token_sealed like 'sealed:v2:%' then split_part(repository_token_sealed, ':', 3) else 'legacy' end`;
      const rows = await db
        .selectFrom('gitspaces')
        .select(['infrastructureId', keyId.as('keyId'), db.fn.countAll<string>().as('count')])
        .where('repositoryTokenSealed', 'is not', null)
        .where('state', '<>', 'deleted')
        .$if(infrastructureId !== undefined, (q) => q.where('infrastructureId', '=', infrastructureId!))
        .groupBy(['infrastructureId', keyId])
        .execute();
      const counts = new Map<string, Record<string, number>>();
      for (const row of rows) {
        counts.set(row.infrastructureId, { ...counts.get(row.infrastructureId), [row.keyId]: Number(row.count) });
      }
      return counts;
    },

    async deleteInfrastructure(id: string): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await lockInfrastructure(trx, id);
        const inUse = await trx
          .selectFrom('gitspaces')
          .select(['id', 'name'])
          .where('infrastructureId', '=', id)
          .where('state', '<>', 'deleted')
          .execute();
        if (inUse.length > 0) {
          const names = inUse
            .slice(0, 5)
            .map((g) => `'${g.name}'`)
            .join(', ');
          throw new ConflictError(
            `infrastructure '${id}' is used by ${inUse.length} gitspace(s) (${names}); delete them first`,
          );
        }
        // Deleted gitspaces keep their records and events, so their infrastructure row stays as history too.
        const history = await trx
          .selectFrom('gitspaces')
          .select('id')
          .where('infrastructureId', '=', id)
          .executeTakeFirst();
        if (history) {
          // Their records and events stay readable and name it: the row stays as their history, marked removed.
          await trx
            .updateTable('infrastructures')
            .set({ deletedAt: new Date(), updatedAt: new Date() })
            .where('id', '=', id)
            .execute();
          return;
        }
        await trx.deleteFrom('infrastructures').where('id', '=', id).execute();
      });
    },

    async createMachine(values: Omit<MachineRow, 'createdAt'>): Promise<MachineRow> {
      const existing = await db.selectFrom('machines').select('id').where('id', '=', values.id).executeTakeFirst();
      if (existing)
        throw new ConflictError(
          `infrastructure '${values.infrastructureId}' already has a machine named '${values.name}'`,
        );
      return db.insertInto('machines').values(values).returningAll().executeTakeFirstOrThrow();
    },

    async listMachines(infrastructureId: string): Promise<MachineRow[]> {
      return db
        .selectFrom('machines')
        .selectAll()
        .where('infrastructureId', '=', infrastructureId)
        .orderBy('createdAt')
        .orderBy('id')
        .execute();
    },

    async getMachine(id: string): Promise<MachineRow> {
      const row = await db.selectFrom('machines').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw new NotFoundError('machine', id);
      return row;
    },

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
      return db.transaction().execute(async (trx) => {
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
      });
    },

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

    /** Records an operation; recording the same workflow run twice keeps the first record. */
    async recordOperation(values: {
      gitspaceId: string;
      action: LifecycleAction;
      workflowId: string;
      runId: string;
    }): Promise<OperationRow> {
      await db
        .insertInto('operations')
        .values({ id: newId('op'), ...values, status: 'running', step: null, finishedAt: null })
        .onConflict((oc) => oc.column('runId').doNothing())
        .execute();
      return db.selectFrom('operations').selectAll().where('runId', '=', values.runId).executeTakeFirstOrThrow();
    },

    async findOperation(runId: string): Promise<OperationRow | undefined> {
      return db.selectFrom('operations').selectAll().where('runId', '=', runId).executeTakeFirst();
    },

    /** Updates an operation; when this call ends a running one, returns what it was (for its duration). */
    async updateOperation(
      runId: string,
      patch: { status?: OperationStatus; step?: string | null },
    ): Promise<Pick<OperationRow, 'action' | 'createdAt'> | undefined> {
      const finished = patch.status && patch.status !== 'running' ? { finishedAt: new Date() } : undefined;
      const update = () =>
        db
          .updateTable('operations')
          .set({ ...patch, ...finished })
          .where('runId', '=', runId);
      // In one statement, so of two calls (a retried activity) only the one that ended the operation hears it.
      const ended = finished
        ? await update().where('status', '=', 'running').returning(['action', 'createdAt']).executeTakeFirst()
        : undefined;
      if (!ended) await update().execute();
      return ended;
    },

    /** The latest operation of each gitspace: one row each from the database, however long its history. */
    async latestOperations(gitspaceIds: string[]): Promise<Map<string, OperationRow>> {
      if (gitspaceIds.length === 0) return new Map();
      const rows = await db
        .selectFrom('operations')
        .selectAll()
        .distinctOn('gitspaceId')
        .where('gitspaceId', 'in', gitspaceIds)
        .orderBy('gitspaceId')
        .orderBy('createdAt', 'desc')
        .orderBy('id', 'desc')
        .execute();
      return new Map(rows.map((row) => [row.gitspaceId, row]));
    },

    /**
     * Remembers when each machine of an unknown gitspace was first seen on the infrastructure and forgets the ones
     * no longer there; returns the first-seen time of each given gitspace id.
     */
    async trackOrphanMachines(
      infrastructureId: string,
      gitspaceIds: string[],
      seenAt: Date,
    ): Promise<Map<string, Date>> {
      return db.transaction().execute(async (trx) => {
        let stale = trx.deleteFrom('orphanMachines').where('infrastructureId', '=', infrastructureId);
        if (gitspaceIds.length > 0) stale = stale.where('gitspaceId', 'not in', gitspaceIds);
        await stale.execute();
        if (gitspaceIds.length === 0) return new Map();
        await trx
          .insertInto('orphanMachines')
          .values(gitspaceIds.map((gitspaceId) => ({ infrastructureId, gitspaceId, firstSeenAt: seenAt })))
          .onConflict((oc) => oc.columns(['infrastructureId', 'gitspaceId']).doNothing())
          .execute();
        const rows = await trx
          .selectFrom('orphanMachines')
          .select(['gitspaceId', 'firstSeenAt'])
          .where('infrastructureId', '=', infrastructureId)
          .execute();
        return new Map(rows.map((row) => [row.gitspaceId, new Date(row.firstSeenAt)]));
      });
    },

    /**
     * Records what one reconcile run did, once per run id: its events and its totals, in one transaction. Returns false
     * (and changes nothing) when that run was recorded already, as a retried activity would.
     */
    async recordReconcileRun(input: {
      runId: string;
      infrastructureId: string;
      counts: Partial<Record<ReconcileOutcome, number>>;
      events: { gitspaceId: string; message: string }[];
      /** Who ran it (the reconciler), named on its events. */
      actor: Actor;
      at: Date;
    }): Promise<boolean> {
      const { runId, infrastructureId, counts, events, actor, at } = input;
      return db.transaction().execute(async (trx) => {
        const fresh = await trx
          .insertInto('reconcileRuns')
          .values({ runId, infrastructureId, recordedAt: at })
          .onConflict((oc) => oc.column('runId').doNothing())
          .returning('runId')
          .executeTakeFirst();
        if (!fresh) return false;
        for (const { gitspaceId, message } of events) {
          await lockGitspace(trx, gitspaceId);
          await appendEvent(trx, gitspaceId, {
            type: 'reconcile',
            state: null,
            message,
            data: { infrastructureId },
            actor,
          });
        }
        const values = Object.entries(counts).map(([outcome, total]) => ({
          infrastructureId,
          outcome: outcome as ReconcileOutcome,
          total: total ?? 0,
          updatedAt: at,
        }));
        if (values.length > 0) {
          await trx
            .insertInto('reconcileTotals')
            .values(values)
            .onConflict((oc) =>
              oc.columns(['infrastructureId', 'outcome']).doUpdateSet((eb) => ({
                total: sql<number>`${eb.ref('reconcileTotals.total')} + ${eb.ref('excluded.total')}`,
                updatedAt: eb.ref('excluded.updatedAt'),
              })),
            )
            .execute();
        }
        return true;
      });
    },

    /** What GET /metrics reports: reconciliation totals, orphans awaiting their grace period, gitspaces by state. */
    async readMetrics(): Promise<{
      reconcileTotals: { infrastructureId: string; outcome: ReconcileOutcome; total: number; updatedAt: Date }[];
      orphanMachines: { infrastructureId: string; count: number }[];
      gitspaces: { infrastructureId: string; state: GitspaceState; count: number }[];
    }> {
      const [reconcileTotals, orphanMachines, gitspaces] = await Promise.all([
        db.selectFrom('reconcileTotals').selectAll().orderBy('infrastructureId').orderBy('outcome').execute(),
        db
          .selectFrom('orphanMachines')
          .select(['infrastructureId', (eb) => eb.fn.countAll<string>().as('count')])
          .groupBy('infrastructureId')
          .orderBy('infrastructureId')
          .execute(),
        db
          .selectFrom('gitspaces')
          .select(['infrastructureId', 'state', (eb) => eb.fn.countAll<string>().as('count')])
          .groupBy(['infrastructureId', 'state'])
          .orderBy('infrastructureId')
          .orderBy('state')
          .execute(),
      ]);
      return {
        reconcileTotals: reconcileTotals.map((row) => ({ ...row, total: Number(row.total) })),
        // count(*) is a bigint, which the drivers hand back as a string.
        orphanMachines: orphanMachines.map((row) => ({ ...row, count: Number(row.count) })),
        gitspaces: gitspaces.map((row) => ({ ...row, count: Number(row.count) })),
      };
    },

    async ping(): Promise<void> {
      await sql`select 1`.execute(db);
    },
  };
}

export type Store = ReturnType<typeof createStore>;

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

/** Turns a unique-key violation (SQLSTATE 23505, from PostgreSQL and PGlite alike) into a ConflictError. */
function conflictOnDuplicate(message: string): (error: unknown) => never {
  return (error) => {
    if ((error as { code?: unknown }).code === '23505') throw new ConflictError(message);
    throw error;
  };
}

async function lockGitspace(trx: Transaction<Database>, gitspaceId: string): Promise<GitspaceRow> {
  const row = await trx.selectFrom('gitspaces').selectAll().where('id', '=', gitspaceId).forUpdate().executeTakeFirst();
  if (!row) throw new NotFoundError('gitspace', gitspaceId);
  return row;
}

async function lockInfrastructure(trx: Transaction<Database>, id: string): Promise<void> {
  const row = await trx
    .selectFrom('infrastructures')
    .select('id')
    .where('id', '=', id)
    .where('deletedAt', 'is', null)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw new NotFoundError('infrastructure', id);
}

async function appendEvent(
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
