import { createHash } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import { ACCESS_TOKEN_QUERY_PARAM } from '../contracts/access-token';
import { ConflictError, InputError, NotAllowedError, NotFoundError, TooManyRequestsError } from '../common/errors';
import { newId } from '../common/ids';
import type { Logger } from '../common/logger';
import { infrastructureTaskQueue, type Actor } from '../contracts/lifecycle';
import { RunnerPublicKey } from '../common/sealed-secret';
import type { EventRow, GitspaceRow, InfrastructureRow, MachineRow, OperationRow, UserRow } from '../db/schema';
import { hashToken, type Store } from '../db/store';
import type { EventFeed } from './event-feed';
import { errorMiddleware, handle, parseBody } from './http';
import { createAuthenticator, DEFAULT_API_LIMITS, type ApiLimits } from './limits';
import type { LifecycleService } from './lifecycle-requests';
import type { AccessTokenIssuer } from './access-tokens';
import { RUNNER_CONTRACT_VERSION_NEEDED, type RunnerInfo } from './runners';
import { TrustedProxies } from '../common/client-address';
import { METRICS_CONTENT_TYPE, UNMATCHED_ROUTE, createApiMetrics, type ApiMetrics } from './metrics';
import { allowedMethods, buildOpenApiDocument } from './openapi';
import { validateInfrastructureConfig, validateMachineSpec } from '../providers/validation';
import {
  ActionBody,
  CreateGitspaceBody,
  CreateInfrastructureBody,
  CreateMachineBody,
  CreateUserBody,
  UpdateInfrastructureBody,
} from './schemas';

export interface AppOptions {
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
  /** Rate limits, quota and stream cap; the defaults where absent. */
  limits?: Partial<ApiLimits>;
  /** The clock the rate limits run on (tests move it). */
  now?: () => number;
  /** The runners polling an infrastructure's task queue (api/runners.ts); without it none are listed. */
  runners?: (infrastructureId: string) => Promise<RunnerInfo[]>;
  /**
   * Reverse proxies in front of the API whose `X-Forwarded-For` names the client the limits count by; without them
   * every client behind a proxy would share its address and one guesser would lock everyone out.
   */
  trustedProxies?: TrustedProxies;
  /** The registry behind GET /metrics (api/metrics.ts), shared with the control-plane worker; one of its own if absent. */
  metrics?: ApiMetrics;
}

/** When a client refused for holding too many event streams may try again, in seconds. */
const STREAM_RETRY_AFTER_SECONDS = 5;
/**
 * An event stream with more than this waiting to be sent, and none of it taken for STREAM_STALL_MS, has a client that
 * does not read: it is closed (it can resume with Last-Event-ID). A client that reads a long backlog is not.
 */
const STREAM_MAX_BUFFERED_BYTES = 1 << 20;
const STREAM_STALL_MS = 2_000;

type Authed = Request & { user?: UserRow };

