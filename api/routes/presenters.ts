/** How rows are shown to API clients (the `User`, `Infrastructure`, … schemas of api/schemas.ts). */
import { infrastructureTaskQueue } from '../../contracts/lifecycle';
import type { WarmPoolCount } from '../../db/stores/warm-pool';
import type { SshKeyType } from '../../common/ssh-public-key';
import type {
  EventRow,
  GitspaceRow,
  InfrastructureRow,
  MachineRow,
  OperationRow,
  SshKeyRow,
  UserRow,
} from '../../db/schema';
import type { Store } from '../../db/store';
import { effectiveSeconds } from '../../db/stores/auto-stop';
import type { TokenSummary } from '../../db/stores/tokens';

const iso = (date: Date | string) => new Date(date).toISOString();

export function presentUser(row: UserRow) {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    ...(row.email ? { email: row.email } : {}),
    disabled: row.disabledAt !== null,
    ...(row.deletedAt ? { deleted: true } : {}),
    createdAt: iso(row.createdAt),
  };
}

/** One of a user's API tokens: never the token or its hash. */
export function presentToken(row: TokenSummary) {
  return {
    id: row.id,
    ...(row.name ? { name: row.name } : {}),
    createdAt: iso(row.createdAt),
    ...(row.lastUsedAt ? { lastUsedAt: iso(row.lastUsedAt) } : {}),
  };
}

/** One of a user's SSH public keys. */
export function presentSshKey(row: SshKeyRow) {
  return {
    id: row.id,
    name: row.name,
    // Stored as parsed (common/ssh-public-key.ts): its first word is its type.
    type: row.publicKey.split(' ')[0] as SshKeyType,
    fingerprint: row.fingerprint,
    publicKey: row.publicKey,
    createdAt: iso(row.createdAt),
  };
}

export function presentInfrastructure(row: InfrastructureRow, sealedTokens: Record<string, number> = {}) {
  return {
    id: row.id,
    name: row.name,
    provider: row.provider,
    config: row.config,
    gatewayUrl: row.gatewayUrl,
    runnerPublicKeys: row.runnerPublicKeys,
    sealedTokens,
    autoStop: { idleTimeoutSeconds: row.autoStopIdleSeconds, maxLifetimeSeconds: row.autoStopMaxLifetimeSeconds },
    taskQueue: infrastructureTaskQueue(row.id),
    createdAt: iso(row.createdAt),
    updatedAt: iso(row.updatedAt),
  };
}

export function presentMachine(row: MachineRow, warmPool: WarmPoolCount = { ready: 0, preparing: 0 }) {
  return {
    id: row.id,
    infrastructureId: row.infrastructureId,
    name: row.name,
    machineType: row.machineType,
    diskSizeGb: row.diskSizeGb,
    ...(row.region ? { region: row.region } : {}),
    ...(row.zone ? { zone: row.zone } : {}),
    ...(row.image ? { image: row.image } : {}),
    warmPoolSize: row.warmPoolSize,
    warmPool,
    createdAt: iso(row.createdAt),
  };
}

export function presentOperation(row: OperationRow) {
  return {
    id: row.id,
    action: row.action,
    workflowId: row.workflowId,
    runId: row.runId,
    status: row.status,
    ...(row.step ? { step: row.step } : {}),
    createdAt: iso(row.createdAt),
    ...(row.finishedAt ? { finishedAt: iso(row.finishedAt) } : {}),
  };
}

/**
 * Gitspaces with their latest operation each, read in one query unless `known` has them already (a page of
 * gitspaces reads them with its rows), and with their effective auto-stop from their infrastructures.
 */
export async function presentGitspaces(
  store: Pick<Store, 'latestOperations'> & Partial<Pick<Store, 'listInfrastructures'>>,
  rows: GitspaceRow[],
  known: { latestOperations?: Map<string, OperationRow>; infrastructures?: InfrastructureRow[] } = {},
) {
  const [operations, infrastructures] = await Promise.all([
    known.latestOperations ?? store.latestOperations(rows.map((r) => r.id)),
    known.infrastructures ?? (rows.length > 0 ? store.listInfrastructures?.() : undefined),
  ]);
  // Without the infrastructures (the change feed reads less), the effective auto-stop is left out.
  const byId = infrastructures && new Map(infrastructures.map((infrastructure) => [infrastructure.id, infrastructure]));
  return rows.map((row) =>
    presentGitspace(row, operations.get(row.id), byId && { infrastructure: byId.get(row.infrastructureId) }),
  );
}

function presentGitspace(
  row: GitspaceRow,
  operation?: OperationRow,
  policy?: { infrastructure: InfrastructureRow | undefined },
) {
  const infrastructure = policy?.infrastructure;
  return {
    id: row.id,
    name: row.name,
    state: row.state,
    ...(row.url ? { url: row.url } : {}),
    owner: row.ownerId,
    repository: {
      url: row.repositoryUrl,
      ...(row.repositoryBranch ? { branch: row.repositoryBranch } : {}),
      hasToken: row.repositoryTokenSealed !== null || row.repositoryTokenRef !== null,
      ...(row.repositoryTokenRef ? { tokenRef: row.repositoryTokenRef } : {}),
    },
    infrastructureId: row.infrastructureId,
    machineId: row.machineId,
    ide: row.ide,
    ...(row.lastError ? { lastError: row.lastError } : {}),
    ...(operation ? { operation: presentOperation(operation) } : {}),
    sshHostKey: row.sshHostKey,
    ...(policy
      ? {
          autoStop: {
            idleTimeout: effectiveSeconds(row.autoStopIdleSeconds, infrastructure?.autoStopIdleSeconds ?? null),
            maxLifetime: effectiveSeconds(
              row.autoStopMaxLifetimeSeconds,
              infrastructure?.autoStopMaxLifetimeSeconds ?? null,
            ),
          },
        }
      : {}),
    createdAt: iso(row.createdAt),
    updatedAt: iso(row.updatedAt),
  };
}

export function presentEvent(row: EventRow) {
  return {
    seq: row.seq,
    type: row.type,
    ...(row.state ? { state: row.state } : {}),
    message: row.message,
    data: row.data,
    actor: row.actor,
    createdAt: iso(row.createdAt),
  };
}
