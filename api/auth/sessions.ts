import { createHash, randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import { AuthenticationError } from '../../common/errors';
import { sameSecret } from '../../common/same-secret';
import type { Logger } from '../../common/logger';
import type { SessionRow, UserRow } from '../../db/schema';
import type { Store } from '../../db/store';
import { inactiveUserMessage } from '../../db/stores/users';
import type { TokenUser } from '../limits';
import { clearCookie, cookieOf, setCookie, type CookieScope } from './cookies';
import { IdentityProviderUnavailableError, SignInRefusedError, type OidcRelyingParty } from './oidc';
import type { SessionKey } from './session-key';
import type { SessionSettings } from './settings';

/** The dashboard's session cookie: 32 random bytes; the database keeps only their SHA-256. */
export const SESSION_COOKIE = 'gitspaces_session';

/** Methods that change something: with a session cookie they need the session's CSRF token. */
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** A request the session check refuses with an answer of its own: 403 `csrf`, 503 when the provider is away. */
export class SessionRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SessionRefusal';
  }
}

export interface SessionService {
  /** Whether the request carries a session cookie (else it is a bearer request, or nobody's). */
  hasCookie(req: Request): boolean;
  /**
   * Starts a session for the user and sets its cookie on the answer: `provider` for an OpenID Connect sign-in, or a
   * user found by an API token (api/limits.ts), whose session ends when that token is revoked.
   */
  start(res: Response, user: UserRow | TokenUser, provider?: { issuer: string; refreshToken?: string }): Promise<void>;
  /**
   * The user of the request's session: refused (401) when it ended, idle, its user disabled or removed, or no longer
   * confirmed by the provider; 403 `csrf` for a state-changing request without the session's CSRF token or from
   * another origin. Nothing is changed for a refused request.
   */
  authenticate(req: Request, res: Response): Promise<UserRow>;
  /**
   * `authenticate` for a form a page of the API posts (the `gitspaces login --web` consent): the CSRF token comes in
   * the form's `field` instead of the header, compared in constant time; the same 401s and 403s.
   */
  authenticateForm(req: Request, res: Response, field: unknown): Promise<UserRow>;
  /** The session `authenticate` found for this request; undefined for a request that came with an API token. */
  sessionOf(req: Request): SessionRow | undefined;
  /** Ends the session the request was authenticated by, if any, and clears the cookie. */
  end(req: Request, res: Response): Promise<void>;
  /** Whether the request's `Origin`, when it has one, is the API's own. */
  sameOrigin(req: Request): boolean;
}

