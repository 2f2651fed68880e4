import express, { type Request } from 'express';
import { TrustedProxies } from '../common/client-address';
import { hashToken } from '../db/store';
import { createSignIn, TOKEN_ONLY_SIGN_IN, type SignInConfig } from './auth/sign-in';
import { errorMiddleware, rejectNulCharacters } from './http';
import { createAuthenticator, DEFAULT_API_LIMITS, type ApiLimits } from './limits';
import { UNMATCHED_ROUTE, createApiMetrics, type ApiMetrics } from './metrics';
import { buildOpenApiDocument } from './openapi';
import { addServiceRoutes, createApiRouter, type RouteServices } from './route-table';
import { authenticate } from './routes/caller';
import { API_ROUTES, SERVICE_ROUTES } from './routes';
import { defaultDashboardDir, serveDashboard } from './static-dashboard';

export interface AppOptions extends Omit<
  RouteServices,
  'limits' | 'metrics' | 'openApiDocument' | 'openEventStreams' | 'signIn'
> {
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
  /** How people sign in to the dashboard (api/auth/settings.ts); API tokens only, and no public URL, when absent. */
  signIn?: SignInConfig;
  /** The built dashboard (`npm run build:web`); dist/web of this package when absent. */
  dashboardDir?: string;
}

/** The control plane's REST API, version 1 (DESIGN.md §3): its routes are in api/routes/, one definition each. */
export function createApp(options: AppOptions): express.Express {
  const { now, signIn: signInConfig, dashboardDir, trustedProxies: proxies, ...given } = options;
  const trustedProxies = proxies ?? new TrustedProxies();
  const limits = { ...DEFAULT_API_LIMITS, ...options.limits };
  const authenticator = createAuthenticator({
    limits,
    findUserByToken: (token) => options.store.findUserByToken(token),
    hashToken,
    ...(now ? { now } : {}),
  });
  const signIn = createSignIn({
    config: signInConfig ?? TOKEN_ONLY_SIGN_IN,
    store: options.store,
    authenticator,
    clientAddress: (req) => trustedProxies.clientOf(req.socket.remoteAddress ?? '', req.get('x-forwarded-for')),
    logger: options.logger,
    ...(now ? { now } : {}),
  });
  const services: RouteServices = {
    ...given,
    limits,
    metrics: options.metrics ?? createApiMetrics(options.store),
    openApiDocument: () => buildOpenApiDocument(API_ROUTES),
    openEventStreams: new Map(),
    signIn,
  };
  // An API token, or the dashboard's session cookie (with its CSRF check).
  const caller = authenticate(authenticator, trustedProxies, signIn.sessions);

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
  // POST /auth/token's body; the consent form of `gitspaces login --web` (api/routes/cli-login.ts).
  app.use('/auth', express.json({ limit: '64kb', strict: true }));
  app.use('/auth/cli', express.urlencoded({ extended: false, limit: '8kb' }));
  addServiceRoutes(app, SERVICE_ROUTES, services, caller);
  app.use(
    '/api/v1',
    createApiRouter(API_ROUTES, services, [caller, express.json({ limit: '64kb', strict: true }), rejectNulCharacters]),
  );
  app.use(serveDashboard(dashboardDir ?? defaultDashboardDir()));
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
