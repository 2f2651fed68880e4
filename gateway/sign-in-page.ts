import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { escapeHtml } from '../common/html';
import type { Refusal } from './refusals';

/**
 * What a person's browser gets instead of `{"error":{"code":"token_missing",…}}` when it opens a gitspace without a
 * valid session (no token, or an invalid, expired or revoked one): a small page that says to sign in, with a link to
 * the dashboard's `/open/<gitspace id>`, which signs the user in and opens the gitspace again with a fresh token. Only
 * for a navigation: scripts and API clients keep the JSON error.
 */

/**
 * GITSPACES_DASHBOARD_URL as the page links to it: an http(s) URL without credentials, query or fragment, and
 * without a trailing slash.
 */
export function parseDashboardUrl(raw: string): string {
  const url = URL.canParse(raw) ? new URL(raw) : undefined;
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password) {
    throw new Error(`must be the dashboard's http(s) URL, such as https://gitspaces.example.com; got '${raw}'`);
  }
  if (url.search || url.hash) throw new Error(`must have no query or fragment; got '${raw}'`);
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

/** Whether a request is a browser opening a page: a navigation, or a GET or HEAD that asks for HTML. */
export function isBrowserNavigation(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  return req.headers['sec-fetch-mode'] === 'navigate' || /\btext\/html\b/i.test(req.headers.accept ?? '');
}

/** The refusals a sign-in answers: every 401 of the token check. */
export function wantsSignIn(refusal: Refusal): boolean {
  return refusal.status === 401;
}

/** Why the user must sign in again, by refusal code, in words for them (never the token or its error's details). */
const notSignedIn = (gitspace: string) => `You are not signed in to gitspace ${gitspace}.`;
const REASONS: Record<string, (gitspace: string) => string> = {
  token_missing: notSignedIn,
  token_expired: (gitspace) => `Your access to gitspace ${gitspace} has expired.`,
  token_invalid: (gitspace) => `Your access to gitspace ${gitspace} is not valid.`,
  token_revoked: (gitspace) => `Gitspace ${gitspace} was started again since you opened it.`,
};

const STYLE =
  'body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:12vh auto;padding:0 1.5rem;color:#1f2328}' +
  'h1{font-size:1.4rem}a{color:#0969da}code{font-size:.95em}' +
  '@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}a{color:#4493f8}}';

/** Nothing may load or run but the page's own style: no scripts, images, frames, forms or other sites. */
const POLICY = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`,
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The page's HTML. `gitspaceId` is the one the gateway routed (validated by routing); `dashboardUrl` the dashboard's
 * base URL, when the gateway knows it (without it, the page says where to open the gitspace from).
 */
export function signInPage(gitspaceId: string, refusal: Refusal, dashboardUrl: string | undefined): string {
  const id = escapeHtml(gitspaceId);
  const next = dashboardUrl
    ? `<p><a href="${escapeHtml(`${dashboardUrl}/open/${encodeURIComponent(gitspaceId)}`)}">Sign in and open the gitspace</a></p>`
    : '<p>Open it again from the Gitspaces dashboard, or with <code>gitspaces open</code> on the command line.</p>';
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="referrer" content="no-referrer">',
    `<title>Sign in to open this gitspace</title><style>${STYLE}</style></head>`,
    '<body><main>',
    '<h1>Sign in to open this gitspace</h1>',
    `<p>${(REASONS[refusal.code] ?? notSignedIn)(`<code>${id}</code>`)}</p>`,
    next,
    '</main></body>',
    '</html>',
    '',
  ].join('\n');
}

/** Sends the sign-in page with the refusal's status; a HEAD request gets its head only. */
export function sendSignInPage(
  req: IncomingMessage,
  res: ServerResponse,
  gitspaceId: string,
  refusal: Refusal,
  dashboardUrl: string | undefined,
): void {
  if (res.headersSent) return void res.destroy();
  const body = Buffer.from(signInPage(gitspaceId, refusal, dashboardUrl));
  res.writeHead(refusal.status, [
    'content-type',
    'text/html; charset=utf-8',
    'cache-control',
    'no-store',
    'content-security-policy',
    POLICY,
    'x-content-type-options',
    'nosniff',
    'x-frame-options',
    'DENY',
    'referrer-policy',
    'no-referrer',
    'www-authenticate',
    'Bearer',
    'content-length',
    String(body.length),
  ]);
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}
