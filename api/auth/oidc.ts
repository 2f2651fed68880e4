// openid-client is an ES module: its types here, the module itself loaded with import() on first use.
import type * as OpenIdClient from 'openid-client' with { 'resolution-mode': 'import' };
import type { Logger } from '../../common/logger';
import { isLoopbackHost, type OidcSettings } from './settings';

/** What the API keeps between sending the browser to the provider and its coming back (api/auth/login-state.ts). */
export interface LoginState {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** The dashboard path to land on once signed in (api/auth/return-to.ts). */
  returnTo: string;
}

/** Who the provider says signed in, from the ID token and the userinfo endpoint. */
export interface ProviderIdentity {
  /** The issuer as the provider's discovery document states it. */
  issuer: string;
  subject: string;
  /** Only an address the provider says it verified. */
  verifiedEmail?: string;
  /** A name to start from when the user is created at their first sign-in. */
  preferredName?: string;
  groups: string[];
  /** Kept (sealed) to ask the provider later whether the user still exists; absent when it issued none. */
  refreshToken?: string;
}

/** Thrown when the sign-in cannot go on: the provider refused it, or its answer did not check out (400 or 403). */
export class SignInRefusedError extends Error {
  constructor(
    readonly status: 400 | 403,
    message: string,
  ) {
    super(message);
    this.name = 'SignInRefusedError';
  }
}

/** Thrown when the identity provider could not be reached or failed (502 at sign-in, 503 at a session's recheck). */
export class IdentityProviderUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdentityProviderUnavailableError';
  }
}

export interface OidcRelyingParty {
  settings: OidcSettings;
  /** The issuer as the provider's discovery document states it (what identities and sessions record). */
  issuer(): Promise<string>;
  /** The provider's authorization URL for a new sign-in (authorization code, PKCE S256, state, nonce). */
  startLogin(returnTo: string): Promise<{ url: string; login: LoginState }>;
  /** Exchanges the code the provider sent back (`callbackQuery`) after checking it against the login's state. */
  finishLogin(callbackQuery: string, login: LoginState): Promise<ProviderIdentity>;
  /**
   * Asks the provider whether the user still exists, with a refresh-token grant: the refresh token to keep (rotated or
   * not), SignInRefusedError when the provider refuses, IdentityProviderUnavailableError when it does not answer.
   */
  confirm(refreshToken: string): Promise<{ refreshToken: string }>;
}

type OpenId = typeof OpenIdClient;

/** Seconds every call to the provider may take. */
const PROVIDER_TIMEOUT_SECONDS = 10;

/**
 * The API as an OpenID Connect relying party, with openid-client. The provider's discovery document is read on first
 * use (and again after a failure), so the API starts while the provider is away; openid-client is an ES module,
 * loaded then too.
 */
