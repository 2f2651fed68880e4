/**
 * `gitspaces login --web`, outside /api/v1 (api/auth/cli-login.ts says how it works): the consent page, its form, and
 * the exchange of the one-time code for an API token.
 */
import type { Request, Response } from 'express';
import { z } from 'zod';
import { AuthenticationError } from '../../common/errors';
import { hashToken } from '../../db/store';
import {
  callbackUrl,
  cliTokenName,
  isCodeVerifier,
  newCliCode,
  parseCliLoginRequest,
  s256,
  sendConsentPage,
  type CliLoginRequest,
} from '../auth/cli-login';
import { sendPage } from '../auth/pages';
import { SessionRefusal } from '../auth/sessions';
import { DEFAULT_CLI_LOGIN_CODE_TTL_SECONDS } from '../auth/settings';
import { defineRoute, type RouteServices } from '../route-table';
import { presentUser } from './presenters';

/** POST /auth/cli/token's body (JSON, or a form as RFC 6749 clients send it). */
const CliTokenBody = z.object({
  code: z.string().regex(/^[A-Za-z0-9_-]{1,256}$/, 'is not a sign-in code'),
  code_verifier: z.string().refine(isCodeVerifier, 'must be 43 to 128 letters, digits or -._~ (RFC 7636)'),
  redirect_uri: z.string().max(64),
});

const CliTokenResponse = z.object({ token: z.string(), user: z.object({ id: z.string(), name: z.string() }) });

/** What the user sees when the command line's request cannot be served: 400, and never a redirect. */
function refusedRequest(res: Response, problem: string) {
  sendPage(res, 400, {
    title: 'Not a sign-in of the command line',
    message: `This link cannot sign in a command line: ${problem}. Run gitspaces login --web again.`,
    link: { href: '/', text: 'Back to the dashboard' },
  });
}

/**
 * The signed-in user of the request's session, or undefined (after answering) when there is none: a GET goes to
 * sign-in and comes back, a POST (its session ended meanwhile, or a forged form) gets a page saying why.
 */
async function sessionUser(req: Request, res: Response, services: RouteServices, csrfField?: unknown) {
  const { sessions } = services.signIn;
  try {
    if (req.method !== 'GET') return await sessions.authenticateForm(req, res, csrfField);
    if (sessions.hasCookie(req)) return await sessions.authenticate(req, res);
  } catch (error) {
    if (req.method === 'GET' && error instanceof AuthenticationError) return signInFirst(req, res);
    if (!(error instanceof AuthenticationError || error instanceof SessionRefusal)) throw error;
    const status = error instanceof SessionRefusal ? error.status : 401;
    sendPage(res, status, {
      title: status === 403 ? 'Refused' : 'Not signed in',
      message: `${error.message.charAt(0).toUpperCase()}${error.message.slice(1)}. Run gitspaces login --web again.`,
      link: { href: '/', text: 'Back to the dashboard' },
    });
    return undefined;
  }
  return signInFirst(req, res);
}

/** To sign-in, and back to this very page once signed in. */
function signInFirst(req: Request, res: Response): undefined {
  res
    .set({ 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' })
    .redirect(303, `/auth/login?return_to=${encodeURIComponent(req.originalUrl)}`);
  return undefined;
}

const consentRequest = (res: Response, params: Record<string, unknown>): CliLoginRequest | undefined => {
  const parsed = parseCliLoginRequest(params);
  if ('request' in parsed) return parsed.request;
  refusedRequest(res, parsed.problem);
  return undefined;
};

export const cliLoginRoutes = [
  // A browser navigation the command line opened: never creates anything, only shows the consent page.
  defineRoute({
    method: 'get',
    path: '/auth/cli',
    summary: 'The consent page of `gitspaces login --web` (sign-in first when there is no session)',
    access: 'public',
    status: 200,
    handle: async ({ req, res, services }) => {
      const request = consentRequest(res, req.query);
      if (!request) return;
      const user = await sessionUser(req, res, services);
      if (!user) return;
      sendConsentPage(res, request, user, services.signIn.sessions.sessionOf(req)!.csrfToken);
    },
  }),
  // The consent form: the session, its CSRF token in the form and this site's Origin, then the code, once.
  defineRoute({
    method: 'post',
    path: '/auth/cli',
    summary: "The consent page's answer: a redirect to the command line with a one-time code (or its refusal)",
    access: 'public',
    status: 303,
    handle: async ({ req, res, services }) => {
      const form = (req.body ?? {}) as Record<string, unknown>;
      const request = consentRequest(res, form);
      if (!request) return;
      const user = await sessionUser(req, res, services, form.csrf_token);
      if (!user) return;
      res.set({ 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
      if (form.decision === 'deny') return res.redirect(303, callbackUrl(request, { error: 'access_denied' }));
      const code = newCliCode();
      const at = services.signIn.now();
      const ttlSeconds = services.signIn.settings.cliLoginCodeTtlSeconds ?? DEFAULT_CLI_LOGIN_CODE_TTL_SECONDS;
      await services.store.createCliAuthorization({
        codeHash: hashToken(code),
        userId: user.id,
        challenge: request.codeChallenge,
        redirectUri: request.redirectUri,
        clientName: request.clientName,
        expiresAt: new Date(at + ttlSeconds * 1000),
      });
      services.logger.info('a command line sign-in was allowed', { userId: user.id, client: request.clientName });
      res.redirect(303, callbackUrl(request, { code }));
    },
  }),
  // The command line's exchange: once per code, with the verifier of its challenge and the same redirect.
  defineRoute({
    method: 'post',
    path: '/auth/cli/token',
    summary: 'Exchange a `gitspaces login --web` code and its PKCE verifier for an API token (400 `invalid_grant`)',
    access: 'public',
    body: CliTokenBody,
    status: 200,
    response: CliTokenResponse,
    handle: async ({ req, res, body, services }) => {
      const guess = services.signIn.takeGuess(req);
      const at = services.signIn.now();
      const redemption = await services.store.redeemCliAuthorization({
        codeHash: hashToken(body.code),
        challenge: s256(body.code_verifier),
        redirectUri: body.redirect_uri,
        now: new Date(at),
        tokenName: (clientName) => cliTokenName(clientName, at),
      });
      res.set({ 'cache-control': 'no-store', pragma: 'no-cache' });
      if (redemption.outcome === 'issued') {
        guess.refund();
        services.logger.info('a command line signed in', { userId: redemption.user.id, tokenId: redemption.tokenId });
        return { token: redemption.token, user: presentUser(redemption.user) };
      }
      if (redemption.reason === 'replayed') {
        services.logger.warn('a command line sign-in code came back; the token it gave is revoked');
      }
      res.status(400).json({ error: { code: 'invalid_grant', message: REFUSALS[redemption.reason] } });
      return undefined;
    },
  }),
];

const REFUSALS = {
  unknown: 'this sign-in code is not known; run gitspaces login --web again',
  replayed: 'this sign-in code was used before; the token it gave is revoked: run gitspaces login --web again',
  expired: 'this sign-in code expired; run gitspaces login --web again',
  mismatch: 'this sign-in code was given for another verifier or redirect_uri',
  inactive: 'the user of this sign-in code is disabled or removed',
} as const;
