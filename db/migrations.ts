import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

/**
 * Versioned schema migrations, applied in name order by Kysely's Migrator. Never edit a migration that has shipped:
 * add the next one.
 */
export const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('admin', 'member')`))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema
        .createTable('api_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('last_used_at', 'timestamptz')
        .execute();
      await db.schema
        .createTable('infrastructures')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('provider', 'text', (c) => c.notNull().check(sql`provider in ('local', 'gcp', 'aws')`))
        .addColumn('config', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
        .addColumn('gateway_url', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema
        .createTable('machines')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('infrastructure_id', 'text', (c) => c.notNull().references('infrastructures.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('machine_type', 'text', (c) => c.notNull())
        .addColumn('disk_size_gb', 'integer', (c) => c.notNull())
        .addColumn('region', 'text')
        .addColumn('zone', 'text')
        .addColumn('image', 'text')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint('machines_infrastructure_name', ['infrastructure_id', 'name'])
        .execute();
      await db.schema
        .createTable('gitspaces')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('owner_id', 'text', (c) => c.notNull().references('users.id'))
        .addColumn('repository_url', 'text', (c) => c.notNull())
        .addColumn('repository_branch', 'text')
        .addColumn('repository_token_sealed', 'text')
        .addColumn('infrastructure_id', 'text', (c) => c.notNull().references('infrastructures.id'))
        .addColumn('machine_id', 'text', (c) => c.notNull().references('machines.id'))
        .addColumn('ide', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('url', 'text')
        .addColumn('last_error', 'jsonb')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      // A name is unique per owner among gitspaces that still exist; deleted ones keep their record.
      await sql`create unique index gitspaces_owner_name on gitspaces (owner_id, name) where state <> 'deleted'`.execute(
        db,
      );
      await db.schema.createIndex('gitspaces_infrastructure').on('gitspaces').column('infrastructure_id').execute();
      await db.schema
        .createTable('operations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('gitspace_id', 'text', (c) => c.notNull().references('gitspaces.id'))
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('workflow_id', 'text', (c) => c.notNull())
        .addColumn('run_id', 'text', (c) => c.notNull().unique())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('step', 'text')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('finished_at', 'timestamptz')
        .execute();
      await db.schema
        .createIndex('operations_gitspace')
        .on('operations')
        .columns(['gitspace_id', 'created_at'])
        .execute();
      await db.schema
        .createTable('events')
        .addColumn('gitspace_id', 'text', (c) => c.notNull().references('gitspaces.id'))
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('state', 'text')
        .addColumn('message', 'text', (c) => c.notNull())
        .addColumn('data', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint('events_pk', ['gitspace_id', 'seq'])
        .execute();
    },
  },
  '0003_idempotency_keys': {
    async up(db: Kysely<unknown>) {
      // One row per (user, Idempotency-Key) on POST /gitspaces: a retried request finds the gitspace it made.
      await db.schema
        .createTable('idempotency_keys')
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('request_hash', 'text', (c) => c.notNull())
        // No foreign key: the key is claimed before the gitspace row exists, in the same transaction.
        .addColumn('gitspace_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint('idempotency_keys_pk', ['user_id', 'key'])
        .execute();
    },
  },
  '0004_reconciliation': {
    async up(db: Kysely<unknown>) {
      // When reconciliation first saw a machine whose gitspace is unknown: it is deleted once the grace period passed.
      await db.schema
        .createTable('orphan_machines')
        .addColumn('infrastructure_id', 'text', (c) => c.notNull().references('infrastructures.id').onDelete('cascade'))
        .addColumn('gitspace_id', 'text', (c) => c.notNull())
        .addColumn('first_seen_at', 'timestamptz', (c) => c.notNull())
        .addPrimaryKeyConstraint('orphan_machines_pk', ['infrastructure_id', 'gitspace_id'])
        .execute();
      // Running totals of what reconciliation did, per infrastructure, for GET /metrics.
      await db.schema
        .createTable('reconcile_totals')
        .addColumn('infrastructure_id', 'text', (c) => c.notNull().references('infrastructures.id').onDelete('cascade'))
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('total', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
        .addPrimaryKeyConstraint('reconcile_totals_pk', ['infrastructure_id', 'outcome'])
        .execute();
    },
  },
  '0005_reconcile_runs': {
    async up(db: Kysely<unknown>) {
      // The reconcile runs already counted: a retried recording activity must not count a run twice.
      await db.schema
        .createTable('reconcile_runs')
        .addColumn('run_id', 'text', (c) => c.primaryKey())
        .addColumn('infrastructure_id', 'text', (c) => c.notNull().references('infrastructures.id').onDelete('cascade'))
        .addColumn('recorded_at', 'timestamptz', (c) => c.notNull())
        .execute();
    },
  },
  '0006_event_actor': {
    async up(db: Kysely<unknown>) {
      // Who asked for each change: a user, the reconciler, the auto-stop or unknown (with the reason). Events written
      // before this migration did not say, and read as unknown.
      await db.schema
        .alterTable('events')
        .addColumn('actor', 'jsonb', (c) =>
          c
            .notNull()
            .defaultTo(sql`'{"type": "unknown", "reason": "recorded before events named their actor"}'::jsonb`),
        )
        .execute();
    },
  },
  '0007_runner_sealed_tokens': {
    async up(db: Kysely<unknown>) {
      // Repository tokens are sealed to the infrastructure's runner keys (common/sealed-secret.ts): the record holds
      // their public halves. A gitspace may instead name a token in the runner's own secret store.
      await db.schema
        .alterTable('infrastructures')
        .addColumn('runner_public_keys', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
        .execute();
      await db.schema.alterTable('gitspaces').addColumn('repository_token_ref', 'text').execute();
    },
  },
  '0008_infrastructure_deleted_at': {
    async up(db: Kysely<unknown>) {
      // An infrastructure removed while deleted gitspaces' records name it is kept as their history, marked removed.
      await db.schema.alterTable('infrastructures').addColumn('deleted_at', 'timestamptz').execute();
    },
  },
  '0009_people_and_sessions': {
    async up(db: Kysely<unknown>) {
      // Users an administrator disabled (refused everywhere, kept) or removed (their gitspaces kept, stopped), and
      // the e-mail an invitation names for the first OpenID Connect sign-in.
      await db.schema
        .alterTable('users')
        .addColumn('email', 'text')
        .addColumn('disabled_at', 'timestamptz')
        .addColumn('deleted_at', 'timestamptz')
        .execute();
      // A token's label, so a user can tell which one to revoke.
      await db.schema.alterTable('api_tokens').addColumn('name', 'text').execute();
      // Who a user is at an identity provider: the issuer and its subject, never the e-mail, which can change hands.
      await db.schema
        .createTable('user_identities')
        .addColumn('issuer', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint('user_identities_pk', ['issuer', 'subject'])
        .execute();
      // Browser sessions of the dashboard: the cookie's hash, never the cookie; the CSRF token the page sends back;
      // when it ends (absolute and idle); and, for an OpenID Connect session, the refresh token sealed at rest and
      // when the provider last confirmed the user, so a user removed there is signed out here.
      await db.schema
        .createTable('sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('csrf_token', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
        .addColumn('last_seen_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('issuer', 'text')
        .addColumn('refresh_token_sealed', 'text')
        .addColumn('checked_at', 'timestamptz')
        .execute();
      await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();
    },
  },
  '0010_machine_deleted_at': {
    async up(db: Kysely<unknown>) {
      // A machine removed while deleted gitspaces' records name it is kept as their history, marked removed.
      await db.schema.alterTable('machines').addColumn('deleted_at', 'timestamptz').execute();
    },
  },
  '0011_session_api_token': {
    async up(db: Kysely<unknown>) {
      // The API token a session was made from: revoking a token deletes its row, and its sessions go with it.
      await db.schema
        .alterTable('sessions')
        .addColumn('api_token_id', 'text', (c) => c.references('api_tokens.id').onDelete('cascade'))
        .execute();
    },
  },
  '0012_ssh': {
    async up(db: Kysely<unknown>) {
      // Users' SSH public keys: an ssh access token names their fingerprints, and the agent admits only those keys.
      await db.schema
        .createTable('ssh_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('fingerprint', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('last_used_at', 'timestamptz')
        .addUniqueConstraint('ssh_keys_user_fingerprint', ['user_id', 'fingerprint'])
        .execute();
      // The gitspace's SSH host key (an OpenSSH public key line), published by its agent at each start.
      await db.schema.alterTable('gitspaces').addColumn('ssh_host_key', 'text').execute();
    },
  },
  '0013_auto_stop': {
    async up(db: Kysely<unknown>) {
      // Auto-stop policy in columns, not in `config`, so the work-order digest is untouched. An infrastructure's values
      // are the default of its gitspaces (null: off); existing ones stay off, new ones idle-stop after an hour.
      await db.schema
        .alterTable('infrastructures')
        .addColumn('auto_stop_idle_seconds', 'integer')
        .addColumn('auto_stop_max_lifetime_seconds', 'integer')
        .execute();
      await db.schema
        .alterTable('infrastructures')
        .alterColumn('auto_stop_idle_seconds', (c) => c.setDefault(3600))
        .execute();
      // A gitspace's own values (null: its infrastructure's; 0: never) and the warning already given for a deadline,
      // so a restarted watcher does not warn twice.
      await db.schema
        .alterTable('gitspaces')
        .addColumn('auto_stop_idle_seconds', 'integer')
        .addColumn('auto_stop_max_lifetime_seconds', 'integer')
        .addColumn('auto_stop_warned', 'jsonb')
        .execute();
      // The stops the watcher asked for: the stop workflow believes an auto-stop actor only with one of these.
      await db.schema
        .createTable('auto_stop_requests')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('gitspace_id', 'text', (c) => c.notNull().references('gitspaces.id').onDelete('cascade'))
        .addColumn('start_run_id', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull().check(sql`reason in ('idle', 'max-lifetime')`))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
    },
  },
  '0014_cli_authorizations': {
    async up(db: Kysely<unknown>) {
      // One-time codes of `gitspaces login --web`: the code's hash, never the code; the PKCE challenge and redirect the
      // exchange must match; when it was used and the token it gave, so a replay revokes that token.
      await db.schema
        .createTable('cli_authorizations')
        .addColumn('code_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('challenge', 'text', (c) => c.notNull())
        .addColumn('redirect_uri', 'text', (c) => c.notNull())
        .addColumn('client_name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
        .addColumn('used_at', 'timestamptz')
        .addColumn('token_id', 'text', (c) => c.references('api_tokens.id').onDelete('set null'))
        .execute();
      await db.schema
        .createIndex('cli_authorizations_expires_at')
        .on('cli_authorizations')
        .column('expires_at')
        .execute();
    },
  },
  '0015_list_and_lookup_indexes': {
    async up(db: Kysely<unknown>) {
      // Each serves the query named beside it (db/stores/); the events' (gitspace_id, seq) key and the
      // cli_authorizations' expires_at index already serve theirs.
      const indexes: [name: string, table: string, columns: string, where?: string][] = [
        // GET /gitspaces as the admin (pageGitspaces): newest first, read backwards from a cursor.
        ['gitspaces_created', 'gitspaces', 'created_at, id'],
        // A member's pages (pageGitspaces by owner), the change feed of an owner (gitspaceVersions), the quota count.
        ['gitspaces_owner_created', 'gitspaces', 'owner_id, created_at, id'],
        // Pages of one state (pageGitspaces ?state=), the running gitspaces (runningStarts, listGitspaces by state).
        ['gitspaces_state_created', 'gitspaces', 'state, created_at, id'],
        // Whether a machine is still used by a gitspace (deleteMachine).
        ['gitspaces_machine', 'gitspaces', 'machine_id'],
        // A gitspace's latest operation, in the order it is picked (latestOperations, the lateral join of
        // pageGitspaces, latestStart, runningStarts, pruning's later operations): no sort after the index.
        ['operations_gitspace_latest', 'operations', 'gitspace_id, created_at desc, id desc'],
        // Finished operations past their retention (pruneRecords, db/stores/pruning.ts).
        ['operations_finished', 'operations', 'finished_at', "status <> 'running'"],
        // Idempotency keys past their retention (pruneRecords).
        ['idempotency_keys_created', 'idempotency_keys', 'created_at'],
        // Reconcile runs past their retention (pruneRecords).
        ['reconcile_runs_recorded', 'reconcile_runs', 'recorded_at'],
        // A user's tokens (listTokens, the token quota, removeUser).
        ['api_tokens_user', 'api_tokens', 'user_id, created_at, id'],
        // Sessions past their absolute or idle end (deleteEndedSessions at each sign-in, pruneRecords).
        ['sessions_expires', 'sessions', 'expires_at'],
        ['sessions_last_seen', 'sessions', 'last_seen_at'],
        // A user's identity at an issuer (bindIdentity, findInvitedUser).
        ['user_identities_user', 'user_identities', 'user_id, issuer'],
        // The invited user with an e-mail (findInvitedUser, createUser's check).
        ['users_email', 'users', 'lower(email)', 'deleted_at is null'],
      ];
      for (const [name, table, columns, where] of indexes) {
        await sql.raw(`create index ${name} on ${table} (${columns})${where ? ` where ${where}` : ''}`).execute(db);
      }
      // Its prefix: operations_gitspace_latest serves every query it served.
      await db.schema.dropIndex('operations_gitspace').execute();
    },
  },
  '0016_simulated_provider': {
    async up(db: Kysely<unknown>) {
      // Infrastructures of the `simulated` provider (benchmarks and tests; the API takes them only when opted in).
      await sql`alter table infrastructures drop constraint if exists infrastructures_provider_check`.execute(db);
      await sql`alter table infrastructures add constraint infrastructures_provider_check
        check (provider in ('local', 'gcp', 'aws', 'simulated'))`.execute(db);
    },
  },
  '0017_warm_pools': {
    async up(db: Kysely<unknown>) {
      // A machine shape's warm pool (workflows/warm-pool.ts): its size, and the backoff after pooled machines failed.
      await db.schema
        .alterTable('machines')
        .addColumn('warm_pool_size', 'integer', (c) =>
          c
            .notNull()
            .defaultTo(0)
            .check(sql`warm_pool_size >= 0`),
        )
        .addColumn('warm_pool_failures', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('warm_pool_retry_at', 'timestamptz')
        .execute();
      // Every pooled machine from the moment it is ordered until it is deleted or adopted: reconciliation leaves the
      // machines named here alone, and the pool deletes every one it no longer needs, so none is ever lost track of.
      await db.schema
        .createTable('warm_machines')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('infrastructure_id', 'text', (c) => c.notNull().references('infrastructures.id'))
        .addColumn('machine_id', 'text', (c) => c.notNull().references('machines.id'))
        .addColumn('state', 'text', (c) =>
          c.notNull().check(sql`state in ('preparing', 'ready', 'claimed', 'retiring')`),
        )
        .addColumn('claimed_by', 'text', (c) => c.references('gitspaces.id').onDelete('set null'))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      // Claiming at a start: the oldest ready machine of a shape.
      await sql`create index warm_machines_ready on warm_machines (machine_id, updated_at) where state = 'ready'`.execute(
        db,
      );
      // A start's own claim, found again by a retried beginOperation.
      await sql`create unique index warm_machines_claimed_by on warm_machines (claimed_by) where state = 'claimed'`.execute(
        db,
      );
      await db.schema
        .createIndex('warm_machines_infrastructure')
        .on('warm_machines')
        .column('infrastructure_id')
        .execute();
    },
  },
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(migrations),
};
