/** Why the CLI stopped, as its exit code: scripts tell a failed lifecycle from a mistyped command or a refused token. */
export const EXIT_CODES = {
  ok: 0,
  /** The lifecycle operation failed (the gitspace went to `error`, or a start was cancelled). */
  lifecycleFailed: 1,
  /** The command line was wrong: an unknown option, a missing argument, an ambiguous name. */
  usage: 2,
  /** The API refused the request or could not be reached, or the credentials are missing or unsafe. */
  api: 3,
  /** Interrupted (Ctrl-C) while waiting; the operation goes on. */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

/** One problem with one field of a request, as the API reports it (`fields` of its error). */
export interface FieldProblem {
  path: string;
  message: string;
}

/** An error the CLI reports as `error: <message>` and ends with its exit code. */
export abstract class CliError extends Error {
  abstract readonly exitCode: ExitCode;
  /** A machine-readable code for `--json` output. */
  abstract readonly code: string;
  /** Lines printed under the message (field problems, the failed step's cause, what to do next). */
  details(): string[] {
    return [];
  }
  /** What `--json` prints for this error. */
  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message };
  }
}

/** Thrown when the command line cannot be run as given (a bad value, an ambiguous name). */
export class UsageError extends CliError {
  readonly exitCode = EXIT_CODES.usage;
  readonly code = 'usage';
}

/** Thrown when the API answers with an error: its code, message and field problems, as sent. */
export class ApiError extends CliError {
  readonly exitCode = EXIT_CODES.api;
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: FieldProblem[] = [],
    /** Seconds the API asked to wait before trying again (`Retry-After` of a 429 or 503). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
  /** Whether the same request may succeed later: the API was busy or briefly away (a restart behind a proxy). */
  get transient(): boolean {
    return this.status === 429 || this.status >= 500;
  }
  override details(): string[] {
    return this.fields.map((field) => `${field.path}: ${field.message}`);
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), status: this.status, ...(this.fields.length ? { fields: this.fields } : {}) };
  }
}

/** Thrown when the API cannot be reached at all (refused, reset, a name that does not resolve). */
export class ApiUnreachableError extends CliError {
  readonly exitCode = EXIT_CODES.api;
  readonly code = 'unreachable';
  constructor(
    readonly url: string,
    reason: string,
  ) {
    super(`cannot reach the Gitspaces API at ${url}: ${reason}`);
  }
}

/** Thrown when there are no credentials to use, or the credentials file is not private to its owner. */
export class CredentialsError extends CliError {
  readonly exitCode = EXIT_CODES.api;
  readonly code = 'credentials';
}

/** Thrown when a lifecycle operation the CLI waited for failed: the step and the message to act on. */
export class LifecycleFailedError extends CliError {
  readonly exitCode = EXIT_CODES.lifecycleFailed;
  readonly code = 'lifecycle_failed';
  constructor(
    message: string,
    readonly failure: { action: string; step?: string; stepWords?: string; cause?: string },
    readonly hint?: string,
  ) {
    super(message);
  }
  override details(): string[] {
    const { step, stepWords, cause } = this.failure;
    return [
      ...(step ? [`step: ${stepWords ?? step} (${step})`] : []),
      ...(cause ? [`cause: ${cause}`] : []),
      ...(this.hint ? [this.hint] : []),
    ];
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), ...this.failure };
  }
}

/**
 * Thrown to end with the exit code of a program the command ran for the user (`gitspaces ssh` ends as ssh did), which
 * has said what went wrong itself: nothing more is printed.
 */
export class ChildExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exited with ${exitCode}`);
  }
}

/** Thrown when the user interrupts a wait: the operation itself goes on in the control plane. */
export class InterruptedError extends CliError {
  readonly exitCode = EXIT_CODES.interrupted;
  readonly code = 'interrupted';
}
