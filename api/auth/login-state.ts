import type { LoginState } from './oidc';
import type { SessionKey } from './session-key';

/** The consent page of `gitspaces login --web` (api/routes/cli-login.ts): a sign-in may land there. */
export const CLI_CONSENT_PATH = '/auth/cli';

/** The cookie that carries a sign-in from `/auth/login` to `/auth/callback`, sealed, for ten minutes at most. */
export const LOGIN_COOKIE = 'gitspaces_login';
export const LOGIN_COOKIE_PATH = '/auth/callback';
export const LOGIN_TTL_SECONDS = 600;

/** The login's state, nonce, PKCE verifier and destination, sealed so the browser can neither read nor change them. */
export function sealLoginState(key: SessionKey, login: LoginState, now: number): string {
  return key.seal('login-state', JSON.stringify({ ...login, startedAt: now }), LOGIN_COOKIE);
}

/** The login a cookie carries, or undefined when it is not one this API sealed or it is older than ten minutes. */
export function openLoginState(key: SessionKey, sealed: string | undefined, now: number): LoginState | undefined {
  const text = sealed && key.open('login-state', sealed, LOGIN_COOKIE);
  if (!text) return undefined;
  const { startedAt, ...login } = JSON.parse(text) as LoginState & { startedAt: number };
  return now - startedAt <= LOGIN_TTL_SECONDS * 1000 ? login : undefined;
}

/**
 * Where a sign-in may land: a path of this site, starting with one `/`. Anything that a browser could read as another
 * site (`//evil`, `/\evil`, a scheme, a tab or newline it would drop) or that leads back into sign-in goes to `/`; of
 * `/auth/`, only the consent page of `gitspaces login --web` (`/auth/cli`, which checks its own query).
 */
export function safeReturnTo(value: unknown): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
  if (typeof value !== 'string' || value.length > 2048 || !/^\/(?![/\\])[^\\\0-\x1f\x7f]*$/.test(value)) return '/';
  const base = new URL('http://gitspaces.invalid');
  const url = new URL(value, base);
  if (url.origin !== base.origin) return '/';
  if (url.pathname.startsWith('/auth/') && url.pathname !== CLI_CONSENT_PATH) return '/';
  return `${url.pathname}${url.search}${url.hash}`;
}
