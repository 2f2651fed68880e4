/** The REST API as the CLI calls it: bearer token, JSON, and the API's errors as ApiError with their field problems. */
import type { GitspaceState } from '../contracts/lifecycle';
import { ApiError, ApiUnreachableError, type FieldProblem } from './errors';
import type { Gitspace, Page, User } from './types';

/** The largest page GET /gitspaces gives (MAX_PAGE_SIZE of api/schemas.ts): fewer round trips for a long list. */
const PAGE_SIZE = 200;

export interface ApiClient {
  /** The API's base URL, without `/api/v1`. */
  readonly url: string;
  get<T>(route: string, signal?: AbortSignal): Promise<T>;
  post<T>(route: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
  delete<T>(route: string): Promise<T>;
  patch<T>(route: string, body: unknown): Promise<T>;
  /** A response that answered 2xx, its body unread (an event stream); ApiError otherwise. */
  open(route: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response>;
  /** Every gitspace the caller sees, in `states` when given, following `nextCursor` page after page. */
  listGitspaces(states?: readonly GitspaceState[]): Promise<Gitspace[]>;
  /** Who the token belongs to; undefined for an administrator's token the API does not say more of. */
  whoami(): Promise<User | undefined>;
}

/** `/gitspaces/<id>/events` with the id percent-encoded: a name typed by a user never changes the path. */
export const gitspacePath = (id: string, rest = '') => `/gitspaces/${encodeURIComponent(id)}${rest}`;

export function createApiClient(options: { url: string; token: string }): ApiClient {
  const { url, token } = options;

  const send = async (
    method: string,
    route: string,
    init: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ) =>
    requestApi(url, `/api/v1${route}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
        ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...init.headers,
      },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      ...(init.signal ? { signal: init.signal } : {}),
    });

  const json = async <T>(response: Response): Promise<T> => {
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  };

  const client: ApiClient = {
    url,
    get: async (route, signal) => json(await send('GET', route, signal ? { signal } : {})),
    post: async (route, body, headers) =>
      json(await send('POST', route, { ...(body !== undefined ? { body } : {}), ...(headers ? { headers } : {}) })),
    delete: async (route) => json(await send('DELETE', route)),
    patch: async (route, body) => json(await send('PATCH', route, { body })),
    open: (route, headers, signal) => send('GET', route, { headers, signal }),
    async listGitspaces(states) {
      const all: Gitspace[] = [];
      let cursor: string | undefined;
      do {
        const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
        if (states?.length) query.set('state', states.join(','));
        if (cursor) query.set('cursor', cursor);
        const page = await client.get<Page<Gitspace>>(`/gitspaces?${query}`);
        all.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor);
      // The API filters too; filtering here again keeps the answer right from an API that ignores `state`.
      return states?.length ? all.filter((gitspace) => states.includes(gitspace.state)) : all;
    },
    async whoami() {
      // A member's GET /users is themselves; an administrator's lists everyone, so ask GET /session (the dashboard's
      // contract) who is calling, where the API has it.
      const users = await client.get<Page<User>>('/users');
      if (users.items.length === 1) return users.items[0];
      const session = await client.get<{ user?: User }>('/session').catch(() => undefined);
      return session?.user;
    },
  };
  return client;
}

/**
 * One request to the API at `url` (its base, for messages) and `path`: ApiUnreachableError when it cannot be reached
 * (an abort is rethrown as it is), ApiError when it answers other than 2xx.
 */
export async function requestApi(url: string, path: string, init: RequestInit): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(`${url}${path}`, init);
  } catch (error) {
    if (init.signal?.aborted) throw error;
    throw new ApiUnreachableError(url, reasonOf(error));
  }
  if (!response.ok) throw await apiErrorOf(response);
  return response;
}

/** The API's error body (`{ error: { code, message, fields } }`), or what can be said of an answer without one. */
export async function apiErrorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  const retryAfter = Number(response.headers.get('retry-after') ?? Number.NaN);
  const retryAfterSeconds = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined;
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; fields?: unknown } };
    const error = body.error;
    if (error && typeof error.message === 'string') {
      const fields = Array.isArray(error.fields)
        ? (error.fields as unknown[]).filter(
            (field): field is FieldProblem =>
              typeof (field as FieldProblem)?.path === 'string' && typeof (field as FieldProblem)?.message === 'string',
          )
        : [];
      return new ApiError(
        response.status,
        typeof error.code === 'string' ? error.code : `http_${response.status}`,
        error.message,
        fields,
        retryAfterSeconds,
      );
    }
  } catch {
    // Not the API's JSON: a proxy's page, or no body.
  }
  return new ApiError(
    response.status,
    `http_${response.status}`,
    `the API answered ${response.status} ${response.statusText}${retryAfterSeconds !== undefined ? `; try again in ${retryAfterSeconds} s` : ''}`,
    [],
    retryAfterSeconds,
  );
}

/** Why fetch failed, in a few words (`connect ECONNREFUSED 127.0.0.1:3000`), not undici's "fetch failed". */
export function reasonOf(error: unknown): string {
  const cause = (error as { cause?: { message?: unknown; code?: unknown } } | undefined)?.cause;
  // An AggregateError (one attempt per address) has no message of its own, only a code.
  if (typeof cause?.message === 'string' && cause.message) return cause.message;
  if (typeof cause?.code === 'string') return cause.code;
  return error instanceof Error ? error.message : String(error);
}
