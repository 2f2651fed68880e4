import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { nodeClient, proxyHttp, type UpstreamError } from '../common/http-proxy';
import { originOf } from '../common/upstream-client';
import { isClosing } from './connections';
import { forwardHeaders, rewriteResponse } from './forwarding';
import type { GatewayParts } from './parts';
import { notRunning, sendJson, upstreamRefusal, type Refusal } from './refusals';
import { checkRequestHead } from './request-head';
import { rebuildQuery } from './request-target';
import { isGitspaceHost, resolveTarget, upstreamTarget, type Resolved } from './routing';
import { isCrossSiteSubresource, revoked, type Authenticated } from './session';
import { createSshRequestHandler } from './ssh-requests';

/**
 * HTTP requests on the public listener, in order: the head checks, `/healthz`, routing (the SSH paths go to
 * ssh-requests.ts), the token, the cookie exchange, then the exchange forwarded to the machine.
 */

/** Set on a request that waits for `100 Continue` (sent once it is authorised and forwarded). */
const EXPECTS_CONTINUE = Symbol('gitspaces.gatewayExpectsContinue');
type Request = IncomingMessage & { [EXPECTS_CONTINUE]?: boolean };

export interface RequestHandlers {
  /** The server's `request` listener. */
  request(req: IncomingMessage, res: ServerResponse): void;
  /** The server's `checkContinue` listener: a request that waits for `100 Continue`. */
  checkContinue(req: IncomingMessage, res: ServerResponse): void;
  /** The server's `checkExpectation` listener: an `Expect` other than `100-continue`. */
  checkExpectation(req: IncomingMessage, res: ServerResponse): void;
}

export function createRequestHandlers(parts: GatewayParts): RequestHandlers {
  const { logger, routes, sessions, connections, metrics, trusted, targets, pool, timeoutMs, domainSuffix } = parts;
  const { refuse, refuseToken } = parts.refusals;
  const sshRequest = createSshRequestHandler(parts);

  function onRequest(req: Request, res: ServerResponse): void | Promise<void> {
    // Pipelined behind an answer that ends the connection: never handled (the connection closes after that answer).
    if (isClosing(req.socket)) return;
    const bad = checkRequestHead(req);
    if (bad) return refuse(req, res, bad);
    if (req.url === '/healthz' && !isGitspaceHost(req, domainSuffix)) {
      return sendJson(res, 200, { status: 'ok' });
    }
    const target = resolveTarget(req, domainSuffix);
    if ('status' in target) return refuse(req, res, target);
    if (target.prefix && target.upstreamPath === '') {
      const location = `${target.prefix}/${rebuildQuery(target.query, target.queryToken)}`;
      metrics.redirected();
      res.writeHead(308, ['location', location, 'content-length', '0']);
      return void res.end();
    }
    if (target.kind !== 'ide') return sshRequest(req, res, target);
    const auth = sessions.authenticate(req, target);
    if (auth instanceof Promise) return auth.then((checked) => forward(req, res, target, checked));
    forward(req, res, target, auth);
  }

  /** The rest of a request once its token was checked: the cookie exchange, or the proxied exchange itself. */
  function forward(req: Request, res: ServerResponse, target: Resolved, auth: Authenticated | Refusal): void {
    if ('status' in auth) return refuseToken(req, res, auth, target.gitspaceId);
    if (auth.source === 'cookie' && isCrossSiteSubresource(req)) {
      return refuse(req, res, { status: 403, code: 'cross_site', message: 'requests from other sites are refused' });
    }
    const route = routes.get(target.gitspaceId);
    if (route && route.runId !== auth.claims.runId) {
      return refuseToken(req, res, revoked(target.gitspaceId, auth), target.gitspaceId);
    }
    if (auth.source === 'query' && (req.method === 'GET' || req.method === 'HEAD')) {
      metrics.redirected();
      return sessions.exchangeForCookie(req, res, target, auth);
    }
    if (!route) return refuse(req, res, notRunning(target.gitspaceId));

    const upstream = targets.of(route.target);
    connections.track(target.gitspaceId, req.socket);
    parts.activity.request(target.gitspaceId, res);
    // Only now, authorised and on its way: the client may send the body it held back.
    if (req[EXPECTS_CONTINUE]) res.writeContinue();
    proxyHttp(nodeClient(req, res), {
      target: upstream,
      path: upstreamTarget(target),
      headers: forwardHeaders(req, target, route, trusted),
      timeoutMs,
      pool,
      responseHeaders: rewriteResponse(target, originOf(upstream), 'http', performance.now(), metrics),
      onError: answerUpstreamFailure(req, res, target.gitspaceId),
    });
  }

  // Made by a function rather than written inline: tsx (esbuild's keepNames) would give an inline closure its name
  // with a defineProperty call on every request, which costs more than the rest of the routing.
  const answerUpstreamFailure =
    (req: IncomingMessage, res: ServerResponse, gitspaceId: string) =>
    (error: UpstreamError): void =>
      refuse(req, res, upstreamRefusal(error, gitspaceId, logger));

  const requestFailed = (req: IncomingMessage, res: ServerResponse, error: unknown) => {
    logger.error('gateway request failed', { error, url: req.url });
    if (!res.headersSent) refuse(req, res, { status: 500, code: 'internal', message: 'the gateway failed' });
    else res.destroy();
  };
  const handleRequest = (req: Request, res: ServerResponse) => {
    try {
      onRequest(req, res)?.catch((error: unknown) => requestFailed(req, res, error));
    } catch (error) {
      requestFailed(req, res, error);
    }
  };

  return {
    request: handleRequest,
    checkContinue(req: Request, res) {
      req[EXPECTS_CONTINUE] = true;
      handleRequest(req, res);
    },
    checkExpectation(req, res) {
      refuse(req, res, {
        status: 417,
        code: 'expectation_failed',
        message: `the expectation '${req.headers.expect}' is not supported`,
        close: true,
      });
    },
  };
}