/** The control plane's REST API, version 1 (DESIGN.md §3). */
export function createApp(options: AppOptions): express.Express {
  const { store, lifecycle, logger } = options;
  const limits: ApiLimits = { ...DEFAULT_API_LIMITS, ...options.limits };
  const authenticator = createAuthenticator({
    limits,
    findUserByToken: (token) => store.findUserByToken(token),
    hashToken,
    ...(options.now ? { now: options.now } : {}),
  });
  const trusted = options.trustedProxies ?? new TrustedProxies();
  const authenticate = (req: Request, _res: Response, next: (error?: unknown) => void) => {
    const client = trusted.clientOf(req.socket.remoteAddress ?? '', req.get('x-forwarded-for'));
    authenticator.authenticate(req.headers.authorization, client).then((user) => {
      (req as Authed).user = user;
      next();
    }, next);
  };
  const metrics = options.metrics ?? createApiMetrics(store);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Every request's duration, labelled with the template of the route that answered (never the path: a thousand ids
  // must not make a thousand series) or UNMATCHED_ROUTE.
  app.use((req, res, next) => {
    const end = metrics.httpRequestDuration.startTimer();
    res.once('finish', () =>
      end({ method: methodLabel(req.method), route: routeTemplate(req), status: res.statusCode }),
    );
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get(
    '/readyz',
    handle(async (_req, res) => {
      try {
        await options.ready();
        res.json({ status: 'ready' });
      } catch (error) {
        res.status(503).json({ status: 'unavailable', reason: error instanceof Error ? error.message : String(error) });
      }
    }),
  );

  const api = express.Router();
  api.get('/openapi.json', (_req, res) => {
    res.json(buildOpenApiDocument());
  });
  // Public: the gateway verifies access tokens with these keys, without a call per request.
  api.get('/.well-known/jwks.json', (_req, res) => {
    res.set('cache-control', 'public, max-age=300').json(options.accessTokens.jwks());
  });

  // Everything below needs a bearer token.
  api.use(authenticate);
  api.use(express.json({ limit: '64kb', strict: true }));
  // PostgreSQL stores no NUL in text or jsonb: a body carrying one is the client's mistake, not a 500.
  api.use((req, _res, next) => {
    const path = nulPath(req.body);
    if (path === undefined) return next();
    next(
      new InputError(`${path} must not contain a NUL character`, [
        { path, message: 'must not contain a NUL character' },
      ]),
    );
  });
  // An id in a path is only ever looked up; one PostgreSQL could not even compare (a NUL) names nothing there.
  api.param('id', (req, _res, next, value: unknown) => {
    if (typeof value === 'string' && value.length <= 256 && !CONTROL_CHARACTER.test(value)) return next();
    const kind = req.path.startsWith('/infrastructures/') ? 'infrastructure' : 'gitspace';
    next(new NotFoundError(kind, String(value).slice(0, 256).replace(CONTROL_CHARACTERS, '?')));
  });

  const userOf = (req: Request): UserRow => (req as Authed).user!;
  const actorOf = (req: Request): Actor => {
    const user = userOf(req);
    return { type: 'user', id: user.id, name: user.name };
  };
  const requireAdmin = (req: Request) => {
    if (userOf(req).role !== 'admin') throw new NotAllowedError('only an administrator may do this');
  };

  // Prometheus text for operators (what reconciliation did, orphans, gitspaces by state); scraped with the admin token.
  app.get(
    '/metrics',
    authenticate,
    handle(async (req, res) => {
      requireAdmin(req);
      res.type(METRICS_CONTENT_TYPE).send(await metrics.render());
    }),
  );
  const visibleGitspace = async (req: Request): Promise<GitspaceRow> => {
    const gitspace = await store.getGitspace(String(req.params.id));
    const user = userOf(req);
    // Another owner's gitspace is reported as absent, so ids cannot be probed.
    if (user.role !== 'admin' && gitspace.ownerId !== user.id)
      throw new NotFoundError('gitspace', String(req.params.id));
    return gitspace;
  };
  const presentGitspaces = async (rows: GitspaceRow[]) => {
    const operations = await store.latestOperations(rows.map((r) => r.id));
    return rows.map((row) => presentGitspace(row, operations.get(row.id)));
  };

  api.post(
    '/users',
    handle(async (req, res) => {
      requireAdmin(req);
      const body = parseBody(CreateUserBody, req.body);
      const { user, token } = await store.createUser(body.name, 'member');
      res.status(201).json({ user: presentUser(user), token });
    }),
  );
  api.get(
    '/users',
    handle(async (req, res) => {
      const user = userOf(req);
      const users = user.role === 'admin' ? await store.listUsers() : [user];
      res.json({ items: users.map(presentUser) });
    }),
  );

  api.post(
    '/infrastructures',
    handle(async (req, res) => {
      requireAdmin(req);
      const body = parseBody(CreateInfrastructureBody, req.body);
      const config = validateInfrastructureConfig(body.provider, body.config);
      const row = await store.createInfrastructure({
        id: body.name,
        name: body.name,
        provider: body.provider,
        config,
        gatewayUrl: body.gatewayUrl,
        ...(body.runnerPublicKeys ? { runnerPublicKeys: body.runnerPublicKeys } : {}),
      });
      await options.onInfrastructureCreated(row.id);
      res.status(201).json(presentInfrastructure(row));
    }),
  );
  api.get(
    '/infrastructures',
    handle(async (_req, res) => {
      const [rows, sealed] = await Promise.all([store.listInfrastructures(), store.countSealedTokens()]);
      res.json({ items: rows.map((row) => presentInfrastructure(row, sealed.get(row.id))) });
    }),
  );
  api.get(
    '/infrastructures/:id',
    handle(async (req, res) => {
      const id = String(req.params.id);
      const [row, sealed] = await Promise.all([store.getInfrastructure(id), store.countSealedTokens(id)]);
      // Temporal down must not make the infrastructure unreadable: its runners are then left out.
      const runners = await options.runners?.(row.id).catch((error: unknown) => {
        logger.warn('could not list the runners of an infrastructure', {
          infrastructureId: row.id,
          error: error instanceof Error ? error.message : String(error),
        });
        return undefined;
      });
      res.json({
        ...presentInfrastructure(row, sealed.get(row.id)),
        runnerContractVersion: RUNNER_CONTRACT_VERSION_NEEDED,
        ...(runners || !options.runners ? { runners: runners ?? [] } : {}),
      });
    }),
  );
  api.patch(
    '/infrastructures/:id',
    handle(async (req, res) => {
      requireAdmin(req);
      const body = parseBody(UpdateInfrastructureBody, req.body);
      const current = await store.getInfrastructure(String(req.params.id));
      const config =
        body.config === undefined ? undefined : validateInfrastructureConfig(current.provider, body.config);
      const row = await store.updateInfrastructure(current.id, {
        ...(config !== undefined ? { config } : {}),
        ...(body.gatewayUrl !== undefined ? { gatewayUrl: body.gatewayUrl } : {}),
        ...(body.runnerPublicKeys !== undefined ? { runnerPublicKeys: body.runnerPublicKeys } : {}),
      });
      res.json(presentInfrastructure(row, (await store.countSealedTokens(row.id)).get(row.id)));
    }),
  );
  api.delete(
    '/infrastructures/:id',
    handle(async (req, res) => {
      requireAdmin(req);
      const id = String(req.params.id);
      await store.deleteInfrastructure(id);
      await options.onInfrastructureDeleted?.(id);
      res.status(204).end();
    }),
  );

  api.post(
    '/infrastructures/:id/machines',
    handle(async (req, res) => {
      requireAdmin(req);
      const body = parseBody(CreateMachineBody, req.body);
      const infrastructure = await store.getInfrastructure(String(req.params.id));
      validateMachineSpec(infrastructure.provider, infrastructure.config, body);
      const row = await store.createMachine({
        id: `${infrastructure.id}-${body.name}`,
        infrastructureId: infrastructure.id,
        name: body.name,
        machineType: body.machineType,
        diskSizeGb: body.diskSizeGb,
        region: body.region ?? null,
        zone: body.zone ?? null,
        image: body.image ?? null,
      });
      res.status(201).json(presentMachine(row));
    }),
  );
  api.get(
    '/infrastructures/:id/machines',
    handle(async (req, res) => {
      const infrastructure = await store.getInfrastructure(String(req.params.id));
      res.json({ items: (await store.listMachines(infrastructure.id)).map(presentMachine) });
    }),
  );

  api.post(
    '/gitspaces',
    handle(async (req, res) => {
      const body = parseBody(CreateGitspaceBody, req.body);
      if (body.repository.token !== undefined && body.repository.tokenRef !== undefined) {
        throw new InputError('give repository.token or repository.tokenRef, not both', [
          { path: 'repository.tokenRef', message: 'cannot be given with repository.token' },
        ]);
      }
      const infrastructure = await store.getInfrastructure(body.infrastructureId).catch((error: unknown) => {
        throw error instanceof NotFoundError
          ? new InputError(`infrastructure '${body.infrastructureId}' does not exist`, [
              { path: 'infrastructureId', message: 'does not exist' },
            ])
          : error;
      });
      const machine = await store.getMachine(body.machineId).catch((error: unknown) => {
        throw error instanceof NotFoundError
          ? new InputError(`machine '${body.machineId}' does not exist`, [
              { path: 'machineId', message: 'does not exist' },
            ])
          : error;
      });
      if (machine.infrastructureId !== infrastructure.id) {
        throw new InputError(
          `machine '${machine.id}' belongs to infrastructure '${machine.infrastructureId}', not '${infrastructure.id}'`,
          [{ path: 'machineId', message: `is not a machine of infrastructure '${infrastructure.id}'` }],
        );
      }
      const idempotencyKey = req.get('idempotency-key');
      if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) {
        throw new InputError('the Idempotency-Key header must be 1 to 255 printable characters without spaces', [
          { path: 'header.Idempotency-Key', message: 'must be 1 to 255 printable characters without spaces' },
        ]);
      }
      const gitspaceId = newId('gs');
      const { gitspace, replayed } = await store.createGitspace(
        {
          id: gitspaceId,
          name: body.name,
          ownerId: userOf(req).id,
          repositoryUrl: body.repository.url,
          repositoryBranch: body.repository.branch ?? null,
          repositoryTokenSealed: body.repository.token
            ? sealToInfrastructure(infrastructure, gitspaceId, body.repository.token)
            : null,
          repositoryTokenRef: body.repository.tokenRef ?? null,
          infrastructureId: infrastructure.id,
          machineId: machine.id,
          ide: body.ide,
        },
        idempotencyKey === undefined
          ? undefined
          : { key: idempotencyKey, requestHash: createHash('sha256').update(JSON.stringify(req.body)).digest('hex') },
        { maxPerOwner: limits.maxGitspacesPerUser },
      );
      // A replayed request answers with the gitspace the first one made, and starts nothing again.
      const operation =
        body.start && !replayed ? await lifecycle.request(gitspace.id, 'start', actorOf(req)) : undefined;
      const [presented] = await presentGitspaces([await store.getGitspace(gitspace.id)]);
      res
        .status(201)
        .set(replayed ? { 'idempotent-replayed': 'true' } : {})
        .json({ gitspace: presented, ...(operation ? { operation: presentOperation(operation) } : {}) });
    }),
  );
  api.get(
    '/gitspaces',
    handle(async (req, res) => {
      const user = userOf(req);
      const rows = await store.listGitspaces(user.role === 'admin' ? {} : { ownerId: user.id });
      res.json({ items: await presentGitspaces(rows) });
    }),
  );
  api.get(
    '/gitspaces/:id',
    handle(async (req, res) => {
      const [presented] = await presentGitspaces([await visibleGitspace(req)]);
      res.json(presented);
    }),
  );
  api.post(
    '/gitspaces/:id/actions',
    handle(async (req, res) => {
      const gitspace = await visibleGitspace(req);
      const body = parseBody(ActionBody, req.body);
      const operation = await lifecycle.request(gitspace.id, body.action, actorOf(req));
      res.status(202).json({ operation: presentOperation(operation) });
    }),
  );
  api.delete(
    '/gitspaces/:id',
    handle(async (req, res) => {
      const gitspace = await visibleGitspace(req);
      const operation = await lifecycle.request(gitspace.id, 'delete', actorOf(req));
      res.status(202).json({ operation: presentOperation(operation) });
    }),
  );
  api.post(
    '/gitspaces/:id/access',
    handle(async (req, res) => {
      const gitspace = await visibleGitspace(req);
      if (gitspace.state !== 'running' || !gitspace.url) {
        throw new ConflictError(`gitspace '${gitspace.name}' is ${gitspace.state}; start it before opening it`);
      }
      // The token names the start that made the gitspace running: the next stop and start revoke it at the gateway.
      const started = (await store.latestOperations([gitspace.id])).get(gitspace.id);
      if (started?.action !== 'start' || started.status !== 'succeeded') {
        throw new ConflictError(`gitspace '${gitspace.name}' has no finished start to open`);
      }
      const { token, expiresAt } = await options.accessTokens.issue({
        userId: userOf(req).id,
        gitspaceId: gitspace.id,
        runId: started.runId,
      });
      const url = new URL(gitspace.url);
      url.searchParams.set(ACCESS_TOKEN_QUERY_PARAM, token);
      res.json({ url: url.toString(), token, expiresAt });
    }),
  );
  api.get(
    '/gitspaces/:id/events',
    handle(async (req, res) => {
      const gitspace = await visibleGitspace(req);
      if (req.accepts(['application/json', 'text/event-stream']) === 'text/event-stream') {
        await streamEvents(req, res, gitspace.id);
        return;
      }
      res.json({ items: (await store.listEvents(gitspace.id)).map(presentEvent) });
    }),
  );

  /** Open event streams per user id: at most `maxEventStreamsPerUser` each. */
  const openStreams = new Map<string, number>();
  const streamEvents = async (req: Request, res: Response, gitspaceId: string) => {
    const user = userOf(req);
    const open = openStreams.get(user.id) ?? 0;
    if (open >= limits.maxEventStreamsPerUser) {
      throw new TooManyRequestsError(
        `user '${user.name}' has ${open} of ${limits.maxEventStreamsPerUser} event streams open; close one first`,
        STREAM_RETRY_AFTER_SECONDS,
      );
    }
    openStreams.set(user.id, open + 1);
    let unsubscribe: (() => void) | undefined;
    let closed = false;
    let stalled: NodeJS.Timeout | undefined;
    res.on('close', () => {
      closed = true;
      clearTimeout(stalled);
      unsubscribe?.();
      const left = (openStreams.get(user.id) ?? 1) - 1;
      if (left > 0) openStreams.set(user.id, left);
      else openStreams.delete(user.id);
    });
    const lastEventId = Number(req.headers['last-event-id'] ?? 0);
    const after = Number.isSafeInteger(lastEventId) && lastEventId > 0 ? lastEventId : 0;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (events: EventRow[]) => {
      if (closed) return;
      for (const event of events) {
        res.write(`id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(presentEvent(event))}\n\n`);
      }
      // A client that does not read must not make this process hold its events without end.
      if (res.writableLength > STREAM_MAX_BUFFERED_BYTES && !stalled) {
        stalled = setTimeout(() => res.destroy(), STREAM_STALL_MS);
        res.once('drain', () => {
          clearTimeout(stalled);
          stalled = undefined;
        });
      }
    };
    const stop = await options.eventFeed.subscribe(gitspaceId, after, send);
    if (closed) stop();
    else unsubscribe = stop;
  };

  api.use((req, res) => {
    const allowed = allowedMethods(req.path);
    if (allowed.length === 0) throw new NotFoundError('route', `${req.method} ${req.baseUrl}${req.path}`);
    res
      .status(405)
      .set('allow', allowed.join(', '))
      .json({
        error: { code: 'method_not_allowed', message: `${req.path} answers ${allowed.join(', ')}, not ${req.method}` },
      });
  });
  app.use('/api/v1', api);
  app.use((req, res) => {
    res.status(404).json({
      error: { code: 'not_found', message: `no route ${req.method} ${req.path}; the API lives under /api/v1` },
    });
  });
  app.use(errorMiddleware(logger));
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

// eslint-disable-next-line no-control-regex -- control characters are exactly what these find
const CONTROL_CHARACTER = /[\0-\x1f\x7f]/;
// eslint-disable-next-line no-control-regex -- control characters are exactly what these find
const CONTROL_CHARACTERS = /[\0-\x1f\x7f]/g;

/**
 * The path (`a.b.0`) of the first key or string in a parsed JSON body that holds a NUL. Walked without recursion and
 * without copying paths, so a deeply nested body costs time in proportion to its size.
 */
function nulPath(body: unknown): string | undefined {
  interface Node {
    value: unknown;
    key?: string;
    parent?: Node;
  }
  const pathOf = (node: Node): string => {
    const keys: string[] = [];
    for (let at: Node | undefined = node; at?.key !== undefined; at = at.parent) {
      keys.push(at.key.replace(CONTROL_CHARACTERS, '?'));
    }
    return keys.reverse().join('.') || '(body)';
  };
  const pending: Node[] = [{ value: body }];
  while (pending.length > 0) {
    const node = pending.pop()!;
    if (typeof node.value === 'string') {
      if (node.value.includes('\0')) return pathOf(node);
    } else if (node.value !== null && typeof node.value === 'object') {
      for (const [key, value] of Object.entries(node.value)) {
        const child = { value, key, parent: node };
        if (key.includes('\0')) return pathOf(child);
        pending.push(child);
      }
    }
  }
  return undefined;
}

const iso = (date: Date | string) => new Date(date).toISOString();

function presentUser(row: UserRow) {
  return { id: row.id, name: row.name, role: row.role, createdAt: iso(row.createdAt) };
}

/**
 * Seals a repository token to the infrastructure's first runner key, bound to the gitspace: from here on only that
 * infrastructure's runners can open it, and the control plane cannot (common/sealed-secret.ts).
 */
function sealToInfrastructure(infrastructure: InfrastructureRow, gitspaceId: string, token: string): string {
  const [key] = infrastructure.runnerPublicKeys;
  if (!key) {
    throw new InputError(
      `infrastructure '${infrastructure.id}' has no runner public key, so a token cannot be sealed to it: an admin registers the key its runner prints at start (PATCH /infrastructures/${infrastructure.id} with runnerPublicKeys), or name a token in the runner's secret store with repository.tokenRef`,
      [{ path: 'repository.token', message: `infrastructure '${infrastructure.id}' has no runner public key yet` }],
    );
  }
  return RunnerPublicKey.parse(key).seal(token, { infrastructureId: infrastructure.id, gitspaceId });
}

function presentInfrastructure(row: InfrastructureRow, sealedTokens: Record<string, number> = {}) {
  return {
    id: row.id,
    name: row.name,
    provider: row.provider,
    config: row.config,
    gatewayUrl: row.gatewayUrl,
    runnerPublicKeys: row.runnerPublicKeys,
    sealedTokens,
    taskQueue: infrastructureTaskQueue(row.id),
    createdAt: iso(row.createdAt),
    updatedAt: iso(row.updatedAt),
  };
}

function presentMachine(row: MachineRow) {
  return {
    id: row.id,
    infrastructureId: row.infrastructureId,
    name: row.name,
    machineType: row.machineType,
    diskSizeGb: row.diskSizeGb,
    ...(row.region ? { region: row.region } : {}),
    ...(row.zone ? { zone: row.zone } : {}),
    ...(row.image ? { image: row.image } : {}),
    createdAt: iso(row.createdAt),
  };
}

function presentOperation(row: OperationRow) {
  return {
    id: row.id,
    action: row.action,
    workflowId: row.workflowId,
    runId: row.runId,
    status: row.status,
    ...(row.step ? { step: row.step } : {}),
    createdAt: iso(row.createdAt),
    ...(row.finishedAt ? { finishedAt: iso(row.finishedAt) } : {}),
  };
}

function presentGitspace(row: GitspaceRow, operation?: OperationRow) {
  return {
    id: row.id,
    name: row.name,
    state: row.state,
    ...(row.url ? { url: row.url } : {}),
    owner: row.ownerId,
    repository: {
      url: row.repositoryUrl,
      ...(row.repositoryBranch ? { branch: row.repositoryBranch } : {}),
      hasToken: row.repositoryTokenSealed !== null || row.repositoryTokenRef !== null,
      ...(row.repositoryTokenRef ? { tokenRef: row.repositoryTokenRef } : {}),
    },
    infrastructureId: row.infrastructureId,
    machineId: row.machineId,
    ide: row.ide,
    ...(row.lastError ? { lastError: row.lastError } : {}),
    ...(operation ? { operation: presentOperation(operation) } : {}),
    createdAt: iso(row.createdAt),
    updatedAt: iso(row.updatedAt),
  };
}

function presentEvent(row: EventRow) {
  return {
    seq: row.seq,
    type: row.type,
    ...(row.state ? { state: row.state } : {}),
    message: row.message,
    data: row.data,
    actor: row.actor,
    createdAt: iso(row.createdAt),
  };
}
