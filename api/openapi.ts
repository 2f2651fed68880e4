import { z } from 'zod';
import { SESSION_COOKIE } from './auth/sessions';
import type { RouteDefinition } from './route-table';
import { ErrorResponse } from './schemas';

/** What each error status means; 403's depends on the route (forbiddenDescription). */
const ERROR_STATUSES: Record<number, string> = {
  400: 'The request is invalid; `fields` names each problem',
  401: 'No valid API token or session',
  404: 'No such resource',
  409: 'Conflicts with the current state or a running operation',
  429: 'Too many requests for this token, too many failed authentications from this address, or too many open event streams; try again after Retry-After seconds',
};

/** Why a state-changing request is refused with a session cookie (api/auth/sessions.ts). */
const CSRF_REFUSAL =
  '`csrf` when sent with a session cookie but without its X-CSRF-Token header (GET /session gives it) or from another origin';

/** Bearer API tokens, or the dashboard's session cookie (POST /auth/token or the identity provider's sign-in). */
const SECURITY_SCHEMES = {
  bearer: { type: 'http', scheme: 'bearer' },
  session: {
    type: 'apiKey',
    in: 'cookie',
    name: SESSION_COOKIE,
    description:
      "The dashboard's session; a request that changes something also needs the session's X-CSRF-Token header and " +
      "the API's own origin, else 403 `csrf`",
  },
};

const RETRY_AFTER_HEADER = {
  'retry-after': { description: 'Seconds to wait before trying again', schema: { type: 'integer', minimum: 1 } },
};

const built = new WeakMap<readonly RouteDefinition[], object>();

/**
 * The OpenAPI 3.1 document of the routes under /api/v1 (api/routes/index.ts), from the same definitions that register
 * them and the same zod schemas that validate their bodies. Built once per route list.
 */
export function buildOpenApiDocument(routes: readonly RouteDefinition[]): object {
  let document = built.get(routes);
  if (!document) built.set(routes, (document = build(routes)));
  return document;
}

function build(routes: readonly RouteDefinition[]): object {
  const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => {
    const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<
      string,
      unknown
    >;
    return rest;
  };
  const errorContent = { 'application/json': { schema: jsonSchema(ErrorResponse, 'output') } };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = openApiPath(route.path);
    const parameters: object[] = [...route.path.matchAll(/:(\w+)/g)].map(([, name]) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    if (route.query) parameters.push(...queryParameters(jsonSchema(route.query, 'input')));
    const responses: Record<string, unknown> = {
      [route.status]: route.response
        ? {
            description: 'OK',
            content: { 'application/json': { schema: jsonSchema(route.response, 'output') } },
            ...(route.links ? { links: route.links } : {}),
          }
        : { description: route.status === 204 ? 'Done' : 'OK' },
    };
    const changesState = route.method !== 'get';
    const errors =
      route.access === 'public'
        ? []
        : [
            400,
            401,
            404,
            ...(route.access === 'admin' || route.quota || changesState ? [403] : []),
            ...(changesState ? [409] : []),
            429,
          ];
    for (const status of errors) {
      responses[status] = {
        description: status === 403 ? forbiddenDescription(route) : ERROR_STATUSES[status],
        ...(status === 429 ? { headers: RETRY_AFTER_HEADER } : {}),
        content: errorContent,
      };
    }
    (paths[path] ??= {})[route.method] = {
      summary: route.summary,
      operationId: operationId(route),
      ...(route.access === 'public' ? { security: [] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body
        ? {
            requestBody: {
              required: !route.bodyOptional,
              content: { 'application/json': { schema: jsonSchema(route.body, 'input') } },
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Gitspaces API',
      version: '1',
      description: 'Self-hosted cloud development environments, orchestrated by Temporal.',
    },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }, { session: [] }],
    components: { securitySchemes: SECURITY_SCHEMES },
    paths,
  };
}

/** What a route's 403 means: the admin check, a quota, and for a state-changing request the session's CSRF check. */
function forbiddenDescription(route: RouteDefinition): string {
  const reasons = [
    ...(route.access === 'admin' ? ['Not allowed for this user'] : []),
    ...(route.quota ? ['a quota reached (`quota_exceeded`, naming the limit)'] : []),
    ...(route.method !== 'get' ? [CSRF_REFUSAL] : []),
  ];
  const text = reasons.join('; or ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A query schema's properties as the operation's query parameters, each with its own description. */
function queryParameters(schema: { properties?: Record<string, { description?: string }>; required?: string[] }) {
  return Object.entries(schema.properties ?? {}).map(([name, { description, ...property }]) => ({
    name,
    in: 'query',
    required: schema.required?.includes(name) ?? false,
    ...(description ? { description } : {}),
    schema: property,
  }));
}

/** `/gitspaces/:id/events` → `/gitspaces/{id}/events`. */
export const openApiPath = (expressPath: string) => expressPath.replace(/:(\w+)/g, '{$1}');

/** `post /gitspaces/:id/actions` → `postGitspacesByIdActions`: what links and clients name an operation by. */
export function operationId(route: Pick<RouteDefinition, 'method' | 'path'>): string {
  const words = route.path
    .replace(/:(\w)(\w*)/g, (_m, first: string, rest: string) => `By${first.toUpperCase()}${rest}`)
    .replace(/[^A-Za-z]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase());
  return `${route.method}${words}`;
}
