import express, { type Request } from 'express';
import { TrustedProxies } from '../common/client-address';
import { hashToken } from '../db/store';
import { errorMiddleware, rejectNulCharacters } from './http';
import { createAuthenticator, DEFAULT_API_LIMITS, type ApiLimits } from './limits';
import { UNMATCHED_ROUTE, createApiMetrics, type ApiMetrics } from './metrics';
import { buildOpenApiDocument } from './openapi';
import { addServiceRoutes, createApiRouter, type RouteServices } from './route-table';
import { authenticate } from './routes/caller';
import { API_ROUTES, SERVICE_ROUTES } from './routes';

export interface AppOptions extends Omit<RouteServices, 'limits' | 'metrics' | 'openApiDocument' | 'openEventStreams'> {
  /** Rate limits, quota and stream cap; the defaults where absent. */
  limits?: Partial<ApiLimits>;
  /** The clock the rate limits run on (tests move it). */
  now?: () => number;
  /**
   * Reverse proxies in front of the API whose `X-Forwarded-For` names the client the limits count by; without them
   * every client behind a proxy would share its address and one guesser would lock everyone out.
   */
  trustedProxies?: TrustedProxies;
  /** The registry behind GET /metrics (api/metrics.ts), shared with the control-plane worker; one of its own if absent. */
  metrics?: ApiMetrics;
}

/** The control plane's REST API, version 1 (DESIGN.md §3): its routes are in api/routes/, one definition each. */
export function createApp(options: AppOptions): express.Express {
  const { now, trustedProxies, ...given } = options;
  const services: RouteServices = {
    ...given,
    limits: { ...DEFAULT_API_LIMITS, ...options.limits },
    metrics: options.metrics ?? createApiMetrics(options.store),
    openApiDocument: () => buildOpenApiDocument(API_ROUTES),
    openEventStreams: new Map(),
  };
  const bearer = authenticate(
    createAuthenticator({
      limits: services.limits,
      findUserByToken: (token) => options.store.findUserByToken(token),
      hashToken,
      ...(now ? { now } : {}),
    }),
    trustedProxies ?? new TrustedProxies(),
  );

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Every request's duration, labelled with the template of the route that answered (never the path: a thousand ids
  // must not make a thousand series) or UNMATCHED_ROUTE.
  app.use((req, res, next) => {
    const end = services.metrics.httpRequestDuration.startTimer();
    res.once('finish', () =>
      end({ method: methodLabel(req.method), route: routeTemplate(req), status: res.statusCode }),
    );
    next();
  });
  addServiceRoutes(app, SERVICE_ROUTES, services, bearer);
  app.use(
    '/api/v1',
    createApiRouter(API_ROUTES, services, [bearer, express.json({ limit: '64kb', strict: true }), rejectNulCharacters]),
  );
  app.use((req, res) => {
    res.status(404).json({
      error: { code: 'not_found', message: `no route ${req.method} ${req.path}; the API lives under /api/v1` },
    });
  });
  app.use(errorMiddleware(options.logger));
  return app;
}

/** Methods Express answers: any other (or a made-up one) is one label, so methods do not make series either. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const methodLabel = (method: string) => (KNOWN_METHODS.has(method) ? method : 'OTHER');

/** The template of the route that matched (`/api/v1/gitspaces/:id`), whatever router it is in. */
function routeTemplate(req: Request): string {
  const template = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof template !== 'string') return UNMATCHED_ROUTE;
  // Only the API router is mounted (at /api/v1); an error answered outside it has its base URL reset already.
  return req.originalUrl.startsWith('/api/v1/') ? `/api/v1${template}` : template;
}
