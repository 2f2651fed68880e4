import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { bearerMatches } from '../common/bearer';
import type { Logger } from '../common/logger';
import type { GatewayActivity } from './activity';
import type { GatewayMetrics } from './metrics';
import {
  InvalidGitspaceIdError,
  InvalidRouteRegistrationError,
  InvalidRouteTargetError,
  listed,
  parseRouteRegistration,
  type GatewayRoute,
  type RoutesStore,
} from './routes-store';

/** The Prometheus text format's content type. */
const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** Largest admin request body accepted: a route is a few dozen bytes. */
const MAX_BODY_BYTES = 16 * 1024;
/** `GET /routes/:gitspaceId/activity`. */
const ACTIVITY_PATH = /^\/routes\/([^/?#]+)\/activity$/;
const EXAMPLE_BODY = '{"target":"http://10.0.0.5:8089","secret":"<43+ base64url characters>","runId":"<run id>"}';

export interface AdminHandlerOptions {
  routes: RoutesStore;
  /** The shared bearer secret of the runner(s). */
  adminToken: string;
  logger: Logger;
  /** Called when a route is removed or registered again by another start: its open connections must end now. */
  onRouteGone: (gitspaceId: string) => void;
  /** What `GET /metrics` reports; without it there is no such endpoint. */
  metrics?: Pick<GatewayMetrics, 'render'>;
  /** What `GET /routes/:gitspaceId/activity` reports (gateway/activity.ts); without it there is no such endpoint. */
  activity?: GatewayActivity;
}

/** Thrown when an admin request body is not a JSON object of acceptable size (400/413). */
class BadAdminBodyError extends Error {
  constructor(
    readonly status: 400 | 413,
    message: string,
  ) {
    super(message);
    this.name = 'BadAdminBodyError';
  }
}

/**
 * The gateway's admin API, on its own listener (the runner calls it; users never reach it): `GET /routes` (without
 * secrets), `PUT /routes/:gitspaceId { target, secret, runId }` (common/gateway-route.ts), `DELETE /routes/:gitspaceId`,
 * `GET /routes/:gitspaceId/activity` (gateway/activity.ts) and `GET /metrics` (Prometheus text), all with the bearer
 * secret. Route secrets go in and never come out.
 */
export function createAdminHandler(options: AdminHandlerOptions): RequestListener {
  const { routes, logger } = options;
  return (req, res) => {
    handle(req, res).catch((error: unknown) => {
      logger.error('admin request failed', { error, method: req.method, url: req.url });
      if (!res.headersSent) send(res, 500, { error: { code: 'internal', message: 'the gateway could not do that' } });
      else res.destroy();
    });
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    if (url === '/healthz' && req.method === 'GET') return send(res, 200, { status: 'ok' });
    if (!bearerMatches(req.headers.authorization, options.adminToken)) {
      res.setHeader('www-authenticate', 'Bearer');
      return send(res, 401, {
        error: { code: 'unauthenticated', message: 'the gateway admin token is missing or wrong' },
      });
    }
    if (url === '/metrics' && options.metrics) {
      if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
      const text = await options.metrics.render();
      res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    if (url === '/routes') {
      if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
      return send(res, 200, { routes: routes.list() });
    }
    const activity = options.activity && ACTIVITY_PATH.exec(url);
    if (activity) {
      if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
      return send(res, 200, options.activity!.of(activity[1]!));
    }
    const match = /^\/routes\/([^/?#]+)$/.exec(url);
    if (!match) return send(res, 404, { error: { code: 'not_found', message: `no admin endpoint ${url}` } });
    // Not decoded: a gitspace id has no characters that need escaping, so an escaped one is refused as it stands.
    const gitspaceId = match[1]!;

    if (req.method === 'PUT') {
      let body: unknown;
      try {
        body = await readJson(req);
      } catch (error) {
        if (!(error instanceof BadAdminBodyError)) throw error;
        return send(res, error.status, { error: { code: 'invalid_request', message: error.message } });
      }
      const previous = routes.get(gitspaceId);
      let result: { route: GatewayRoute; created: boolean };
      try {
        // Connections of an earlier start (another target, secret or run) end before the table changes, so no new one
        // is caught by mistake: they were authorised by tokens of that run.
        const next = parseRouteRegistration(body);
        if (
          previous &&
          (previous.target !== next.target || previous.secret !== next.secret || previous.runId !== next.runId)
        ) {
          options.onRouteGone(gitspaceId);
        }
        result = await routes.put(gitspaceId, next);
      } catch (error) {
        if (
          error instanceof InvalidGitspaceIdError ||
          error instanceof InvalidRouteTargetError ||
          error instanceof InvalidRouteRegistrationError
        ) {
          const path =
            error instanceof InvalidGitspaceIdError
              ? 'gitspaceId'
              : error instanceof InvalidRouteTargetError
                ? 'target'
                : error.field;
          return send(res, 400, {
            error: { code: 'invalid_request', message: error.message, fields: [{ path, message: error.message }] },
          });
        }
        throw error;
      }
      logger.info(result.created ? 'route added' : 'route updated', {
        gitspaceId,
        target: result.route.target,
        runId: result.route.runId,
      });
      return send(res, result.created ? 201 : 200, listed(result.route));
    }
    if (req.method === 'DELETE') {
      // Connections end first, so nothing slips through between the table change and the file write.
      options.onRouteGone(gitspaceId);
      if (await routes.delete(gitspaceId)) logger.info('route removed', { gitspaceId });
      res.writeHead(204).end();
      return;
    }
    return methodNotAllowed(res, 'PUT, DELETE');
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new BadAdminBodyError(413, `the body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BadAdminBodyError(400, `the body must be JSON like ${EXAMPLE_BODY}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new BadAdminBodyError(400, `the body must be a JSON object like ${EXAMPLE_BODY}`);
  }
  return parsed;
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader('allow', allow);
  send(res, 405, { error: { code: 'method_not_allowed', message: `use ${allow}` } });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}