export function createOidcRelyingParty(settings: OidcSettings, logger: Logger): OidcRelyingParty {
  let discovered: Promise<{ openId: OpenId; config: OpenIdClient.Configuration; scope: string }> | undefined;

  const connect = () =>
    (discovered ??= (async () => {
      const openId = await import('openid-client');
      const loopback = isLoopbackHost(new URL(settings.issuer).hostname);
      const discovered = await openId
        .discovery(new URL(settings.issuer), settings.clientId, settings.clientSecret, undefined, {
          timeout: PROVIDER_TIMEOUT_SECONDS,
          // http only for a provider on this host (settings.ts refuses it elsewhere).
          ...(loopback ? { execute: [openId.allowInsecureRequests] } : {}),
        })
        .catch((error: unknown) => {
          throw unavailable(`its discovery document at ${settings.issuer} could not be read`, error);
        });
      // The client secret in a Basic header, the method every provider must accept (OpenID Connect's default), unless
      // the provider says it takes only others (openid-client's own default: in the body).
      const server = discovered.serverMetadata();
      const methods = server.token_endpoint_auth_methods_supported;
      let config = discovered;
      if (!methods || methods.includes('client_secret_basic')) {
        const basic = openId.ClientSecretBasic(settings.clientSecret);
        config = new openId.Configuration(server, settings.clientId, settings.clientSecret, basic);
        config.timeout = PROVIDER_TIMEOUT_SECONDS;
        if (loopback) openId.allowInsecureRequests(config);
      }
      // offline_access asks for the refresh token the recheck needs; the groups claim may need its own scope.
      const offered = new Set(config.serverMetadata().scopes_supported ?? []);
      const scope = ['openid', 'email', 'profile', 'offline_access', settings.groupsClaim.split('.')[0]!]
        .filter((name, index) => index < 3 || offered.has(name))
        .join(' ');
      logger.info('identity provider discovered', { issuer: config.serverMetadata().issuer, scope });
      return { openId, config, scope };
    })().catch((error: unknown) => {
      discovered = undefined;
      throw error;
    }));

  return {
    settings,

    issuer: async () => (await connect()).config.serverMetadata().issuer,

    async startLogin(returnTo) {
      const { openId, config, scope } = await connect();
      const login: LoginState = {
        state: openId.randomState(),
        nonce: openId.randomNonce(),
        codeVerifier: openId.randomPKCECodeVerifier(),
        returnTo,
      };
      const url = openId.buildAuthorizationUrl(config, {
        redirect_uri: settings.redirectUrl,
        scope,
        state: login.state,
        nonce: login.nonce,
        code_challenge: await openId.calculatePKCECodeChallenge(login.codeVerifier),
        code_challenge_method: 'S256',
      });
      return { url: url.href, login };
    },

    async finishLogin(callbackQuery, login) {
      const { openId, config } = await connect();
      // The URL the provider sent the browser to, as registered: behind a proxy the request's own URL differs.
      const currentUrl = new URL(settings.redirectUrl);
      currentUrl.search = callbackQuery;
      try {
        const tokens = await openId.authorizationCodeGrant(config, currentUrl, {
          pkceCodeVerifier: login.codeVerifier,
          expectedState: login.state,
          expectedNonce: login.nonce,
          idTokenExpected: true,
        });
        const idToken = tokens.claims()!;
        // Providers that follow the spec to the letter put e-mail and groups in userinfo only, not in the ID token.
        const userInfo = config.serverMetadata().userinfo_endpoint
          ? await openId.fetchUserInfo(config, tokens.access_token, idToken.sub)
          : {};
        const claims: Record<string, unknown> = { ...idToken, ...userInfo };
        const email = typeof claims.email === 'string' ? claims.email : undefined;
        const verified = claims.email_verified === true || claims.email_verified === 'true';
        const preferredName = [claims.preferred_username, email?.split('@')[0], claims.name].find(
          (value): value is string => typeof value === 'string' && value.trim() !== '',
        );
        return {
          issuer: config.serverMetadata().issuer,
          subject: idToken.sub,
          ...(email && verified ? { verifiedEmail: email } : {}),
          ...(preferredName ? { preferredName } : {}),
          groups: groupsIn(claims, settings.groupsClaim),
          ...(tokens.refresh_token ? { refreshToken: tokens.refresh_token } : {}),
        };
      } catch (error) {
        throw signInFailure(openId, error);
      }
    },

    async confirm(refreshToken) {
      const { openId, config } = await connect();
      try {
        const tokens = await openId.refreshTokenGrant(config, refreshToken);
        return { refreshToken: tokens.refresh_token ?? refreshToken };
      } catch (error) {
        if (error instanceof openId.ResponseBodyError && error.status < 500) {
          throw new SignInRefusedError(403, `the identity provider no longer confirms this user (${error.error})`);
        }
        throw unavailable('it could not confirm the session', error);
      }
    },
  };
}

/** The groups a claim lists: an array of names, or one name; `a.b` reaches into an object claim. */
function groupsIn(claims: Record<string, unknown>, claim: string): string[] {
  let value: unknown = claims;
  for (const key of claim.split('.')) value = (value as Record<string, unknown> | undefined)?.[key];
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((group): group is string => typeof group === 'string') : [];
}

/** Why a sign-in failed, as the page at the callback should say it. */
function signInFailure(openId: OpenId, error: unknown): Error {
  if (error instanceof openId.AuthorizationResponseError) {
    const description = error.error_description ? `: ${error.error_description}` : '';
    return new SignInRefusedError(
      error.error === 'access_denied' ? 403 : 400,
      `the identity provider refused the sign-in (${error.error}${description})`,
    );
  }
  if (error instanceof openId.ResponseBodyError && error.status < 500) {
    const description = error.error_description ? `: ${error.error_description}` : '';
    return new SignInRefusedError(400, `the identity provider refused the sign-in code (${error.error}${description})`);
  }
  if (error instanceof openId.ClientError && !isTransportCode(error.code)) {
    return new SignInRefusedError(400, `the identity provider's answer did not check out (${error.message})`);
  }
  return unavailable('the sign-in could not be completed', error);
}

/** openid-client's codes for a provider that did not answer properly (a proxy's page, a timeout), or none at all. */
const TRANSPORT_CODES = new Set([
  'OAUTH_RESPONSE_IS_NOT_CONFORM',
  'OAUTH_RESPONSE_IS_NOT_JSON',
  'OAUTH_TIMEOUT',
  'OAUTH_ABORT',
]);
const isTransportCode = (code: string | undefined) => code === undefined || TRANSPORT_CODES.has(code);

function unavailable(what: string, error: unknown): IdentityProviderUnavailableError {
  const reason = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : '';
  return new IdentityProviderUnavailableError(
    `The identity provider did not answer: ${what}${reason ? ` (${reason})` : ''}.`,
  );
}
