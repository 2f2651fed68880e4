import type { Request } from 'express';
import type { Logger } from '../../common/logger';
import type { Store } from '../../db/store';
import type { Authenticator } from '../limits';
import { LOGIN_TTL_SECONDS } from './login-state';
import { createOidcRelyingParty, type OidcRelyingParty } from './oidc';
import { SessionKey } from './session-key';
import { createSessionService, type SessionService } from './sessions';
import { DEFAULT_SESSION_SETTINGS, type SignInSettings } from './settings';

/** How people sign in to the dashboard (api/routes/auth.ts) and how their sessions are checked (api/routes/caller.ts). */
export interface SignIn {
  settings: SignInSettings;
  key: SessionKey;
  /** The relying party of the configured identity provider; absent when none is configured. */
  oidc?: OidcRelyingParty;
  sessions: SessionService;
  /** GET /auth/options: the ways to sign in this installation offers. */
  options(): { oidc: boolean; token: boolean; providerName?: string };
  /** The user of an API token given to POST /auth/token, with the bearer check's slow-down (api/limits.ts). */
  userOfToken(req: Request, token: string): ReturnType<Authenticator['checkToken']>;
  /**
   * A guess at a `gitspaces login --web` code from this request's client, with the bearer check's slow-down: 429 when
   * that client has no failure allowance left; `refund` when the guess was right.
   */
  takeGuess(req: Request): { refund(): void };
  /** The clock sign-in runs on (tests move it). */
  now(): number;
  /** True the first time a sign-in's state comes back, false after: a sign-in cookie is good for one callback. */
  consumeLogin(state: string): boolean;
}

/** What createApp is given: the settings main read, and the key main loaded (a key of its own when absent). */
export interface SignInConfig {
  settings: SignInSettings;
  key?: SessionKey;
}

/** The API as it signs nobody in through a provider and has no public URL of its own (tests, the API alone). */
export const TOKEN_ONLY_SIGN_IN: SignInConfig = {
  settings: { publicUrl: 'http://localhost', publicUrlConfigured: false, session: DEFAULT_SESSION_SETTINGS },
};

export function createSignIn(options: {
  config: SignInConfig;
  store: Store;
  authenticator: Authenticator;
  /** The client address the bearer check's slow-down counts by. */
  clientAddress(req: Request): string;
  logger: Logger;
  now?: () => number;
}): SignIn {
  const { settings } = options.config;
  const key = options.config.key ?? SessionKey.random();
  const now = options.now ?? Date.now;
  const oidc = settings.oidc && createOidcRelyingParty(settings.oidc, options.logger.child('oidc'));
  // The states of this process's sign-ins that came back, until their cookie could not be used any more anyway.
  const consumed = new Map<string, number>();
  return {
    settings,
    key,
    ...(oidc ? { oidc } : {}),
    sessions: createSessionService({
      store: options.store,
      settings: settings.session,
      key,
      publicUrl: settings.publicUrl,
      publicUrlConfigured: settings.publicUrlConfigured,
      ...(oidc ? { oidc } : {}),
      spendRequest: options.authenticator.spendRequest,
      logger: options.logger.child('sessions'),
      now,
    }),
    options: () => ({
      oidc: oidc !== undefined,
      token: true,
      ...(settings.oidc?.providerName ? { providerName: settings.oidc.providerName } : {}),
    }),
    userOfToken: (req, token) => options.authenticator.checkToken(token, options.clientAddress(req)),
    now,
    takeGuess: (req) => options.authenticator.takeGuess(options.clientAddress(req)),
    consumeLogin(state) {
      const at = now();
      for (const [seen, until] of consumed) if (until <= at) consumed.delete(seen);
      if (consumed.has(state)) return false;
      consumed.set(state, at + LOGIN_TTL_SECONDS * 1000);
      return true;
    },
  };
}
