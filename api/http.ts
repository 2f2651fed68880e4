import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import type { z } from 'zod';
import { InputError, NotFoundError, TooManyRequestsError, isDomainError, type FieldProblem } from '../common/errors';
import type { Logger } from '../common/logger';

/** Parses a request body with its schema; every problem is reported with its field path. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  if (body === undefined) throw new InputError('send a JSON body with Content-Type: application/json');
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const fields: FieldProblem[] = result.error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: [...issue.path, key].join('.'), message: 'is not a known field' }));
    }
    return [{ path: issue.path.join('.') || '(body)', message: issue.message }];
  });
  throw new InputError(
    `the request body is invalid: ${fields.map((f) => `${f.path} ${f.message}`).join('; ')}`,
    fields,
  );
}

/** Wraps an async handler so its rejection reaches the error middleware (express 5 does this, kept explicit). */
export const handle =
  (fn: (req: Request, res: Response) => Promise<void>): RequestHandler =>
  (req: Request, res: Response, next: NextFunction) => {
    fn(req, res).catch(next);
  };

/** PostgreSQL stores no NUL in text or jsonb: a body carrying one is the client's mistake, not a 500. */
export const rejectNulCharacters: RequestHandler = (req, _res, next) => {
  const path = nulPath(req.body);
  if (path === undefined) return next();
  next(
    new InputError(`${path} must not contain a NUL character`, [{ path, message: 'must not contain a NUL character' }]),
  );
};

/**
 * An id in a path is only ever looked up; one PostgreSQL could not even compare (a NUL), or longer than any id, names
 * nothing there: 404 for the `kind` of thing it would name, like any id that does not exist.
 */
export function checkPathId(kind: string, value: string): void {
  if (value.length <= 256 && !CONTROL_CHARACTER.test(value)) return;
  throw new NotFoundError(kind, value.slice(0, 256).replace(CONTROL_CHARACTERS, '?'));
}

/** Maps domain errors to their status, body-parser failures to 400, and logs only what is a 5xx. */
export function errorMiddleware(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    if (res.headersSent) {
      // The answer is under way (an event stream): the client sees it end; the operator must see why.
      logger.error('request failed after its answer began', { method: req.method, path: req.path, error });
      res.end();
      return;
    }
    if (isDomainError(error)) {
      const fields = error instanceof InputError && error.fields.length > 0 ? { fields: error.fields } : {};
      if (error instanceof TooManyRequestsError) res.set('retry-after', String(error.retryAfterSeconds));
      res.status(error.status).json({ error: { code: error.code, message: error.message, ...fields } });
      return;
    }
    const parserError = bodyParserProblem(error);
    if (parserError) {
      res.status(400).json({ error: { code: 'invalid_request', message: parserError } });
      return;
    }
    logger.error('request failed', { method: req.method, path: req.path, error });
    res
      .status(500)
      .json({ error: { code: 'internal', message: 'the server failed to handle this request; see its log' } });
  };
}

function bodyParserProblem(error: unknown): string | undefined {
  const type = (error as { type?: string } | null)?.type;
  if (type === 'entity.too.large') return 'the request body is too large (the limit is 64 KiB)';
  if (type === 'entity.parse.failed') return 'the request body is not valid JSON';
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') return 'the request body must be UTF-8 JSON';
  if (type === 'request.aborted') return 'the request was aborted';
  // What body-parser and the router reject without a type of their own: a compressed body that does not inflate
  // (a zlib error), a path that is not valid percent-encoding (a URIError). Both are the client's, never a 500.
  const status = (error as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (error instanceof URIError) return 'the request path is not valid percent-encoding';
    // zlib's codes: Z_DATA_ERROR and friends for gzip and deflate, ERR__ERROR_FORMAT_… for brotli.
    const code = String((error as { code?: unknown }).code ?? '');
    if (code.startsWith('Z_') || code.startsWith('ERR__')) return 'the request body does not decompress';
    return 'the request is invalid';
  }
  return undefined;
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what these find
const CONTROL_CHARACTER = /[\0-\x1f\x7f]/;
// eslint-disable-next-line no-control-regex -- control characters are exactly what these find
const CONTROL_CHARACTERS = /[\0-\x1f\x7f]/g;

/**
 * The path (`a.b.0`) of the first key or string in a parsed JSON body that holds a NUL. Walked without recursion and
 * without copying paths, so a deeply nested body costs time in proportion to its size.
 */
function nulPath(body: unknown): string | undefined {
  interface Node {
    value: unknown;
    key?: string;
    parent?: Node;
  }
  const pathOf = (node: Node): string => {
    const keys: string[] = [];
    for (let at: Node | undefined = node; at?.key !== undefined; at = at.parent) {
      keys.push(at.key.replace(CONTROL_CHARACTERS, '?'));
    }
    return keys.reverse().join('.') || '(body)';
  };
  const pending: Node[] = [{ value: body }];
  while (pending.length > 0) {
    const node = pending.pop()!;
    if (typeof node.value === 'string') {
      if (node.value.includes('\0')) return pathOf(node);
    } else if (node.value !== null && typeof node.value === 'object') {
      for (const [key, value] of Object.entries(node.value)) {
        const child = { value, key, parent: node };
        if (key.includes('\0')) return pathOf(child);
        pending.push(child);
      }
    }
  }
  return undefined;
}
