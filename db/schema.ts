import type { ProviderName } from '../contracts/provider';
import type { ColumnType, Insertable, Selectable } from 'kysely';
import type { Actor } from '../contracts/lifecycle';

/** Timestamps are written by the database and read back as Date. */
type CreatedAt = ColumnType<Date, never, never>;
type UpdatedAt = ColumnType<Date, Date | undefined, Date>;
type Json<T> = ColumnType<T, T, T>;
/** A column added later with a default: reads always have it, inserts may leave it out. */
type OptionalColumn<T> = ColumnType<T, T | undefined, T>;

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
/** A user's SSH public key (migration 0012): ssh access tokens name the fingerprints of their user's keys. */
export interface SshKeysTable {
  id: string;
  userId: string;
  name: string;
  /** The key as one OpenSSH line: `<type> <base64> [comment]`. */
  publicKey: string;
  /** `SHA256:…` of the key's wire format (common/ssh-public-key.ts), unique per user. */
  fingerprint: string;
  createdAt: CreatedAt;
  lastUsedAt: OptionalColumn<Date | null>;
}

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
  provider: ProviderName;
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
  /** The default idle timeout of its gitspaces (null: none; migration 0013 defaults new rows to 3600). */
  autoStopIdleSeconds: OptionalColumn<number | null>;
  /** The default maximum lifetime of a running gitspace (null: none). */
  autoStopMaxLifetimeSeconds: OptionalColumn<number | null>;
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
  /** How many stopped machines of this shape its warm pool keeps ready (migration 0017; 0: no pool). */
  warmPoolSize: OptionalColumn<number>;
  /** Pooled machines that failed in a row, and when the pool may try again (exponential backoff). */
  warmPoolFailures: OptionalColumn<number>;
  warmPoolRetryAt: OptionalColumn<Date | null>;
}

/**
 * A pooled machine (migration 0017), named by its warm key where a gitspace's machine is named by the gitspace id:
 * `preparing` (being made), `ready` (made, agent checked, stopped), `claimed` (by a start, which adopts it), `retiring`
 * (to be deleted: surplus, failed, stale, or a claim whose start is over; deleting a machine already adopted is a no-op).
 */
export interface WarmMachinesTable {
  key: string;
  infrastructureId: string;
  machineId: string;
  state: WarmMachineState;
  claimedBy: string | null;
  createdAt: CreatedAt;
  updatedAt: UpdatedAt;
}
export type WarmMachineState = 'preparing' | 'ready' | 'claimed' | 'retiring';

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
  /** Its own idle timeout (null: the infrastructure's; 0: never) (migration 0013). */
  autoStopIdleSeconds: OptionalColumn<number | null>;
  /** Its own maximum lifetime (null: the infrastructure's; 0: never). */
  autoStopMaxLifetimeSeconds: OptionalColumn<number | null>;
  /** The auto-stop warning already given (its start run, kind and deadline), so a restart does not give it twice. */
  autoStopWarned: OptionalColumn<AutoStopWarned | null>;
  /** The OpenSSH public key line of its SSH host key, as its agent published it at start; null before (migration 0012). */
  sshHostKey: OptionalColumn<string | null>;
}

/** The auto-stop warning given for one deadline of one running period. */
export interface AutoStopWarned {
  startRunId: string;
  reason: 'idle' | 'max-lifetime';
  deadline: string;
}

/** A stop the auto-stop watcher asked for (migration 0013): the only way an auto-stop actor is believed. */
export interface AutoStopRequestsTable {
  id: string;
  gitspaceId: string;
  startRunId: string;
  reason: 'idle' | 'max-lifetime';
  createdAt: CreatedAt;
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

/** A one-time code of `gitspaces login --web` (migration 0014); only its SHA-256 is stored. */
export interface CliAuthorizationsTable {
  codeHash: string;
  userId: string;
  /** The PKCE S256 challenge the command line sent. */
  challenge: string;
  /** The command line's loopback address the code was sent to; the exchange must name the same. */
  redirectUri: string;
  /** What the command line called its machine (its host name), for the token's name. */
  clientName: string;
  createdAt: CreatedAt;
  expiresAt: Date;
  usedAt: ColumnType<Date | null, never, Date>;
  /** The API token the exchange issued (revoked if the code comes again). */
  tokenId: ColumnType<string | null, never, string>;
}

export interface Database {
  users: UsersTable;
  apiTokens: ApiTokensTable;
  sshKeys: SshKeysTable;
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
  cliAuthorizations: CliAuthorizationsTable;
  autoStopRequests: AutoStopRequestsTable;
  warmMachines: WarmMachinesTable;
}

export type UserRow = Selectable<UsersTable>;
export type ApiTokenRow = Selectable<ApiTokensTable>;
export type SshKeyRow = Selectable<SshKeysTable>;
export type SessionRow = Selectable<SessionsTable>;
export type InfrastructureRow = Selectable<InfrastructuresTable>;
export type MachineRow = Selectable<MachinesTable>;
export type WarmMachineRow = Selectable<WarmMachinesTable>;
export type GitspaceRow = Selectable<GitspacesTable>;
export type OperationRow = Selectable<OperationsTable>;
export type EventRow = Selectable<EventsTable>;
export type NewGitspace = Insertable<GitspacesTable>;
