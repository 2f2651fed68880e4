import type { ColumnType, Insertable, Selectable } from 'kysely';
import type { Actor } from '../contracts/lifecycle';

/** Timestamps are written by the database and read back as Date. */
type CreatedAt = ColumnType<Date, never, never>;
type UpdatedAt = ColumnType<Date, Date | undefined, Date>;
type Json<T> = ColumnType<T, T, T>;

export interface UsersTable {
  id: string;
  name: string;
  role: 'admin' | 'member';
  createdAt: CreatedAt;
  /** The address an invitation names, matched (verified) at the first OpenID Connect sign-in (migration 0009). */
  email: string | null;
  /** When an administrator disabled the user: every token and session is refused until enabled again. */
  disabledAt: Date | null;
  /** When an administrator removed the user: refused everywhere; their gitspaces are kept (stopped). */
  deletedAt: Date | null;
}

export interface ApiTokensTable {
  id: string;
  userId: string;
  /** SHA-256 of the token: tokens are long random strings, so a fast hash is enough and nothing reversible is kept. */
  tokenHash: string;
  createdAt: CreatedAt;
  lastUsedAt: Date | null;
  /** What the user called it, so they know which one to revoke (migration 0009). */
  name: string | null;
}

/** Who a user is at an OpenID Connect provider: issuer and subject (never the e-mail, which can change hands). */
export interface UserIdentitiesTable {
  issuer: string;
  subject: string;
  userId: string;
  createdAt: CreatedAt;
}

/** A dashboard session (migration 0009). The cookie itself is never stored, only its SHA-256. */
export interface SessionsTable {
  idHash: string;
  userId: string;
  /** Sent back by the page in X-CSRF-Token on every state-changing request. */
  csrfToken: string;
  createdAt: CreatedAt;
  /** The absolute end; the idle end is lastSeenAt plus the idle timeout. */
  expiresAt: Date;
  lastSeenAt: ColumnType<Date, Date | undefined, Date>;
  /** The OpenID Connect issuer that signed the user in; null for a session made from an API token. */
  issuer: string | null;
  /** The provider's refresh token, sealed at rest, to ask the provider whether the user still exists. */
  refreshTokenSealed: string | null;
  /** When the provider last confirmed the user. */
  checkedAt: Date | null;
  /** The API token the session was made from (POST /auth/token), which ends it when revoked; null for OIDC. */
  apiTokenId: string | null;
}

export interface InfrastructuresTable {
  id: string;
  name: string;
  provider: 'local' | 'gcp' | 'aws';
  config: Json<Record<string, unknown>>;
  gatewayUrl: string;
  /**
   * The runners' public keys (`x25519:…`), first the one new tokens are sealed to (common/sealed-secret.ts). Written
   * as JSON text: the pg driver would send a JavaScript array as a PostgreSQL array, which jsonb refuses.
   */
  runnerPublicKeys: ColumnType<string[], string | undefined, string>;
  createdAt: CreatedAt;
  updatedAt: UpdatedAt;
  /**
   * When it was removed while records of its deleted gitspaces still named it: the row stays as their history, and
   * the API no longer lists or serves it. Null while it is in use.
   */
  deletedAt: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface MachinesTable {
  id: string;
  infrastructureId: string;
  name: string;
  machineType: string;
  diskSizeGb: number;
  region: string | null;
  zone: string | null;
  image: string | null;
  createdAt: CreatedAt;
  /** When it was removed while records of deleted gitspaces still named it: kept as their history (migration 0010). */
  deletedAt: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface GitspacesTable {
  id: string;
  name: string;
  ownerId: string;
  repositoryUrl: string;
  repositoryBranch: string | null;
  /** Sealed to the infrastructure's runner key (common/sealed-secret.ts): the control plane cannot open it. */
  repositoryTokenSealed: string | null;
  /** A token in the runner's own secret store, by name (activities/secret-store.ts). */
  repositoryTokenRef: string | null;
  infrastructureId: string;
  machineId: string;
  ide: 'vscode-web' | 'terminal' | 'ssh';
  state: 'stopped' | 'starting' | 'running' | 'stopping' | 'deleting' | 'deleted' | 'error';
  url: string | null;
  lastError: Json<Record<string, unknown> | null>;
  createdAt: CreatedAt;
  updatedAt: UpdatedAt;
}

export interface OperationsTable {
  id: string;
  gitspaceId: string;
  action: 'start' | 'stop' | 'delete';
  workflowId: string;
  runId: string;
  status: 'running' | 'succeeded' | 'failed' | 'cancelled';
  step: string | null;
  createdAt: CreatedAt;
  finishedAt: Date | null;
}

export interface EventsTable {
  gitspaceId: string;
  /** 1, 2, 3… per gitspace with no gap: written under the gitspace row's lock. */
  seq: number;
  type: string;
  state: string | null;
  message: string;
  data: Json<Record<string, unknown>>;
  /** Who asked for it (migration 0006; older events read as unknown). */
  actor: Json<Actor>;
  createdAt: CreatedAt;
}

export interface IdempotencyKeysTable {
  userId: string;
  key: string;
  /** SHA-256 of the request body: the same key with another body is a client bug, refused. */
  requestHash: string;
  gitspaceId: string;
  createdAt: CreatedAt;
}

export interface OrphanMachinesTable {
  infrastructureId: string;
  /** The gitspace id the machine's label or tag names; no gitspace record has it. */
  gitspaceId: string;
  firstSeenAt: Date;
}

export interface ReconcileTotalsTable {
  infrastructureId: string;
  outcome: ReconcileOutcome;
  total: number;
  updatedAt: Date;
}

export interface ReconcileRunsTable {
  runId: string;
  infrastructureId: string;
  recordedAt: Date;
}

/** What reconciliation counts: finished runs, the machines and routes it acted on, and repairs that failed. */
export const RECONCILE_OUTCOMES = [
  'runs',
  'machinesStopped',
  'machinesDeleted',
  'routesRemoved',
  'actionsFailed',
] as const;
export type ReconcileOutcome = (typeof RECONCILE_OUTCOMES)[number];

export interface Database {
  users: UsersTable;
  apiTokens: ApiTokensTable;
  userIdentities: UserIdentitiesTable;
  sessions: SessionsTable;
  infrastructures: InfrastructuresTable;
  machines: MachinesTable;
  gitspaces: GitspacesTable;
  operations: OperationsTable;
  events: EventsTable;
  idempotencyKeys: IdempotencyKeysTable;
  orphanMachines: OrphanMachinesTable;
  reconcileTotals: ReconcileTotalsTable;
  reconcileRuns: ReconcileRunsTable;
}

export type UserRow = Selectable<UsersTable>;
export type ApiTokenRow = Selectable<ApiTokensTable>;
export type SessionRow = Selectable<SessionsTable>;
export type InfrastructureRow = Selectable<InfrastructuresTable>;
export type MachineRow = Selectable<MachinesTable>;
export type GitspaceRow = Selectable<GitspacesTable>;
export type OperationRow = Selectable<OperationsTable>;
export type EventRow = Selectable<EventsTable>;
export type NewGitspace = Insertable<GitspacesTable>;
