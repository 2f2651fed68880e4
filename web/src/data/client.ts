/**
 * The dashboard's one way to call the control plane: same-origin requests carrying the session cookie, the CSRF token
 * on every state-changing request, and every failure turned into an ApiError with the API's own code, message and
 * field problems (README: errors are `{ error: { code, message, fields? } }`).
 */

export interface FieldProblem {
  path: string;
  message: string;
}

/** A request the API (or the way to it) refused; `status` 0 when the API could not be reached at all. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: FieldProblem[] = [],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** Sent as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Read the answer as text (GET /metrics) instead of JSON. */
  text?: boolean;
}

type Fetch = typeof fetch;

/** What the client needs from its surroundings; tests give their own fetch. */
export interface ClientOptions {
  fetch: Fetch;
  /** Called when a request other than the session check answers 401: the session ended. */
  onUnauthenticated?: () => void;
}

const STATE_CHANGING = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);

export function createClient(options: ClientOptions) {
  let csrfToken: string | undefined;
  let onUnauthenticated = options.onUnauthenticated;

  async function request<T>(path: string, init: RequestOptions = {}): Promise<T> {
    const method = init.method ?? 'GET';
    const headers: Record<string, string> = { accept: init.text ? 'text/plain' : 'application/json', ...init.headers };
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    if (STATE_CHANGING.has(method) && csrfToken) headers['x-csrf-token'] = csrfToken;
    let response: Response;
    try {
      response = await options.fetch(path, {
        method,
        headers,
        credentials: 'same-origin',
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
      });
    } catch (error) {
      if (init.signal?.aborted) throw error;
      throw new ApiError(0, 'network', 'The Gitspaces API could not be reached. Check your connection and try again.');
    }
    if (!response.ok) {
      const failure = await errorOf(response);
      if (failure.status === 401 && path !== SESSION_PATH) onUnauthenticated?.();
      throw failure;
    }
    if (response.status === 204) return undefined as T;
    return (init.text ? await response.text() : await response.json()) as T;
  }

  return {
    request,
    /** The token GET /api/v1/session hands out; sent as X-CSRF-Token from then on. */
    setCsrfToken(token: string | undefined) {
      csrfToken = token;
    },
    /** The session's reaction to a 401 (back to sign-in), set once the session is known. */
    setUnauthenticatedHandler(handler: (() => void) | undefined) {
      onUnauthenticated = handler;
    },
  };
}

export type Client = ReturnType<typeof createClient>;

export const SESSION_PATH = '/api/v1/session';

/** The API's error body, or a sentence about the status when the answer is not one (a proxy's HTML page). */
export async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; fields?: unknown } };
    const error = body.error;
    if (error && typeof error.code === 'string' && typeof error.message === 'string') {
      const fields = Array.isArray(error.fields) ? error.fields.filter(isFieldProblem) : [];
      return new ApiError(response.status, error.code, error.message, fields);
    }
  } catch {
    // Not JSON: described by its status below.
  }
  const retryAfter = response.headers.get('retry-after');
  const message =
    response.status === 429 && retryAfter
      ? `Too many requests; try again in ${retryAfter} seconds.`
      : `The server answered ${response.status}${response.statusText ? ` ${response.statusText}` : ''}.`;
  return new ApiError(response.status, `http_${response.status}`, message);
}

function isFieldProblem(value: unknown): value is FieldProblem {
  const field = value as FieldProblem | null;
  return typeof field?.path === 'string' && typeof field.message === 'string';
}

/** The problems at `path` or below it (`config` gets `config.region`), for the input that edits `path`. */
export function fieldErrors(error: unknown, path: string): string[] {
  if (!(error instanceof ApiError)) return [];
  return error.fields
    .filter((field) => field.path === path || field.path.startsWith(`${path}.`) || field.path.startsWith(`${path}[`))
    .map((field) => (field.path === path ? field.message : `${field.path.slice(path.length + 1)}: ${field.message}`));
}

/** The one client of the page. */
export const client = createClient({ fetch: (input, init) => fetch(input, init) });
export const api = client.request;
