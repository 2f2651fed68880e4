import { z } from 'zod';
import {
  AccessGrant,
  ActionBody,
  CreatedUser,
  CreateGitspaceBody,
  CreateInfrastructureBody,
  CreateMachineBody,
  CreateUserBody,
  ErrorResponse,
  Event,
  Gitspace,
  GitspaceWithOperation,
  Infrastructure,
  InfrastructureWithRunners,
  Jwks,
  Machine,
  OperationResponse,
  UpdateInfrastructureBody,
  User,
  list,
} from './schemas';

interface Route {
  method: 'get' | 'post' | 'patch' | 'delete';
  path: string;
  summary: string;
  body?: z.ZodType;
  status: number;
  response?: z.ZodType;
  admin?: boolean;
  public?: boolean;
  /** Answers 403 to a member too: a quota. */
  quota?: boolean;
}

const id = '{id}';
/** Every route of the API, with the schemas it validates against: the document below is derived from this table. */
const ROUTES: Route[] = [
  { method: 'get', path: '/openapi.json', summary: 'This document', status: 200, public: true },
  {
    method: 'get',
    path: '/.well-known/jwks.json',
    summary: 'Public keys that verify gateway access tokens',
    status: 200,
    response: Jwks,
    public: true,
  },
  {
    method: 'post',
    path: '/users',
    summary: 'Create a user and its API token (shown once)',
    body: CreateUserBody,
    status: 201,
    response: CreatedUser,
    admin: true,
  },
  {
    method: 'get',
    path: '/users',
    summary: 'List users (an administrator sees all, others themselves)',
    status: 200,
    response: list(User),
  },
  {
    method: 'post',
    path: '/infrastructures',
    summary: 'Register an infrastructure',
    body: CreateInfrastructureBody,
    status: 201,
    response: Infrastructure,
    admin: true,
  },
  {
    method: 'get',
    path: '/infrastructures',
    summary: 'List infrastructures',
    status: 200,
    response: list(Infrastructure),
  },
  {
    method: 'get',
    path: `/infrastructures/${id}`,
    summary: 'Get an infrastructure, with the runners polling it and their versions',
    status: 200,
    response: InfrastructureWithRunners,
  },
  {
    method: 'patch',
    path: `/infrastructures/${id}`,
    summary: 'Change an infrastructure',
    body: UpdateInfrastructureBody,
    status: 200,
    response: Infrastructure,
    admin: true,
  },
  {
    method: 'delete',
    path: `/infrastructures/${id}`,
    summary: 'Remove an infrastructure no gitspace uses',
    status: 204,
    admin: true,
  },
  {
    method: 'post',
    path: `/infrastructures/${id}/machines`,
    summary: 'Add a machine to an infrastructure',
    body: CreateMachineBody,
    status: 201,
    response: Machine,
    admin: true,
  },
  {
    method: 'get',
    path: `/infrastructures/${id}/machines`,
    summary: "List an infrastructure's machines",
    status: 200,
    response: list(Machine),
  },
  {
    method: 'post',
    path: '/gitspaces',
    summary: 'Create a gitspace (and start it unless start is false)',
    body: CreateGitspaceBody,
    status: 201,
    response: GitspaceWithOperation,
    quota: true,
  },
  {
    method: 'get',
    path: '/gitspaces',
    summary: 'List your gitspaces (an administrator sees all)',
    status: 200,
    response: list(Gitspace),
  },
  { method: 'get', path: `/gitspaces/${id}`, summary: 'Get a gitspace', status: 200, response: Gitspace },
  {
    method: 'post',
    path: `/gitspaces/${id}/actions`,
    summary: 'Start, stop or retry a gitspace',
    body: ActionBody,
    status: 202,
    response: OperationResponse,
  },
  {
    method: 'delete',
    path: `/gitspaces/${id}`,
    summary: 'Delete a gitspace (its record and events stay)',
    status: 202,
    response: OperationResponse,
  },
  {
    method: 'post',
    path: `/gitspaces/${id}/access`,
    summary: 'A short-lived gateway URL and token for a running gitspace',
    status: 200,
    response: AccessGrant,
  },
  {
    method: 'get',
    path: `/gitspaces/${id}/events`,
    summary: "A gitspace's events (text/event-stream for a live stream)",
    status: 200,
    response: list(Event),
  },
];

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

/** The methods the API serves on a path, or none when no route has that path (for 405 answers). */
export function allowedMethods(path: string): string[] {
  return ROUTES.filter((route) => pathPattern(route.path).test(path)).map((route) => route.method.toUpperCase());
}

function pathPattern(template: string): RegExp {
  return new RegExp(`^${template.replace(/[.]/g, '\\.').replace('{id}', '[^/]+')}/?$`);
}

/** From a created gitspace to the operations on it, so API clients and fuzzers can follow the id. */
const GITSPACE_LINKS = {
  GetGitspace: { operationId: 'getGitspacesById', parameters: { id: '$response.body#/gitspace/id' } },
  ActOnGitspace: { operationId: 'postGitspacesByIdActions', parameters: { id: '$response.body#/gitspace/id' } },
  GitspaceEvents: { operationId: 'getGitspacesByIdEvents', parameters: { id: '$response.body#/gitspace/id' } },
  OpenGitspace: { operationId: 'postGitspacesByIdAccess', parameters: { id: '$response.body#/gitspace/id' } },
  DeleteGitspace: { operationId: 'deleteGitspacesById', parameters: { id: '$response.body#/gitspace/id' } },
};

let cached: object | undefined;

/** The OpenAPI 3.1 document of the API, generated from the same zod schemas that validate requests. */
export function buildOpenApiDocument(): object {
  cached ??= build();
  return cached;
}

function build(): object {
  const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => {
    const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<
      string,
      unknown
    >;
    return rest;
  };
  const errorContent = { 'application/json': { schema: jsonSchema(ErrorResponse, 'output') } };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of ROUTES) {
    const parameters = route.path.includes(id)
      ? [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }]
      : [];
    const responses: Record<string, unknown> = {
      [route.status]: route.response
        ? {
            description: 'OK',
            content: { 'application/json': { schema: jsonSchema(route.response, 'output') } },
            ...(route.method === 'post' && route.path === '/gitspaces' ? { links: GITSPACE_LINKS } : {}),
          }
        : { description: route.status === 204 ? 'Done' : 'OK' },
    };
    const errors = route.public
      ? []
      : [400, 401, 404, ...(route.admin || route.quota ? [403] : []), ...(route.method !== 'get' ? [409] : []), 429];
    for (const status of errors) {
      responses[status] = {
        description: ERROR_STATUSES[status],
        ...(status === 429 ? { headers: RETRY_AFTER_HEADER } : {}),
        content: errorContent,
      };
    }
    (paths[route.path] ??= {})[route.method] = {
      summary: route.summary,
      operationId: `${route.method}${route.path.replace(/\{id\}/g, 'ById').replace(/[^A-Za-z]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      ...(route.public ? { security: [] } : {}),
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
