/**
 * `gitspaces login --web` (RFC 8252, a native app's loopback redirect, with PKCE S256): the command line listens on
 * 127.0.0.1, sends the browser to GET /auth/cli, the signed-in user consents, the browser is sent back to the command
 * line with a one-time code, and the command line exchanges that code and its PKCE verifier for an API token at
 * POST /auth/cli/token. What the routes (api/routes/cli-login.ts) check, and the consent page, are here.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Response } from 'express';
import { escapeHtml } from '../../common/html';
import { sendHtml } from './pages';

/** What the command line asks for, as GET /auth/cli and its consent form carry it. */
export interface CliLoginRequest {
  /** `http://127.0.0.1:<port>/callback`: the command line's listener. */
  redirectUri: string;
  /** base64url(SHA-256(verifier)), 43 characters. */
  codeChallenge: string;
  /** Sent back unchanged with the code: the command line accepts only its own. */
  state: string;
  /** The command line's host name, to show on the consent page and to name the token by. */
  clientName: string;
}

/**
 * Exactly the loopback callback: http, 127.0.0.1, a port, the path /callback; no user, query or fragment. Not [::1]:
 * the consent page's form-action could not allow it (Chromium refuses an IPv6 address as a CSP source).
 */
const LOOPBACK_REDIRECT = /^http:\/\/127\.0\.0\.1:([1-9][0-9]{0,4})\/callback$/;
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
const STATE = /^[A-Za-z0-9._~-]{16,256}$/;
const CLIENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** RFC 7636: 43 to 128 unreserved characters. */
const CODE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

/**
 * The request GET /auth/cli (its query) or the consent form (its body) carries, or why it is refused: each parameter
 * must come once, as a string, in the only form the command line sends.
 */
export function parseCliLoginRequest(
  params: Record<string, unknown>,
): { request: CliLoginRequest } | { problem: string } {
  const text = (name: string) => (typeof params[name] === 'string' ? params[name] : undefined);
  const redirectUri = text('redirect_uri');
  const port = redirectUri && LOOPBACK_REDIRECT.exec(redirectUri)?.[1];
  if (!redirectUri || !port || Number(port) > 65535) {
    return {
      problem:
        'redirect_uri must be http://127.0.0.1:<port>/callback: a sign-in code is only ever sent to the command line on your own machine',
    };
  }
  if (text('code_challenge_method') !== 'S256') return { problem: 'code_challenge_method must be S256' };
  const codeChallenge = text('code_challenge');
  if (!codeChallenge || !S256_CHALLENGE.test(codeChallenge)) {
    return { problem: 'code_challenge must be the 43 base64url characters of an S256 challenge' };
  }
  const state = text('state');
  if (!state || !STATE.test(state)) return { problem: 'state must be 16 to 256 letters, digits or -._~' };
  const clientName = text('client_name');
  if (!clientName || !CLIENT_NAME.test(clientName)) {
    return { problem: 'client_name must be a host name (letters, digits, dots, dashes, underscores)' };
  }
  return { request: { redirectUri, codeChallenge, state, clientName } };
}

/** Whether a PKCE verifier is well formed (RFC 7636). */
export const isCodeVerifier = (value: string): boolean => CODE_VERIFIER.test(value);

/** The S256 challenge of a PKCE verifier: base64url(SHA-256(verifier)). */
export const s256 = (verifier: string): string => createHash('sha256').update(verifier).digest('base64url');

/** A new one-time code: 32 random bytes. The database keeps only its hash. */
export const newCliCode = (): string => randomBytes(32).toString('base64url');

/** `cli <client name> <date>`: what the token is called in the user's list, so they know which one to revoke. */
export const cliTokenName = (clientName: string, at: number): string =>
  `cli ${clientName} ${new Date(at).toISOString().slice(0, 10)}`;

/** Where the browser goes once the user answered: the command line's callback, with the code or the refusal. */
export function callbackUrl(request: CliLoginRequest, answer: { code: string } | { error: 'access_denied' }): string {
  const url = new URL(request.redirectUri);
  if ('code' in answer) url.searchParams.set('code', answer.code);
  else url.searchParams.set('error', answer.error);
  url.searchParams.set('state', request.state);
  return url.href;
}

/**
 * The consent page: no scripts, no frames (it must not be clickjacked), and forms only to itself and, for the redirect
 * that follows its form, to a loopback listener (Chromium applies form-action to that redirect).
 */
export const CONSENT_PAGE_POLICY =
  "default-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' http://127.0.0.1:*";

/** "Sign in the command line on <client> as <user>?", with a form that posts the request back with the CSRF token. */
export function sendConsentPage(
  res: Response,
  request: CliLoginRequest,
  user: { name: string },
  csrfToken: string,
): void {
  const hidden = (name: string, value: string) => `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;
  const port = new URL(request.redirectUri).port;
  sendHtml(res, 200, {
    title: 'Sign in the command line',
    policy: CONSENT_PAGE_POLICY,
    // With no referrer at all, Chromium sends `Origin: null` with the form, which the Origin check must refuse.
    referrerPolicy: 'same-origin',
    body: [
      `<h1>Sign in the command line on ${escapeHtml(request.clientName)} as ${escapeHtml(user.name)}?</h1>`,
      '<p>Continue only if you just ran <code>gitspaces login --web</code> yourself. The command line gets an API',
      `token of yours through port ${escapeHtml(port)} of this machine; you can revoke it like any other.</p>`,
      '<form method="post" action="/auth/cli">',
      hidden('redirect_uri', request.redirectUri),
      hidden('code_challenge', request.codeChallenge),
      hidden('code_challenge_method', 'S256'),
      hidden('state', request.state),
      hidden('client_name', request.clientName),
      hidden('csrf_token', csrfToken),
      '<button type="submit" name="decision" value="allow">Sign in</button>',
      '<button type="submit" name="decision" value="deny">Cancel</button>',
      '</form>',
    ],
  });
}
