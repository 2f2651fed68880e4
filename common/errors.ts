/**
 * Domain errors of the control plane. The API's error middleware maps each class to one HTTP status; everything
 * else is a 500 and is logged.
 */

export interface FieldProblem {
  path: string;
  message: string;
}

/** Thrown when a request is malformed or names something that cannot be used (HTTP 400). */
export class InputError extends Error {
  readonly status = 400;
  readonly code = 'invalid_request';
  constructor(
    message: string,
    readonly fields: FieldProblem[] = [],
  ) {
    super(message);
    this.name = 'InputError';
  }
}

/** Thrown when no credentials, or unknown ones, came with the request (HTTP 401). */
export class AuthenticationError extends Error {
  readonly status = 401;
  readonly code = 'unauthenticated';
  constructor(message: string) {
    super(message);
    this.name = 'AuthenticationError';
  }
}

/** Thrown when the caller is known but may not do this (HTTP 403). */
export class NotAllowedError extends Error {
  readonly status = 403;
  readonly code = 'forbidden';
  constructor(message: string) {
    super(message);
    this.name = 'NotAllowedError';
  }
}

/** Thrown when the named resource does not exist, or is not the caller's to see (HTTP 404). */
export class NotFoundError extends Error {
  readonly status = 404;
  readonly code = 'not_found';
  constructor(
    readonly kind: string,
    readonly id: string,
  ) {
    super(`${kind} '${id}' does not exist`);
    this.name = 'NotFoundError';
  }
}

/** Thrown when the request conflicts with the current state: an operation under way, an invalid transition (409). */
export class ConflictError extends Error {
  readonly status = 409;
  /** `conflict`, or a more precise code a client tells apart (`no_ssh_keys`). */
  constructor(
    message: string,
    readonly code = 'conflict',
  ) {
    super(message);
    this.name = 'ConflictError';
  }
}

/** Thrown when a per-user quota is reached (HTTP 403); the message names the limit and what the user has. */
export class QuotaReachedError extends Error {
  readonly status = 403;
  readonly code = 'quota_exceeded';
  constructor(message: string) {
    super(message);
    this.name = 'QuotaReachedError';
  }
}

/** Thrown when a caller asks too often or holds too much at once (HTTP 429, with Retry-After in seconds). */
export class TooManyRequestsError extends Error {
  readonly status = 429;
  readonly code = 'rate_limited';
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
    this.name = 'TooManyRequestsError';
  }
}

export type DomainError =
  | InputError
  | AuthenticationError
  | NotAllowedError
  | NotFoundError
  | ConflictError
  | QuotaReachedError
  | TooManyRequestsError;

export function isDomainError(error: unknown): error is DomainError {
  return (
    error instanceof InputError ||
    error instanceof AuthenticationError ||
    error instanceof NotAllowedError ||
    error instanceof NotFoundError ||
    error instanceof ConflictError ||
    error instanceof QuotaReachedError ||
    error instanceof TooManyRequestsError
  );
}
