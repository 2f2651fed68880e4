import { z } from 'zod';
import type { RouteDefinition } from './route-table';
import { ErrorResponse } from './schemas';

const ERROR_STATUSES: Record<number, string> = {
  400: 'The request is invalid; `fields` names each problem',
  401: 'No valid API token',
  403: 'Not allowed for this user, or a quota reached (`quota_exceeded`, naming the limit)',
  404: 'No such resource',
  409: 'Conflicts with the current state or a running operation',
  429: 'Too many requests for this token, too many failed authentications from this address, or too many open event streams; try again after Retry-After seconds',
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
    const errors =
      route.access === 'public'
        ? []
        : [
            400,
            401,
            404,
            ...(route.access === 'admin' || route.quota ? [403] : []),
            ...(route.method !== 'get' ? [409] : []),
            429,
          ];
    for (const status of errors) {
      responses[status] = {
        description: ERROR_STATUSES[status],
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
              required: true,
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
    security: [{ bearer: [] }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths,
  };
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
