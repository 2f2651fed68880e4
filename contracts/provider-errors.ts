/**
 * The provider error taxonomy (DESIGN.md §5). Every provider maps its SDK's errors onto these classes; the class
 * name becomes the Temporal failure type, so workflows and retry policies can name it.
 */

/** Base class: `retryable` tells the activity layer whether Temporal may try again. */
export abstract class ProviderError extends Error {
  abstract readonly retryable: boolean;
  constructor(
    message: string,
    readonly provider: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Thrown when the cloud has no capacity for the machine type in that zone right now. */
export class CapacityUnavailableError extends ProviderError {
  readonly retryable = true;
}

/** Thrown when the cloud API throttled the call. */
export class RateLimitedError extends ProviderError {
  readonly retryable = true;
}

/** Thrown when the cloud API answered 5xx or could not be reached. */
export class ProviderUnavailableError extends ProviderError {
  readonly retryable = true;
}

/** Thrown when the machine type, image, disk size or zone is not valid for the provider. */
export class InvalidMachineSpecError extends ProviderError {
  readonly retryable = false;
}

/** Thrown when the account's quota forbids the machine. */
export class QuotaExceededError extends ProviderError {
  readonly retryable = false;
}

/** Thrown when the runner's credentials are missing, invalid or lack a permission. */
export class ProviderAuthError extends ProviderError {
  readonly retryable = false;
}

/** Thrown when an operation needs a machine that does not exist (deleting one that is gone is not an error). */
export class InstanceNotFoundError extends ProviderError {
  readonly retryable = false;
  constructor(
    readonly gitspaceId: string,
    provider: string,
  ) {
    super(`no machine exists for gitspace '${gitspaceId}' on provider '${provider}'`, provider);
  }
}

/** Failure types that Temporal must not retry: the activity retry policy lists them by name. */
export const NON_RETRYABLE_PROVIDER_ERRORS = [
  'InvalidMachineSpecError',
  'QuotaExceededError',
  'ProviderAuthError',
  'InstanceNotFoundError',
] as const;
