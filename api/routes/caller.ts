/** Who is calling: the bearer check that finds the user, and what route handlers ask of that user. */
import type { Request, RequestHandler } from 'express';
import { NotFoundError } from '../../common/errors';
import type { TrustedProxies } from '../../common/client-address';
import type { Actor } from '../../contracts/lifecycle';
import type { GitspaceRow, UserRow } from '../../db/schema';
import type { Store } from '../../db/store';
import { SessionRefusal, type SessionService } from '../auth/sessions';
import type { createAuthenticator } from '../limits';

type Authenticated = Request & { user?: UserRow };

/**
 * Middleware: the bearer check (api/limits.ts) for the client the trusted proxies name, or, for a request without an
 * `Authorization` header that carries the dashboard's session cookie, the session check (api/auth/sessions.ts, CSRF
 * included); the user either finds is the caller. 401, 403 `csrf` or 429 otherwise.
 */
export function authenticate(
  authenticator: ReturnType<typeof createAuthenticator>,
  trustedProxies: TrustedProxies,
  sessions?: SessionService,
): RequestHandler {
  return (req, res, next) => {
    const client = trustedProxies.clientOf(req.socket.remoteAddress ?? '', req.get('x-forwarded-for'));
    const check =
      sessions && req.headers.authorization === undefined && sessions.hasCookie(req)
        ? sessions.authenticate(req, res)
        : authenticator.authenticate(req.headers.authorization, client);
    check.then(
      (user) => {
        (req as Authenticated).user = user;
        next();
      },
      (error: unknown) => {
        if (!(error instanceof SessionRefusal)) return next(error);
        res.status(error.status).json({ error: { code: error.code, message: error.message } });
      },
    );
  };
}

/** The authenticated caller (only on a route that needs a token). */
export const userOf = (req: Request): UserRow => (req as Authenticated).user!;

/** The caller as the actor of what it changes (DESIGN.md §8). */
export const actorOf = (req: Request): Actor => {
  const user = userOf(req);
  return { type: 'user', id: user.id, name: user.name };
};

/** The gitspace `:id` names, if the caller may see it: the admin sees all, a member only their own. */
export async function visibleGitspace(req: Request, store: Store): Promise<GitspaceRow> {
  const gitspace = await store.getGitspace(String(req.params.id));
  const user = userOf(req);
  // Another owner's gitspace is reported as absent, so ids cannot be probed.
  if (user.role !== 'admin' && gitspace.ownerId !== user.id) throw new NotFoundError('gitspace', String(req.params.id));
  return gitspace;
}

/**
 * The user `:id` names (`me`: the caller) if the caller may manage what is theirs (tokens, SSH keys): themselves, or anyone
 * for an administrator. Another member is answered 404 like an absent or removed user, so ids cannot be probed.
 */
export async function managedUser(req: Request, store: Store): Promise<UserRow> {
  const caller = userOf(req);
  const id = String(req.params.id);
  if (id === 'me' || id === caller.id) return caller;
  if (caller.role !== 'admin') throw new NotFoundError('user', id);
  return store.getUser(id);
}
