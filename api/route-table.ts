/**
 * The route table: each route of the API is one definition (api/routes/*.ts) that says what it answers, who may call
 * it and what its body must be. The same definitions register the handlers on express, answer 405 for the methods a
 * path does not serve, and make the OpenAPI document (api/openapi.ts), so a route cannot exist undocumented nor be
 * documented without existing.
 */
import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
import type { z } from 'zod';
import { InputError, NotAllowedError, NotFoundError } from '../common/errors';
import type { Logger } from '../common/logger';
import type { GitspaceRow } from '../db/schema';
import type { Store } from '../db/store';
import type { AccessTokenIssuer } from './access-tokens';
import type { SignIn } from './auth/sign-in';
import type { EventFeed } from './event-feed';
import { checkPathId, handle, parseBody } from './http';
import type { LifecycleService } from './lifecycle-requests';
import type { ApiLimits } from './limits';
import type { ApiMetrics } from './metrics';
import type { RunnerInfo } from './runners';
import { userOf, visibleGitspace } from './routes/caller';

/** What route handlers work with: the app's options (api/app.ts) with their defaults filled in. */
export interface RouteServices {
  store: Store;
  accessTokens: AccessTokenIssuer;
  lifecycle: LifecycleService;
  logger: Logger;
  /** Sets up what a new infrastructure needs beyond its record (its reconciliation schedule). */
  onInfrastructureCreated(infrastructureId: string): Promise<void>;
  /** Removes what a removed infrastructure had beyond its record (its reconciliation schedule). */
  onInfrastructureDeleted?(infrastructureId: string): Promise<void>;
  /** Brings an infrastructure's warm pools to their new sizes now (api/warm-pools.ts); without it, pools are refused. */
  onWarmPoolChanged?(infrastructureId: string): Promise<void>;
  /** Checks that the database and Temporal answer, for /readyz. */
  ready: () => Promise<void>;
  /** The change feed the event streams share (its owner closes it). */
  eventFeed: EventFeed;
  /** The runners polling an infrastructure's task queue (api/runners.ts); without it none are listed. */
  runners?: (infrastructureId: string) => Promise<RunnerInfo[]>;
  limits: ApiLimits;
  /** The registry behind GET /metrics (api/metrics.ts). */
  metrics: ApiMetrics;
  /** The OpenAPI document of the routes under /api/v1. */
  openApiDocument(): object;
  /** Event streams open per user id, counted against `limits.maxEventStreamsPerUser` (api/routes/events.ts). */
  openEventStreams: Map<string, number>;
  /** Sign-in and sessions (api/auth/sign-in.ts), made by createApp from its `signIn` settings. */
  signIn: SignIn;
  /** The shortest auto-stop accepted, and the watcher's nudge after a change (api/auto-stop.ts); minimum 60 s without. */
  autoStop?: { minSeconds: number; recheck(gitspaceId: string): Promise<void> };
  /** Accept infrastructures of the `simulated` provider (GITSPACES_ENABLE_SIMULATED_PROVIDER=1): benchmarks only. */
  simulatedProvider?: boolean;
}

/** One request to a route, as its handler sees it. */
export interface RouteCall<
  Body extends z.ZodType | undefined,
  LoadsGitspace extends boolean,
  Query extends z.ZodType | undefined = undefined,
> {
  req: Request;
  res: Response;
  services: RouteServices;
  /** The request body, parsed with the route's `body` schema. */
  body: Body extends z.ZodType ? z.output<Body> : undefined;
  /** The query parameters, parsed with the route's `query` schema. */
  query: Query extends z.ZodType ? z.output<Query> : undefined;
  /** The gitspace `:id` names, for a route with `gitspace: true`. */
  gitspace: LoadsGitspace extends true ? GitspaceRow : undefined;
}

/** An OpenAPI link from a route's answer to another operation (by its operationId), so clients can follow ids. */
export interface OpenApiLink {
  operationId: string;
  parameters: Record<string, string>;
}

export interface RouteDefinition<
  Body extends z.ZodType | undefined = z.ZodType | undefined,
  LoadsGitspace extends boolean = boolean,
  Query extends z.ZodType | undefined = z.ZodType | undefined,
> {
  method: 'get' | 'post' | 'patch' | 'delete';
  /**
   * The express path, under /api/v1 for an API route; also its metrics label. Each parameter follows the collection
   * it names an item of (`/gitspaces/:id`, `/infrastructures/:id/machines/:machineId`).
   */
  path: string;
  summary: string;
  /** Who may call it, checked before anything else: anyone, a user with a token, or an administrator. */
  access: 'public' | 'user' | 'admin';
  /** The route can answer 403 to a member too: a quota (for the document). */
  quota?: boolean;
  /**
   * `:id` names a gitspace the caller must be able to see: it is looked up before the body is read, and another
   * owner's is answered 404 like an absent one, so ids cannot be probed.
   */
  gitspace?: LoadsGitspace;
  /** The request body's schema: a body it does not accept is a 400 before the handler runs. */
  body?: Body;
  /** The body may be left out, and is then read as `{}` (so the schema's defaults apply). */
  bodyOptional?: true;
  /**
   * The query parameters' schema (an object of strings in, documented as the operation's query parameters): a query it
   * does not accept is a 400 naming each `query.<name>` before the handler runs.
   */
  query?: Query;
  /** The status of a successful answer. */
  status: number;
  /** The schema of a successful answer's JSON body (for the document). */
  response?: z.ZodType;
  links?: Record<string, OpenApiLink>;
  /**
   * Does the work and returns the JSON body, which is sent with `status` (nothing returned: no body). A handler that
   * answers by itself (an event stream, text, another status) returns nothing, and nothing more is sent.
   */
  handle(call: RouteCall<Body, LoadsGitspace, Query>): Promise<unknown>;
}

