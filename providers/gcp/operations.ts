/**
 * Zone operations. A call that starts one returns its handle, plain data that travels through the workflow's history
 * (never a runner's memory); the step that waits, on this runner or another, gives it back to `describe`, which
 * checks it here, so an operation that fails after Compute accepted it (an exhausted zone) surfaces as its error.
 */
import type { protos } from '@google-cloud/compute';
import { OperationFailedError, type ProviderOperation } from '../../contracts/provider';
import { callCompute, type ComputeScope } from './compute';
import { isGcpNotFound, mapGcpOperationError, sdkErrorOf } from './errors';

/** The handle of a zone operation a call started, to be returned with its result (plain data, for history). */
export function operationHandle(
  kind: ProviderOperation['kind'],
  zone: string,
  operation: unknown,
): ProviderOperation | undefined {
  const name = (operation as { name?: string | null } | undefined)?.name;
  return name ? { kind, zone, name } : undefined;
}

/**
 * Whether a zone operation an earlier call started (on any runner) is still running; one that finished with an error
 * throws it (OperationFailedError: final). One Compute no longer knows counts as finished.
 */
export async function operationStillRunning(
  scope: ComputeScope,
  gitspaceId: string,
  op: ProviderOperation,
  signal: AbortSignal,
): Promise<boolean> {
  const { config, clients, logger } = scope;
  if (!op.zone || !config.zones.includes(op.zone)) return false;
  let state: protos.google.cloud.compute.v1.IOperation;
  try {
    [state] = await callCompute(scope, `get operation ${op.name}`, signal, () =>
      clients.zoneOperations.get({ project: config.project, zone: op.zone, operation: op.name }),
    );
  } catch (error) {
    if (!isGcpNotFound(sdkErrorOf(error))) throw error;
    return false;
  }
  if (state.status !== 'DONE') return true;
  const errors = state.error?.errors ?? [];
  if (errors.length > 0) {
    logger.warn('a zone operation failed', { gitspaceId, operation: op.name, kind: op.kind, errors });
    throw new OperationFailedError(op, mapGcpOperationError(errors));
  }
  return false;
}
