import type { IncomingMessage } from 'node:http';
import { GITSPACE_ID_PATTERN } from '../contracts/access-token';
import { SSH_TUNNEL_PATH, gatewayPathKind } from '../common/gateway-route';
import { notIdePath, type Refusal } from './refusals';
import { decodePath, gitspaceOfHost, splitToken } from './request-target';

/**
 * Which gitspace a request is for, and the path it goes to there. `/gitspaces/<id>/<rest>` is forwarded as `/<rest>`
 * (the prefix is STRIPPED, so the IDE always sees itself at `/`); with a domain configured, `<id>.<domain>/<path>` is
 * forwarded as `/<path>`. The request target and `Host` only select a route, never an address.
 */

/** Path prefix of path routing. */
export const GITSPACES_PATH_PREFIX = '/gitspaces/';

/**
 * The lanes under a gitspace: the IDE's paths (forwarded as they are, browser tokens), and the gateway's reserved SSH
 * paths (common/gateway-route.ts): the tunnel, forwarded to the agent's own SSH path, and its renewal, answered by the
 * gateway. Both take only ssh-scope bearer tokens (session.ts).
 */
export type PathKind = 'ide' | 'ssh' | 'ssh-renew';

/** Where a request goes, once its request target and Host are understood. */
export interface Resolved {
  gitspaceId: string;
  kind: PathKind;
  /** Path sent upstream, starting with `/`. */
  upstreamPath: string;
  /** Query without the token parameter (may be empty). */
  query: string;
  queryToken: string | undefined;
  /** The public path prefix (`/gitspaces/<id>`) under path routing, '' under host routing. */
  prefix: string;
  publicPath: string;
}

/** The `.<domain>` that host routing matches (see {@link gitspaceOfHost}); none without a domain. */
export function domainSuffixOf(domain: string | undefined): string | undefined {
  return domain ? `.${domain.toLowerCase().replace(/^\.+|\.+$/g, '')}` : undefined;
}

/** Whether `Host` names a gitspace under host routing. */
export function isGitspaceHost(req: IncomingMessage, domainSuffix: string | undefined): boolean {
  return Boolean(domainSuffix && gitspaceOfHost(req.headers.host, domainSuffix));
}

/**
 * The gitspace and upstream path of a request, or why there is none. Under path routing `/gitspaces/<id>` (no
 * trailing slash) resolves with an empty `upstreamPath`: the caller redirects it to `/gitspaces/<id>/`.
 */
export function resolveTarget(req: IncomingMessage, domainSuffix: string | undefined): Resolved | Refusal {
  const rawUrl = req.url ?? '';
  // Only origin-form targets: an absolute URI (`GET http://elsewhere/`) must never choose where we connect.
  if (!rawUrl.startsWith('/') || rawUrl.startsWith('//')) {
    return {
      status: 400,
      code: 'bad_request_target',
      message: 'only paths are accepted as request targets',
      close: true,
    };
  }
  const q = rawUrl.indexOf('?');
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const decoded = decodePath(path);
  if (decoded === undefined) {
    return {
      status: 400,
      code: 'bad_path',
      message: 'paths with dot segments, backslashes or broken escapes are refused',
      close: true,
    };
  }
  const { query, token: queryToken } = splitToken(q < 0 ? '' : rawUrl.slice(q + 1));

  const hostId = domainSuffix ? gitspaceOfHost(req.headers.host, domainSuffix) : undefined;
  if (hostId) {
    const kind = pathKindOf(decoded);
    if (kind === undefined) return notIdePath();
    return laned({ gitspaceId: hostId, kind, upstreamPath: path, query, queryToken, prefix: '', publicPath: path });
  }

  if (!path.startsWith(GITSPACES_PATH_PREFIX)) {
    return {
      status: 404,
      code: 'not_found',
      message: `nothing here: gitspaces are under ${GITSPACES_PATH_PREFIX}<id>/`,
    };
  }
  const slash = path.indexOf('/', GITSPACES_PATH_PREFIX.length);
  const gitspaceId = path.slice(GITSPACES_PATH_PREFIX.length, slash < 0 ? undefined : slash);
  if (!GITSPACE_ID_PATTERN.test(gitspaceId)) {
    return { status: 404, code: 'not_found', message: 'no such gitspace' };
  }
  const prefix = GITSPACES_PATH_PREFIX + gitspaceId;
  // The prefix has no escapes, so the decoded path is the prefix followed by the decoded upstream path.
  const kind = pathKindOf(decoded.slice(prefix.length));
  if (kind === undefined) return notIdePath();
  // `/gitspaces/<id>` has no trailing slash: send the browser to `/gitspaces/<id>/` so relative URLs and the cookie
  // path line up (handled by the caller as a redirect).
  const upstreamPath = slash < 0 ? '' : path.slice(slash);
  return laned({ gitspaceId, kind, upstreamPath, query, queryToken, prefix, publicPath: path });
}

/**
 * The lane of a decoded path under a gitspace, however it is spelt (`/%5Fgitspaces/SSH`, `//_GITSPACES/ssh`); undefined
 * for a path that is neither the IDE's nor a gateway lane: the agent's private API, other reserved paths.
 */
function pathKindOf(decoded: string): PathKind | undefined {
  const kind = gatewayPathKind(decoded);
  return kind === 'agent-private' || kind === 'reserved' ? undefined : kind;
}

/** The SSH tunnel reaches the agent at its own path, whatever the spelling asked for, with no query. */
function laned(target: Resolved): Resolved {
  if (target.kind === 'ssh') {
    target.upstreamPath = SSH_TUNNEL_PATH;
    target.query = '';
  }
  return target;
}

/** The request target sent upstream: the upstream path and the query without the token. */
export function upstreamTarget(target: Resolved): string {
  return target.upstreamPath + (target.query ? `?${target.query}` : '');
}
