import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccessTokenClaims } from '../contracts/access-token';
import { bearerToken } from '../common/bearer';
import type { TrustedProxies } from '../common/client-address';
import { TokenBuckets, clientAddressKey, type RateLimit } from '../common/rate-limit';
import {
  ExpiredAccessTokenError,
  InvalidAccessTokenError,
  KeysUnavailableError,
  MissingAccessTokenError,
  RevokedAccessTokenError,
  WrongGitspaceTokenError,
  type AccessTokenVerifier,
} from './auth';
import { DEFAULT_AUTH_FAILURE_LIMIT } from './limits';
import { clientAddress, schemeOf } from './proxy-claims';
import type { Refusal } from './refusals';
import { readCookie } from './request-target';
import type { PathKind, Resolved } from './routing';

/**
 * A user's session at the gateway (DESIGN.md §4): every request needs an access token for the very gitspace it asks
 * for and the run its route was registered by — `?token=` on first visit (exchanged for a cookie), then the cookie, or
 * `Authorization: Bearer`. A cookie is good only for requests of the gitspace's own site.
 *
 * Tokens have lanes (contracts/access-token.ts): a browser-scope token opens the IDE's paths; an ssh-scope token opens
 * only the SSH paths, only as a bearer, so it never becomes a cookie. Either refused in the other's lane: 403
 * `token_scope`.
 */

/** Name of the gateway's session cookie; stripped from every forwarded request and upstream `Set-Cookie`. */
export const GATEWAY_COOKIE = 'gitspaces_access';

/** A request's token, checked for the gitspace it asks for, and where it was found. */
export interface Authenticated {
  claims: AccessTokenClaims;
  source: 'query' | 'header' | 'cookie';
  token: string;
}

export interface Sessions {
  /**
   * Finds the token (query, then `Authorization: Bearer`, then the cookie; the bearer only on an SSH path) and checks
   * it for this gitspace and the path's lane: at once for a token seen before (no promise on the hot path), else after
   * verifying its signature — unless this client has used up its failed checks, which gets 429 without any verifying.
   */
  authenticate(req: IncomingMessage, target: Resolved): Authenticated | Refusal | Promise<Authenticated | Refusal>;
  /**
   * Answers a `?token=` visit with the token as an HttpOnly, SameSite cookie for the gitspace's path, and a redirect to
   * the same address without the token (out of the address bar, history and Referer).
   */
  exchangeForCookie(req: IncomingMessage, res: ServerResponse, target: Resolved, auth: Authenticated): void;
}

export function createSessions(options: {
  verifier: AccessTokenVerifier;
  trusted: TrustedProxies;
  /** Failed token checks one client address may cause per window before it gets 429. */
  authFailureLimit?: RateLimit;
  /** The clock of the per-client slow-down. */
  now?: () => number;
}): Sessions {
  const { verifier, trusted } = options;
  const authFailures = new TokenBuckets({
    ...(options.authFailureLimit ?? DEFAULT_AUTH_FAILURE_LIMIT),
    now: options.now,
  });

  return {
    authenticate(req, target) {
      const headerToken = bearerToken(req.headers.authorization);
      const cookieToken = readCookie(req.headers.cookie, GATEWAY_COOKIE);
      // The SSH lane reads the bearer only: a token in a cookie or `?token=` there is refused, never used.
      const ssh = target.kind !== 'ide';
      if (ssh && !headerToken && (target.queryToken || cookieToken)) return bearerOnly();
      const queryToken = ssh ? undefined : target.queryToken;
      const source = queryToken ? 'query' : headerToken ? 'header' : 'cookie';
      const token = queryToken ?? headerToken ?? (ssh ? undefined : cookieToken);
      try {
        const cached = verifier.verifyCached(token, target.gitspaceId);
        if (cached) return inLane(target.kind, { claims: cached, source, token: token! });
      } catch (error) {
        return refusalOfTokenError(error);
      }
      const client = clientAddressKey(clientAddress(req, trusted));
      const retryAfter = authFailures.wait(client);
      if (retryAfter > 0) {
        return {
          status: 429,
          code: 'too_many_failures',
          message: `too many requests with invalid access tokens from this address: try again in ${retryAfter} s`,
          retryAfter,
        };
      }
      return verifier.verify(token, target.gitspaceId).then(
        (claims) => inLane(target.kind, { claims, source, token: token! }),
        (error: unknown) => {
          const refusal = refusalOfTokenError(error);
          if (refusal.code === 'token_invalid') authFailures.take(client);
          return refusal;
        },
      );
    },

    exchangeForCookie(req, res, target, auth) {
      const maxAge = Math.max(0, auth.claims.expiresAt - Math.floor(Date.now() / 1000));
      const cookie = [
        `${GATEWAY_COOKIE}=${auth.token}`,
        `Path=${target.prefix ? `${target.prefix}/` : '/'}`,
        `Max-Age=${maxAge}`,
        'HttpOnly',
        'SameSite=Lax',
        ...(schemeOf(req, trusted) === 'https' ? ['Secure'] : []),
      ].join('; ');
      const location = target.publicPath + (target.query ? `?${target.query}` : '');
      res.writeHead(303, [
        'location',
        location,
        'set-cookie',
        cookie,
        'cache-control',
        'no-store',
        'content-length',
        '0',
      ]);
      res.end();
    },
  };
}

