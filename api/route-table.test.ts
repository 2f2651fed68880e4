import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../common/logger';
import type { GitspaceRow, UserRow } from '../db/schema';
import type { Store } from '../db/store';
import type { AccessTokenIssuer } from './access-tokens';
import { createApp } from './app';
import type { EventFeed } from './event-feed';
import type { LifecycleService } from './lifecycle-requests';
import { createApiMetrics } from './metrics';
import { buildOpenApiDocument, openApiPath } from './openapi';
import { allowedMethods, type RouteDefinition } from './route-table';
import { API_ROUTES, SERVICE_ROUTES } from './routes';

/**
 * The route table (api/route-table.ts) is the only way a route comes to exist: what express serves, what the OpenAPI
 * document describes and what 405 answers allow are the same set, and every route gets the checks its definition
 * asks for. The app runs on stubs: a route whose handler ran here would fail on them, so each answer below comes from
 * the table.
 */

interface ListedRoute {
  path: string;
  methods?: string[];
  router?: Lister;
}
/** router 2.3's `listRoutes()`, which express's types do not name yet. */
interface Lister {
  listRoutes(): ListedRoute[];
}

interface OpenApiDocument {
  servers: { url: string }[];
  paths: Record<string, Record<string, { operationId: string; responses: Record<string, { links?: object }> }>>;
}

const user = (id: string, role: UserRow['role']) => ({ id, name: id, role }) as UserRow;
const USERS: Record<string, UserRow> = { 'admin-token': user('admin', 'admin'), 'member-token': user('ada', 'member') };
/** Every gitspace is owned by someone who is neither caller. */
const someoneElses = (id: string) => ({ id, name: 'theirs', ownerId: 'someone-else', state: 'stopped' }) as GitspaceRow;

function stubbedApp() {
  const store = {
    findUserByToken: (token: string) => Promise.resolve(USERS[token]),
    getGitspace: (id: string) => Promise.resolve(someoneElses(id)),
  } as unknown as Store;
  return createApp({
    store,
    accessTokens: { jwks: () => ({ keys: [] }) } as unknown as AccessTokenIssuer,
    lifecycle: {} as LifecycleService,
    logger: silentLogger,
    onInfrastructureCreated: () => Promise.reject(new Error('not in this test')),
    ready: () => Promise.resolve(),
    eventFeed: {} as EventFeed,
    metrics: createApiMetrics(store, { defaultMetrics: false }),
    // The sweeps below send more unauthenticated requests than the default slow-down allows a minute.
    limits: { authFailuresPerMinute: 10_000 },
  });
}

/** `METHOD /path` of every route express serves in the app, mounted routers included, paths in OpenAPI form. */
function servedRoutes(router: Lister, prefix = ''): string[] {
  return router.listRoutes().flatMap((listed) => {
    const path = `${prefix}${listed.path}`;
    if (listed.router) return servedRoutes(listed.router, path);
    // Express answers HEAD on every GET route by itself.
    const methods = listed.methods!.filter((m) => m !== 'HEAD' || !listed.methods!.includes('GET'));
    return methods.map((method) => `${method} ${openApiPath(path)}`);
  });
}

const named = (route: RouteDefinition) => `${route.method.toUpperCase()} ${route.path}`;
const routeNames = (routes: readonly RouteDefinition[], prefix = '') =>
  routes.map((route) => `${route.method.toUpperCase()} ${prefix}${openApiPath(route.path)}`);

