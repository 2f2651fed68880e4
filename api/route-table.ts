/**
 * The route table: each route of the API is one definition (api/routes/*.ts) that says what it answers, who may call
 * it and what its body must be. The same definitions register the handlers on express, answer 405 for the methods a
 * path does not serve, and make the OpenAPI document (api/openapi.ts), so a route cannot exist undocumented nor be
 * documented without existing.
 */
import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
import type { z } from 'zod';
import { NotAllowedError, NotFoundError } from '../common/errors';
import type { Logger } from '../common/logger';
import type { GitspaceRow } from '../db/schema';
import type { Store } from '../db/store';
import type { AccessTokenIssuer } from './access-tokens';
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
}

/** One request to a route, as its handler sees it. */
export interface RouteCall<Body extends z.ZodType | undefined, LoadsGitspace extends boolean> {
  req: Request;
  res: Response;
  services: RouteServices;
  /** The request body, parsed with the route's `body` schema. */
  body: Body extends z.ZodType ? z.output<Body> : undefined;
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
  /** The status of a successful answer. */
  status: number;
  /** The schema of a successful answer's JSON body (for the document). */
  response?: z.ZodType;
  links?: Record<string, OpenApiLink>;
  /**
   * Does the work and returns the JSON body, which is sent with `status` (nothing returned: no body). A handler that
   * answers by itself (an event stream, text, another status) returns nothing, and nothing more is sent.
   */
  handle(call: RouteCall<Body, LoadsGitspace>): Promise<unknown>;
}

/** A route definition, typed so its handler sees its own body and gitspace. */
export function defineRoute<Body extends z.ZodType | undefined = undefined, LoadsGitspace extends boolean = false>(
  route: RouteDefinition<Body, LoadsGitspace>,
): RouteDefinition {
  return route as RouteDefinition;
}

type RouteRegistrar = Pick<Router, RouteDefinition['method']>;

/** Adds a route to a router: its checks from the definition, then its handler, then its answer. */
function addRoute(
  router: RouteRegistrar,
  route: RouteDefinition,
  services: RouteServices,
  ...before: RequestHandler[]
) {
  const ids = pathIds(route.path);
  const answer = handle(async (req, res) => {
    for (const { name, kind } of ids) checkPathId(kind, String(req.params[name]));
    if (route.access === 'admin' && userOf(req).role !== 'admin') {
      throw new NotAllowedError('only an administrator may do this');
    }
    const gitspace = route.gitspace ? await visibleGitspace(req, services.store) : undefined;
    const body = route.body ? parseBody(route.body, req.body) : undefined;
    const result = await route.handle({ req, res, services, body, gitspace });
    if (res.headersSent) return;
    res.status(route.status);
    if (result === undefined) res.end();
    else res.json(result);
  });
  router[route.method](route.path, ...before, answer);
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
    addRoute(app, route, services, ...(route.access === 'public' ? [] : [authenticate]));
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
  for (const route of routes.filter((r) => r.access === 'public')) addRoute(router, route, services);
  router.use(...guards);
  for (const route of routes.filter((r) => r.access !== 'public')) addRoute(router, route, services);
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

/** The methods the routes serve on a path, or none when no route has that path (for 405 answers). */
export function allowedMethods(routes: readonly RouteDefinition[], path: string): string[] {
  return routes.filter((route) => pathPattern(route.path).test(path)).map((route) => route.method.toUpperCase());
}

function pathPattern(template: string): RegExp {
  return new RegExp(`^${template.replace(/[.]/g, '\\.').replace(/:\w+/g, '[^/]+')}/?$`);
}