/** A token is revoked for a gitspace whose route was registered by another run than the token's (restart or stop). */
export function revoked(gitspaceId: string, auth: Authenticated): Refusal {
  return refusalOfTokenError(new RevokedAccessTokenError(gitspaceId, auth.claims.runId));
}

/** A request made by a page of another site or sibling host (not a top-level navigation), per Fetch metadata. */
export function isCrossSiteSubresource(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  return (site === 'cross-site' || site === 'same-site') && req.headers['sec-fetch-mode'] !== 'navigate';
}

/** A WebSocket handshake from the gitspace's own origin (or from no browser at all). */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (!origin) return true; // Not a browser: browsers always send Origin on WebSocket handshakes.
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/** A token checked for its lane: the IDE's paths take browser tokens, the SSH paths ssh tokens that name keys. */
function inLane(kind: PathKind, auth: Authenticated): Authenticated | Refusal {
  const { scope, sshKeys } = auth.claims;
  if (kind === 'ide') {
    if (scope === 'browser') return auth;
    return {
      status: 403,
      code: 'token_scope',
      message: 'this access token is for SSH only (gitspaces ssh); open the gitspace with a browser token',
    };
  }
  if (scope !== 'ssh') {
    return { status: 403, code: 'token_scope', message: 'SSH needs an access token of scope ssh: use `gitspaces ssh`' };
  }
  if (kind === 'ssh' && !sshKeys?.length) {
    return {
      status: 403,
      code: 'no_ssh_keys',
      message: 'the access token names no SSH keys: register one (gitspaces ssh-keys add) and ask for a new token',
    };
  }
  return auth;
}

/** An SSH path asked with a token elsewhere than in `Authorization: Bearer` (a cookie, `?token=`). */
function bearerOnly(): Refusal {
  return {
    status: 403,
    code: 'token_scope',
    message: 'SSH takes its access token only as `Authorization: Bearer`: use `gitspaces ssh`',
  };
}

/** The answer to a failed token check; anything else than a token error is rethrown. */
function refusalOfTokenError(error: unknown): Refusal {
  if (error instanceof MissingAccessTokenError) return { status: 401, code: 'token_missing', message: error.message };
  if (error instanceof ExpiredAccessTokenError) return { status: 401, code: 'token_expired', message: error.message };
  if (error instanceof InvalidAccessTokenError) return { status: 401, code: 'token_invalid', message: error.message };
  if (error instanceof RevokedAccessTokenError) return { status: 401, code: 'token_revoked', message: error.message };
  if (error instanceof WrongGitspaceTokenError)
    return { status: 403, code: 'token_other_gitspace', message: error.message };
  if (error instanceof KeysUnavailableError) return { status: 503, code: 'keys_unavailable', message: error.message };
  throw error;
}
