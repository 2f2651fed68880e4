/** The one place that decides what a Compute Engine error means (DESIGN.md §5 taxonomy). */
import {
  CapacityUnavailableError,
  InvalidMachineSpecError,
  ProviderAuthError,
  ProviderError,
  ProviderUnavailableError,
  QuotaExceededError,
  RateLimitedError,
} from '../../contracts/provider-errors';

const PROVIDER = 'gcp';

/** The parts of a Compute API error answer (`{ error: { code, message, errors: [{ reason }] } }`) we decide on. */
interface ApiError {
  status?: number;
  reason?: string;
  message: string;
}

/** True when the call failed because the instance, disk or operation does not exist. */
export function isGcpNotFound(error: unknown): boolean {
  return readApiError(error).status === 404;
}

/** True when insert failed because a resource of that name exists (a retried insert that already went through). */
export function isGcpAlreadyExists(error: unknown): boolean {
  const { status, reason } = readApiError(error);
  return status === 409 || reason === 'alreadyExists';
}

/** The SDK's error behind one a Compute call rethrew in the taxonomy (its cause), for the checks above. */
export function sdkErrorOf(error: unknown): unknown {
  return (error as { cause?: unknown }).cause ?? error;
}

/**
 * Maps an error thrown by `@google-cloud/compute` onto the provider taxonomy. Unknown errors come back unchanged,
 * which the activity layer treats as retryable.
 */
export function mapGcpError(error: unknown): Error {
  if (error instanceof ProviderError) return error;
  const { status, reason, message } = readApiError(error);
  const options = { cause: error };
  if (reason === 'quotaExceeded' || /quota .*exceeded/i.test(message)) {
    return new QuotaExceededError(
      `GCP quota exceeded: ${message}. Request more quota for the project or use a smaller machine.`,
      PROVIDER,
      options,
    );
  }
  if (status === 429 || reason === 'rateLimitExceeded' || reason === 'userRateLimitExceeded') {
    return new RateLimitedError(`GCP throttled the request: ${message}`, PROVIDER, options);
  }
  if (reason === 'resourceNotReady') {
    return new ProviderUnavailableError(`the instance is busy with another operation: ${message}`, PROVIDER, options);
  }
  if (status === 401 || status === 403) {
    return new ProviderAuthError(
      `the runner's GCP credentials were refused (${status}${reason ? ` ${reason}` : ''}): ${message}. ` +
        'Check Application Default Credentials and the roles of the runner.',
      PROVIDER,
      options,
    );
  }
  if (status === 400 || status === 404) {
    return new InvalidMachineSpecError(`GCP refused the machine: ${message}`, PROVIDER, options);
  }
  if (status !== undefined && status >= 500) {
    return new ProviderUnavailableError(`GCP answered ${status}: ${message}`, PROVIDER, options);
  }
  if (status === undefined && isNetworkError(error)) {
    return new ProviderUnavailableError(`GCP could not be reached: ${message}`, PROVIDER, options);
  }
  return error instanceof Error ? error : new Error(message);
}

/** Maps the error of a zone operation that finished badly (operation errors carry codes, not HTTP statuses). */
export function mapGcpOperationError(errors: readonly { code?: string | null; message?: string | null }[]): Error {
  const first = errors[0];
  const code = first?.code ?? 'UNKNOWN';
  const message = `${code}: ${first?.message ?? 'the operation failed'}`;
  if (/^ZONE_RESOURCE_POOL_EXHAUSTED/.test(code) || code === 'RESOURCE_POOL_EXHAUSTED') {
    return new CapacityUnavailableError(`GCP has no capacity in the zone right now (${message})`, PROVIDER);
  }
  if (/QUOTA_EXCEEDED/.test(code)) {
    return new QuotaExceededError(
      `GCP quota exceeded (${message}). Request more quota for the project or use a smaller machine.`,
      PROVIDER,
    );
  }
  if (code === 'PERMISSIONS_ERROR' || code === 'FORBIDDEN') {
    return new ProviderAuthError(`the runner's GCP credentials lack a permission (${message})`, PROVIDER);
  }
  if (/^(INVALID_|RESOURCE_NOT_FOUND|UNSUPPORTED_)/.test(code)) {
    return new InvalidMachineSpecError(`GCP refused the machine (${message})`, PROVIDER);
  }
  return new ProviderUnavailableError(`a GCP operation failed (${message})`, PROVIDER);
}

function readApiError(error: unknown): ApiError {
  const record = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    status?: unknown;
    message?: unknown;
  };
  const rawMessage = typeof record.message === 'string' ? record.message : String(error);
  const status =
    typeof record.status === 'number' ? record.status : typeof record.code === 'number' ? record.code : undefined;
  // The REST transport puts the answer's JSON body into the error message.
  try {
    const body = JSON.parse(rawMessage) as {
      error?: { code?: number; message?: string; errors?: { reason?: string }[] };
    };
    return {
      status: status ?? body.error?.code,
      reason: body.error?.errors?.[0]?.reason,
      message: body.error?.message ?? rawMessage,
    };
  } catch {
    return { status, message: rawMessage };
  }
}

function isNetworkError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EAI_AGAIN|ENOTFOUND)$/.test(code);
}
