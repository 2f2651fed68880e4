import type { ExpressionBuilder } from 'kysely';
import type { Db } from '../connect';
import type { Database } from '../schema';

/** The records that grow without end unless pruned (workflows/prune.ts removes the old ones on a schedule). */
export type PrunableRecord = 'operations' | 'idempotencyKeys' | 'reconcileRuns' | 'cliAuthorizations' | 'sessions';

/**
 * Deleting old records a batch at a time, so no statement holds its locks for long however much has piled up. Each
 * call deletes at most `limit` records older than `before` (what "older" means is the record's own: see each case)
 * and answers how many it deleted; fewer than `limit` means none is left.
 */
export function createPruningStore(db: Db) {
  return {
    async pruneRecords(kind: PrunableRecord, before: Date, limit: number): Promise<number> {
      const deleted = await pruneQuery(db, kind, before, limit).executeTakeFirst();
      return Number(deleted.numDeletedRows);
    },
  };
}

function pruneQuery(db: Db, kind: PrunableRecord, before: Date, limit: number) {
  switch (kind) {
    case 'operations':
      // Finished before `before`, and neither what its gitspace shows (its latest operation) nor what a running
      // gitspace's auto-stop counts from (its latest successful start). A running operation is never pruned.
      return db.deleteFrom('operations').where('id', 'in', (eb) =>
        eb
          .selectFrom('operations as o')
          .select('o.id')
          .where('o.status', '<>', 'running')
          .where('o.finishedAt', '<', before)
          .where((eb) => eb.exists(laterOperations(eb)))
          .where((eb) =>
            eb.not(
              eb.and([
                eb('o.action', '=', 'start'),
                eb('o.status', '=', 'succeeded'),
                eb.not(
                  eb.exists(
                    laterOperations(eb).where('later.action', '=', 'start').where('later.status', '=', 'succeeded'),
                  ),
                ),
              ]),
            ),
          )
          .orderBy('o.finishedAt')
          .limit(limit),
      );
    case 'idempotencyKeys':
      // A retried POST /gitspaces finds its gitspace only within this time: the key's retention.
      return db
        .deleteFrom('idempotencyKeys')
        .where(({ eb, refTuple, selectFrom }) =>
          eb(
            refTuple('userId', 'key'),
            'in',
            selectFrom('idempotencyKeys')
              .select(['userId', 'key'])
              .where('createdAt', '<', before)
              .orderBy('createdAt')
              .limit(limit)
              .$asTuple('userId', 'key'),
          ),
        );
    case 'reconcileRuns':
      // Kept only so a retried recording activity does not count its run twice: minutes matter, not months.
      return db
        .deleteFrom('reconcileRuns')
        .where('runId', 'in', (eb) =>
          eb
            .selectFrom('reconcileRuns')
            .select('runId')
            .where('recordedAt', '<', before)
            .orderBy('recordedAt')
            .limit(limit),
        );
    case 'cliAuthorizations':
      // `before` is their expiry (cli-authorizations.ts keeps used codes a while past it, for replays).
      return db
        .deleteFrom('cliAuthorizations')
        .where('codeHash', 'in', (eb) =>
          eb
            .selectFrom('cliAuthorizations')
            .select('codeHash')
            .where('expiresAt', '<', before)
            .orderBy('expiresAt')
            .limit(limit),
        );
    case 'sessions':
      // Past their absolute end (a session idle too long is refused when used, and deleted at the next sign-in).
      return db
        .deleteFrom('sessions')
        .where('idHash', 'in', (eb) =>
          eb.selectFrom('sessions').select('idHash').where('expiresAt', '<', before).orderBy('expiresAt').limit(limit),
        );
  }
}

/** The operations of `o`'s gitspace after it, in the order its latest is found (creation time, then id). */
function laterOperations(eb: ExpressionBuilder<Database & { o: Database['operations'] }, 'o'>) {
  return eb
    .selectFrom('operations as later')
    .select('later.id')
    .whereRef('later.gitspaceId', '=', 'o.gitspaceId')
    .where(({ or, and, eb }) =>
      or([
        eb('later.createdAt', '>', eb.ref('o.createdAt')),
        and([eb('later.createdAt', '=', eb.ref('o.createdAt')), eb('later.id', '>', eb.ref('o.id'))]),
      ]),
    );
}
