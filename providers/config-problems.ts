/**
 * Turning zod issues into field-path problems (`config.zones[0]: ...`), shared by the cloud providers' infrastructure
 * config and machine spec validation.
 */
import type { z } from 'zod';
import type { FieldProblem } from '../common/errors';

export type { FieldProblem };

/** The outcome of validating a provider's infrastructure config: the parsed value, or every problem at once. */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; problems: FieldProblem[] };

/** Parses `input` with `schema`; problems carry paths under `prefix` (for example `config`). */
export function parseWithProblems<T>(schema: z.ZodType<T>, input: unknown, prefix: string): ParseResult<T> {
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  return {
    ok: false,
    problems: result.error.issues.map((issue) => ({ path: fieldPath(prefix, issue.path), message: issue.message })),
  };
}

/** `config` + `['zones', 0]` → `config.zones[0]`. */
export function fieldPath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}
