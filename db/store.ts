import { sql } from 'kysely';
import type { Db } from './connect';
import { createCliAuthorizationStore } from './stores/cli-authorizations';
import { createAutoStopStore } from './stores/auto-stop';
import { createEventStore } from './stores/events';
import { createGitspaceStore } from './stores/gitspaces';
import { createIdentityStore } from './stores/identities';
import { createInfrastructureStore } from './stores/infrastructures';
import { createMachineStore } from './stores/machines';
import { createMetricsStore } from './stores/metrics';
import { createOperationStore } from './stores/operations';
import { createPruningStore } from './stores/pruning';
import { createReconciliationStore } from './stores/reconciliation';
import { createSessionStore } from './stores/sessions';
import { createSshKeyStore } from './stores/ssh-keys';
import { createTokenStore } from './stores/tokens';
import { createUserStore } from './stores/users';
import { createWarmPoolStore } from './stores/warm-pool';

export { hashToken } from './stores/tokens';
export type { StateChange } from './stores/gitspaces';

/**
 * The control plane's data access: the queries of every part of db/stores/ over one database. Every state change of
 * a gitspace writes an event in the same transaction, under the gitspace row's lock, so the event log has no gap and
 * no reordering.
 */
export function createStore(db: Db) {
  return {
    db,
    ...createUserStore(db),
    ...createTokenStore(db),
    ...createSshKeyStore(db),
    ...createIdentityStore(db),
    ...createSessionStore(db),
    ...createCliAuthorizationStore(db),
    ...createInfrastructureStore(db),
    ...createMachineStore(db),
    ...createGitspaceStore(db),
    ...createEventStore(db),
    ...createOperationStore(db),
    ...createReconciliationStore(db),
    ...createMetricsStore(db),
    ...createAutoStopStore(db),
    ...createPruningStore(db),
    ...createWarmPoolStore(db),

    async ping(): Promise<void> {
      await sql`select 1`.execute(db);
    },
  };
}

export type Store = ReturnType<typeof createStore>;