export function createSessionService(options: {
  store: Store;
  settings: SessionSettings;
  key: SessionKey;
  /** Where browsers reach the API; its origin is the only one accepted when `publicUrlConfigured`. */
  publicUrl: string;
  publicUrlConfigured: boolean;
  oidc?: OidcRelyingParty;
  /** Spends one of the session's requests per minute (api/limits.ts); throws when none is left. */
  spendRequest(key: string): void;
  logger: Logger;
  now?: () => number;
}): SessionService {
  const { store, settings, key, oidc, logger } = options;
  const now = options.now ?? Date.now;
  const scope: CookieScope = { path: '/', secure: options.publicUrl.startsWith('https:') };
  const publicOrigin = new URL(options.publicUrl).origin;
  const found = new WeakMap<Request, SessionRow>();
  // lastSeenAt is written at most this often: the idle end moves without a write per request.
  const touchEveryMs = Math.min(60_000, (settings.idleSeconds * 1000) / 10);

  const hash = (cookie: string) => createHash('sha256').update(cookie).digest('hex');
  const ended = async (res: Response, idHash: string, why: string): Promise<never> => {
    await store.deleteSession(idHash);
    clearCookie(res, SESSION_COOKIE, scope);
    throw new AuthenticationError(`${why}; sign in again`);
  };

  function sameOrigin(req: Request): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    if (options.publicUrlConfigured) return origin === publicOrigin;
    try {
      return origin === publicOrigin || new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }

  /** `sent` is the X-CSRF-Token header, or the form field of a page's form (`fromForm`). */
  function checkCsrf(req: Request, session: SessionRow, sent: unknown, fromForm: boolean): void {
    if (!STATE_CHANGING.has(req.method)) return;
    if (typeof sent !== 'string' || !sameSecret(sent, session.csrfToken)) {
      throw new SessionRefusal(
        403,
        'csrf',
        fromForm
          ? 'this form is not the one this session was shown: open the page again'
          : 'this request needs the X-CSRF-Token header GET /api/v1/session gives',
      );
    }
    if (!sameOrigin(req)) {
      throw new SessionRefusal(403, 'csrf', `requests that change something must come from ${publicOrigin}`);
    }
  }

  /** Asks the provider, once per recheck interval, whether the user of an OpenID Connect session still exists. */
  async function recheck(res: Response, session: SessionRow, at: number): Promise<void> {
    const checkedAt = session.checkedAt ?? session.createdAt;
    if (checkedAt.getTime() + (oidc?.settings.recheckSeconds ?? 0) * 1000 > at) return;
    if (!oidc || session.issuer !== (await oidc.issuer().catch(() => session.issuer))) {
      return ended(res, session.idHash, 'this session was made by an identity provider this API no longer uses');
    }
    const refreshToken =
      session.refreshTokenSealed && key.open('refresh-token', session.refreshTokenSealed, session.idHash);
    if (!refreshToken) return ended(res, session.idHash, 'this session can no longer be confirmed with the provider');
    // One request (of any replica) checks; the others go on while it does.
    if (!(await store.claimSessionCheck(session.idHash, session.checkedAt, new Date(at)))) return;
    try {
      const confirmed = await oidc.confirm(refreshToken);
      if (confirmed.refreshToken !== refreshToken) {
        const refreshTokenSealed = key.seal('refresh-token', confirmed.refreshToken, session.idHash);
        await store.recordSessionCheck(session.idHash, { checkedAt: new Date(at), refreshTokenSealed });
      }
    } catch (error) {
      if (error instanceof SignInRefusedError) {
        logger.info('the identity provider no longer confirms a session; it ended', { userId: session.userId });
        return ended(res, session.idHash, 'the identity provider no longer confirms your account');
      }
      if (!(error instanceof IdentityProviderUnavailableError)) throw error;
      // Due again at once: the next request asks again.
      await store.recordSessionCheck(session.idHash, { checkedAt: session.checkedAt });
      throw new SessionRefusal(503, 'identity_provider_unavailable', error.message);
    }
  }

  /** The session's user; `sentCsrf` from the X-CSRF-Token header, or from a form's field (`fromForm`). */
  async function authenticate(req: Request, res: Response, sentCsrf: unknown, fromForm: boolean): Promise<UserRow> {
    const idHash = hash(cookieOf(req, SESSION_COOKIE) ?? '');
    const at = now();
    const current = await store.findSession(idHash);
    if (!current) {
      clearCookie(res, SESSION_COOKIE, scope);
      throw new AuthenticationError('your session has ended; sign in again');
    }
    const { session, user } = current;
    if (session.expiresAt.getTime() <= at) return ended(res, idHash, 'your session has ended');
    if (session.lastSeenAt.getTime() + settings.idleSeconds * 1000 <= at) {
      return ended(res, idHash, 'your session ended after being idle');
    }
    if (!user.active) return ended(res, idHash, `your ${inactiveUserMessage(user)}`);
    checkCsrf(req, session, sentCsrf, fromForm);
    if (session.issuer !== null) await recheck(res, session, at);
    options.spendRequest(`session:${idHash}`);
    if (at - session.lastSeenAt.getTime() >= touchEveryMs) await store.touchSession(idHash, new Date(at));
    found.set(req, session);
    const { active: _active, ...row } = user;
    return row;
  }

  return {
    hasCookie: (req) => cookieOf(req, SESSION_COOKIE) !== undefined,

    async start(res, user, provider) {
      const cookie = randomBytes(32).toString('base64url');
      const idHash = hash(cookie);
      const at = now();
      let lifetime = settings.ttlSeconds;
      if (provider && !provider.refreshToken && oidc) {
        // Without a refresh token the provider cannot be asked again: the session ends when it would have been.
        logger.warn('the identity provider issued no refresh token: sessions end at each recheck', {
          issuer: provider.issuer,
        });
        lifetime = Math.min(lifetime, oidc.settings.recheckSeconds);
      }
      await store.deleteEndedSessions(new Date(at), new Date(at - settings.idleSeconds * 1000));
      await store.createSession({
        idHash,
        userId: user.id,
        csrfToken: randomBytes(32).toString('base64url'),
        expiresAt: new Date(at + lifetime * 1000),
        lastSeenAt: new Date(at),
        issuer: provider?.issuer ?? null,
        refreshTokenSealed: provider?.refreshToken ? key.seal('refresh-token', provider.refreshToken, idHash) : null,
        checkedAt: provider ? new Date(at) : null,
        apiTokenId: 'tokenId' in user ? user.tokenId : null,
      });
      setCookie(res, SESSION_COOKIE, cookie, scope, lifetime);
    },

    authenticate: (req, res) => authenticate(req, res, req.get('x-csrf-token'), false),

    authenticateForm: (req, res, field) => authenticate(req, res, field, true),

    sessionOf: (req) => found.get(req),

    async end(req, res) {
      const session = found.get(req);
      if (session) await store.deleteSession(session.idHash);
      clearCookie(res, SESSION_COOKIE, scope);
    },

    sameOrigin,
  };
}
