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
  readonly code = 'conflict';
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

export type DomainError = InputError | AuthenticationError | NotAllowedError | NotFoundError | ConflictError;

export function isDomainError(error: unknown): error is DomainError {
  return (
    error instanceof InputError ||
    error instanceof AuthenticationError ||
    error instanceof NotAllowedError ||
    error instanceof NotFoundError ||
    error instanceof ConflictError
  );
}