describe('the route table', () => {
  const document = buildOpenApiDocument(API_ROUTES) as OpenApiDocument;
  const base = document.servers[0]!.url;
  const documented = Object.entries(document.paths).flatMap(([path, operations]) =>
    Object.keys(operations).map((method) => `${method.toUpperCase()} ${base}${path}`),
  );

  it('serves exactly the documented routes under /api/v1, and nothing else but the service routes', () => {
    const served = servedRoutes((stubbedApp() as unknown as { router: Lister }).router);
    const underApi = served.filter((route) => route.split(' ')[1]!.startsWith(`${base}/`));
    expect([...underApi].sort()).toEqual([...documented].sort());
    expect(served.filter((route) => !underApi.includes(route)).sort()).toEqual(routeNames(SERVICE_ROUTES).sort());
    expect(new Set(served).size).toBe(served.length);
  });

  it('documents each route once, and allows on each path (405) exactly the methods documented there', () => {
    expect([...documented].sort()).toEqual(routeNames(API_ROUTES, base).sort());
    expect(new Set(documented).size).toBe(API_ROUTES.length);
    for (const [path, operations] of Object.entries(document.paths)) {
      const concrete = path.replace(/\{\w+\}/g, 'some-id');
      const methods = Object.keys(operations).map((m) => m.toUpperCase());
      expect({ path, allowed: allowedMethods(API_ROUTES, concrete) }).toEqual({ path, allowed: methods });
      expect(allowedMethods(API_ROUTES, `${concrete}/`)).toEqual(methods);
    }
    expect(allowedMethods(API_ROUTES, '/nothing')).toEqual([]);
  });

  it('links only to operations the document has', () => {
    const operations = Object.values(document.paths).flatMap((byMethod) => Object.values(byMethod));
    const ids = new Set(operations.map((operation) => operation.operationId));
    expect(ids.size).toBe(operations.length);
    const linked = operations.flatMap((operation) =>
      Object.values(operation.responses).flatMap((response) =>
        Object.values((response.links ?? {}) as Record<string, { operationId: string }>).map((l) => l.operationId),
      ),
    );
    expect(linked.length).toBeGreaterThan(0);
    for (const operationId of linked) expect(ids).toContain(operationId);
  });

  it('documents the session cookie beside bearer tokens, and its 403 `csrf` on every state-changing operation', () => {
    const full = document as OpenApiDocument & {
      security: object[];
      components: { securitySchemes: Record<string, object> };
    };
    expect(full.security).toEqual([{ bearer: [] }, { session: [] }]);
    expect(full.components.securitySchemes.session).toEqual(
      expect.objectContaining({ type: 'apiKey', in: 'cookie', name: 'gitspaces_session' }),
    );
    const changing = API_ROUTES.filter((route) => route.access !== 'public' && route.method !== 'get');
    expect(changing.length).toBeGreaterThan(0);
    for (const route of changing) {
      const forbidden = document.paths[openApiPath(route.path)]![route.method]!.responses['403'] as
        { description?: string } | undefined;
      expect({ route: named(route), csrf: forbidden?.description?.includes('`csrf`') }).toEqual({
        route: named(route),
        csrf: true,
      });
    }
  });

  describe('over HTTP', () => {
    let server: Server;
    let origin: string;
    beforeAll(async () => {
      server = await new Promise<Server>((resolve) => {
        const s = stubbedApp().listen(0, '127.0.0.1', () => resolve(s));
      });
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server?.closeAllConnections();
      await new Promise((resolve) => server?.close(resolve));
    });

    /** Calls the route with `:id` filled in; a body is sent with any method but GET. */
    const call = async (route: RouteDefinition, prefix: string, token?: string, anyBody?: unknown, id = 'gs-1') => {
      const body = route.method === 'get' ? undefined : anyBody;
      const response = await fetch(`${origin}${prefix}${route.path.replace(/:\w+/g, id)}`, {
        method: route.method.toUpperCase(),
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await response.text();
      // The /auth/* routes answer HTML pages and redirects, not JSON.
      const json = text && response.headers.get('content-type')?.startsWith('application/json');
      const error = json ? (JSON.parse(text) as { error?: { code: string; message: string } }).error : undefined;
      return { status: response.status, code: error?.code ?? '', message: error?.message ?? '' };
    };
    const everyRoute = [
      ...API_ROUTES.map((route) => ({ route, prefix: base })),
      ...SERVICE_ROUTES.map((route) => ({ route, prefix: '' })),
    ];

    it('answers 401 without a token on every route that is not public, and public routes without one', async () => {
      for (const { route, prefix } of everyRoute) {
        const { status } = await call(route, prefix);
        if (route.access === 'public') {
          // Public routes answer on their own terms (the /auth/* ones redirect, show a page or refuse a bad body),
          // but never ask for a token and never fail.
          expect({ route: named(route), status, asksForToken: status === 401, failed: status >= 500 }).toEqual({
            route: named(route),
            status: expect.any(Number) as number,
            asksForToken: false,
            failed: false,
          });
        } else expect({ route: named(route), status }).toEqual({ route: named(route), status: 401 });
      }
    });

    it("answers 403 to a member on every admin route, and 404 for another's gitspace, before reading the body", async () => {
      const admin = everyRoute.filter(({ route }) => route.access === 'admin');
      const gitspace = everyRoute.filter(({ route }) => route.gitspace);
      expect(admin.length).toBeGreaterThan(0);
      expect(gitspace.length).toBeGreaterThan(0);
      for (const { route, prefix } of admin) {
        const answer = await call(route, prefix, 'member-token', { unknown: 'field' });
        expect({ route: named(route), status: answer.status, code: answer.code }).toEqual({
          route: named(route),
          status: 403,
          code: 'forbidden',
        });
      }
      for (const { route, prefix } of gitspace) {
        const answer = await call(route, prefix, 'member-token', { unknown: 'field' });
        expect({ route: named(route), status: answer.status, code: answer.code }).toEqual({
          route: named(route),
          status: 404,
          code: 'not_found',
        });
      }
    });

    it('answers 404 naming the kind of thing for a path id PostgreSQL could not even compare, on every route', async () => {
      const withIds = API_ROUTES.filter((route) => route.path.includes(':'));
      expect(withIds.length).toBeGreaterThan(0);
      for (const route of withIds) {
        const kind = /\/(\w+)s\/:/.exec(route.path)![1];
        const answer = await call(route, base, 'admin-token', undefined, 'x%00y');
        expect({ route: named(route), ...answer }).toEqual({
          route: named(route),
          status: 404,
          code: 'not_found',
          message: `${kind} 'x?y' does not exist`,
        });
      }
    });

    it('answers 400 for a body its schema refuses on every route with a body, before its handler runs', async () => {
      const withBody = API_ROUTES.filter((route) => route.body);
      expect(withBody.length).toBeGreaterThan(0);
      for (const route of withBody) {
        const answer = await call(route, base, 'admin-token', { unknown: 'field' });
        expect({ route: named(route), status: answer.status, code: answer.code }).toEqual({
          route: named(route),
          status: 400,
          code: 'invalid_request',
        });
      }
    });
  });
});