/** A route definition, typed so its handler sees its own body, query and gitspace. */
export function defineRoute<
  Body extends z.ZodType | undefined = undefined,
  LoadsGitspace extends boolean = false,
  Query extends z.ZodType | undefined = undefined,
>(route: RouteDefinition<Body, LoadsGitspace, Query>): RouteDefinition {
  return route as unknown as RouteDefinition;
}

type RouteRegistrar = Pick<Router, RouteDefinition['method']>;

/**
 * Adds a route to a router: its checks from the definition, then its handler, then its answer. A path a route with
 * fewer parameters owns among `routes` (`/gitspaces/changes` for `/gitspaces/:id`) is passed on, to 405 if need be.
 */
function addRoute(
  router: RouteRegistrar,
  route: RouteDefinition,
  routes: readonly RouteDefinition[],
  services: RouteServices,
  ...before: RequestHandler[]
) {
  const ids = pathIds(route.path);
  const owned = routes.filter(
    (other) => parameterCount(other.path) < parameterCount(route.path) && pathPattern(route.path).test(other.path),
  );
  const notOwnedElsewhere: RequestHandler = (req, _res, next) =>
    owned.some((other) => pathPattern(other.path).test(req.path)) ? next('route') : next();
  const answer = handle(async (req, res) => {
    for (const { name, kind } of ids) checkPathId(kind, String(req.params[name]));
    if (route.access === 'admin' && userOf(req).role !== 'admin') {
      throw new NotAllowedError('only an administrator may do this');
    }
    const gitspace = route.gitspace ? await visibleGitspace(req, services.store) : undefined;
    const query = route.query ? parseQuery(route.query, req.query) : undefined;
    const body = route.body
      ? parseBody(route.body, req.body === undefined && route.bodyOptional ? {} : req.body)
      : undefined;
    const result = await route.handle({ req, res, services, body, query, gitspace });
    if (res.headersSent) return;
    res.status(route.status);
    if (result === undefined) res.end();
    else res.json(result);
  });
  router[route.method](route.path, ...(owned.length > 0 ? [notOwnedElsewhere] : []), ...before, answer);
}

/** Parses a query with its schema: the problems a body's would have, each field path under `query.`. */
function parseQuery(schema: z.ZodType, query: unknown): unknown {
  try {
    return parseBody(schema, query);
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    const fields = error.fields.map((field) => ({ path: `query.${field.path}`, message: field.message }));
    throw new InputError(`the query is invalid: ${fields.map((f) => `${f.path} ${f.message}`).join('; ')}`, fields);
  }
}

/** `/infrastructures/:id/machines/:machineId` → id names an infrastructure, machineId a machine. */
function pathIds(path: string): { name: string; kind: string }[] {
  return [...path.matchAll(/([^/]+)\/:(\w+)/g)].map(([, collection, name]) => ({
    name: name!,
    kind: collection!.replace(/s$/, ''),
  }));
}

/**
 * Adds the routes that live outside /api/v1 (probes, metrics) to the app. Each that needs a user authenticates on
 * its own, so a path no route serves stays a plain 404 there.
 */
export function addServiceRoutes(
  app: RouteRegistrar,
  routes: readonly RouteDefinition[],
  services: RouteServices,
  authenticate: RequestHandler,
): void {
  for (const route of routes) {
    addRoute(app, route, routes, services, ...(route.access === 'public' ? [] : [authenticate]));
  }
}

/**
 * The router of /api/v1: the public routes, then `guards` (authentication, body parsing) for everything after them,
 * the other routes, and last 405 for a method a path does not serve or 404 for a path no route has.
 */
export function createApiRouter(
  routes: readonly RouteDefinition[],
  services: RouteServices,
  guards: RequestHandler[],
): Router {
  const router = express.Router();
  for (const route of routes.filter((r) => r.access === 'public')) addRoute(router, route, routes, services);
  router.use(...guards);
  for (const route of routes.filter((r) => r.access !== 'public')) addRoute(router, route, routes, services);
  router.use((req, res) => {
    const allowed = allowedMethods(routes, req.path);
    if (allowed.length === 0) throw new NotFoundError('route', `${req.method} ${req.baseUrl}${req.path}`);
    res
      .status(405)
      .set('allow', allowed.join(', '))
      .json({
        error: { code: 'method_not_allowed', message: `${req.path} answers ${allowed.join(', ')}, not ${req.method}` },
      });
  });
  return router;
}

/**
 * The methods the routes serve on a path, or none when no route has that path (for 405 answers). Of the templates that
 * match, those with the fewest parameters own the path, as OpenAPI matches a concrete path before a templated one.
 */
export function allowedMethods(routes: readonly RouteDefinition[], path: string): string[] {
  const matching = routes.filter((route) => pathPattern(route.path).test(path));
  const fewest = Math.min(...matching.map((route) => parameterCount(route.path)));
  return matching.filter((route) => parameterCount(route.path) === fewest).map((route) => route.method.toUpperCase());
}

const parameterCount = (template: string) => template.split(':').length - 1;

function pathPattern(template: string): RegExp {
  return new RegExp(`^${template.replace(/[.]/g, '\\.').replace(/:\w+/g, '[^/]+')}/?$`);
}
