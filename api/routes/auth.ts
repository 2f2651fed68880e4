/**
 * Signing in to the dashboard, outside /api/v1: through the company's OpenID Connect provider (login, then the
 * provider's callback), or with an API token (the embedded default has no provider); and signing out. Each sign-in
 * ends in a session cookie (api/auth/sessions.ts).
 */
import type { Response } from 'express';
import { clearCookie, cookieOf, setCookie } from '../auth/cookies';
import {
  LOGIN_COOKIE,
  LOGIN_COOKIE_PATH,
  LOGIN_TTL_SECONDS,
  openLoginState,
  safeReturnTo,
  sealLoginState,
} from '../auth/login-state';
import { IdentityProviderUnavailableError, SignInRefusedError } from '../auth/oidc';
import { userForIdentity } from '../auth/accounts';
import { sendPage } from '../auth/pages';
import type { SignIn } from '../auth/sign-in';
import { defineRoute } from '../route-table';
import { SignInOptions, TokenSignInBody } from '../schemas';
import { userOf } from './caller';

const loginCookieScope = (signIn: SignIn) => ({
  path: LOGIN_COOKIE_PATH,
  secure: signIn.settings.publicUrl.startsWith('https:'),
});

/** The page a failed sign-in shows, with a link to start again (back to where it was going, when that is known). */
function signInFailed(res: Response, status: number, message: string, returnTo = '/') {
  sendPage(res, status, {
    title: 'Sign-in failed',
    message: `${message.charAt(0).toUpperCase()}${message.slice(1)}${/[.!?]$/.test(message) ? '' : '.'}`,
    link: { href: `/auth/login?return_to=${encodeURIComponent(returnTo)}`, text: 'Sign in again' },
  });
}

function noIdentityProvider(res: Response) {
  sendPage(res, 404, {
    title: 'No identity provider',
    message: 'Sign-in through an identity provider is not configured here: sign in with an API token.',
    link: { href: '/', text: 'Back to the dashboard' },
  });
}

export const authRoutes = [
  defineRoute({
    method: 'get',
    path: '/auth/options',
    summary: 'The ways to sign in this installation offers (for the sign-in page)',
    access: 'public',
    status: 200,
    response: SignInOptions,
    handle: async ({ services }) => services.signIn.options(),
  }),
  // A browser navigation: to the identity provider, with the sign-in's state in a sealed cookie for the callback.
  defineRoute({
    method: 'get',
    path: '/auth/login',
    summary: 'Sign in through the identity provider, then land on `return_to` (a path of this site)',
    access: 'public',
    status: 303,
    handle: async ({ req, res, services }) => {
      const { oidc, key } = services.signIn;
      if (!oidc) return noIdentityProvider(res);
      const returnTo = safeReturnTo(req.query.return_to);
      let started: Awaited<ReturnType<typeof oidc.startLogin>>;
      try {
        started = await oidc.startLogin(returnTo);
      } catch (error) {
        if (!(error instanceof IdentityProviderUnavailableError)) throw error;
        signInFailed(res, 502, error.message, returnTo);
        return;
      }
      const sealed = sealLoginState(key, started.login, Date.now());
      setCookie(res, LOGIN_COOKIE, sealed, loginCookieScope(services.signIn), LOGIN_TTL_SECONDS);
      res.set({ 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' }).redirect(303, started.url);
    },
  }),
  // Where the provider sends the browser back: the code is exchanged only for the sign-in this browser started.
  defineRoute({
    method: 'get',
    path: '/auth/callback',
    summary: "The identity provider's answer: a session cookie and a redirect, or a page saying what went wrong",
    access: 'public',
    status: 303,
    handle: async ({ req, res, services }) => {
      const { oidc, key, sessions, settings } = services.signIn;
      if (!oidc) return noIdentityProvider(res);
      const login = openLoginState(key, cookieOf(req, LOGIN_COOKIE), Date.now());
      clearCookie(res, LOGIN_COOKIE, loginCookieScope(services.signIn));
      if (!login) {
        signInFailed(res, 400, 'this sign-in expired or was started in another browser');
        return;
      }
      if (req.query.state !== login.state || !services.signIn.consumeLogin(login.state)) {
        signInFailed(res, 400, 'the answer does not belong to the sign-in this browser started', login.returnTo);
        return;
      }
      try {
        const query = req.originalUrl.slice(req.originalUrl.indexOf('?') + 1);
        const identity = await oidc.finishLogin(query, login);
        const user = await userForIdentity(services.store, settings.oidc!, identity);
        await sessions.start(res, user, {
          issuer: identity.issuer,
          ...(identity.refreshToken ? { refreshToken: identity.refreshToken } : {}),
        });
        services.logger.info('signed in through the identity provider', { userId: user.id });
        res.set('cache-control', 'no-store').redirect(303, login.returnTo);
      } catch (error) {
        if (error instanceof SignInRefusedError) signInFailed(res, error.status, error.message, login.returnTo);
        else if (error instanceof IdentityProviderUnavailableError) signInFailed(res, 502, error.message);
        else throw error;
        services.logger.info('a sign-in failed', { reason: (error as Error).message });
      }
    },
  }),
  // From the dashboard's own page (JSON, so a form of another site cannot send it), and only from its own origin.
  defineRoute({
    method: 'post',
    path: '/auth/token',
    summary: 'Sign in with an API token: a session cookie (204), or 401',
    access: 'public',
    body: TokenSignInBody,
    status: 204,
    handle: async ({ req, res, body, services }) => {
      const { sessions } = services.signIn;
      if (!sessions.sameOrigin(req)) {
        res.status(403).json({ error: { code: 'csrf', message: 'sign in from the dashboard of this site' } });
        return;
      }
      await sessions.start(res, await services.signIn.userOfToken(req, body.token));
    },
  }),
  defineRoute({
    method: 'post',
    path: '/auth/logout',
    summary: 'End this session (a state-changing request: it needs the CSRF header)',
    access: 'user',
    status: 204,
    handle: async ({ req, res, services }) => {
      services.logger.debug('signed out', { userId: userOf(req).id });
      await services.signIn.sessions.end(req, res);
    },
  }),
];
