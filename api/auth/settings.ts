import type { ConfigReader } from '../../common/config';
import { SessionKey } from './session-key';

/** How people who are not yet known may sign in through the identity provider. */
export const SIGN_UP_MODES = ['invite', 'open'] as const;
export type SignUpMode = (typeof SIGN_UP_MODES)[number];

/** Sign-in through the company's OpenID Connect provider (authorization code + PKCE). */
export interface OidcSettings {
  /** GITSPACES_OIDC_ISSUER: the issuer identifier, exactly as the provider's discovery document states it. */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** GITSPACES_OIDC_REDIRECT_URL: `<public URL>/auth/callback` unless given (it must be registered at the provider). */
  redirectUrl: string;
  /** GITSPACES_OIDC_PROVIDER_NAME: what the sign-in button names ("Sign in with …"); the dashboard's words if unset. */
  providerName?: string;
  /** GITSPACES_OIDC_ADMIN_GROUP: members of this group are administrators, others members, decided at each sign-in. */
  adminGroup?: string;
  /** GITSPACES_OIDC_GROUPS_CLAIM: the claim listing the user's groups (a dotted path reaches into an object). */
  groupsClaim: string;
  /** GITSPACES_OIDC_SIGNUP: `invite` (only users an administrator created with a matching e-mail) or `open`. */
  signUp: SignUpMode;
  /** GITSPACES_OIDC_RECHECK_SECONDS: how often a session asks the provider whether its user still exists. */
  recheckSeconds: number;
}

export interface SessionSettings {
  /** GITSPACES_SESSION_TTL_SECONDS: a session's absolute lifetime. */
  ttlSeconds: number;
  /** GITSPACES_SESSION_IDLE_SECONDS: a session unused this long has ended. */
  idleSeconds: number;
}

/** How people sign in to the dashboard, and what its session tells the page. */
export interface SignInSettings {
  /**
   * GITSPACES_PUBLIC_URL: where browsers reach the API and its dashboard (behind a proxy, the proxy's URL). Its origin
   * is the one state-changing requests must come from, and https makes every cookie Secure.
   */
  publicUrl: string;
  /** True when GITSPACES_PUBLIC_URL was given: only its origin is then accepted, not the request's Host. */
  publicUrlConfigured: boolean;
  oidc?: OidcSettings;
  session: SessionSettings;
  /** GITSPACES_SESSION_KEY: seals refresh tokens and the sign-in state (api/auth/session-key.ts); else in the data dir. */
  sessionKey?: string;
  /** GITSPACES_CLI_LOGIN_CODE_TTL_SECONDS: how long `gitspaces login --web` has to exchange its one-time code. */
  cliLoginCodeTtlSeconds?: number;
  /** GITSPACES_TEMPORAL_UI_URL: the Temporal Web UI, for the dashboard's links to a gitspace's workflow runs. */
  temporalUiUrl?: string;
  /** The Temporal namespace of those runs. */
  temporalNamespace?: string;
}

export const DEFAULT_SESSION_SETTINGS: SessionSettings = { ttlSeconds: 12 * 3600, idleSeconds: 3600 };
export const DEFAULT_OIDC_RECHECK_SECONDS = 300;
export const DEFAULT_CLI_LOGIN_CODE_TTL_SECONDS = 60;

/**
 * The sign-in settings, read in the API's `main` (every problem joins the others). `apiUrl` is where the API listens,
 * the public URL when none is configured.
 */
export function readSignInSettings(config: ConfigReader, apiUrl: string): SignInSettings {
  const configuredPublicUrl = config.url('GITSPACES_PUBLIC_URL');
  const publicUrl = configuredPublicUrl ?? apiUrl;
  const session = {
    ttlSeconds: config.positiveInt('GITSPACES_SESSION_TTL_SECONDS', DEFAULT_SESSION_SETTINGS.ttlSeconds),
    idleSeconds: config.positiveInt('GITSPACES_SESSION_IDLE_SECONDS', DEFAULT_SESSION_SETTINGS.idleSeconds),
  };
  const oidc = config.parsed('GITSPACES_OIDC_ISSUER', (issuer) =>
    issuer === undefined ? undefined : checkedIssuer(issuer),
  );
  const clientId = config.string('GITSPACES_OIDC_CLIENT_ID');
  const clientSecret = config.string('GITSPACES_OIDC_CLIENT_SECRET');
  const redirectUrl = config.url('GITSPACES_OIDC_REDIRECT_URL', `${publicUrl}/auth/callback`)!;
  const optional = {
    providerName: config.string('GITSPACES_OIDC_PROVIDER_NAME'),
    adminGroup: config.string('GITSPACES_OIDC_ADMIN_GROUP'),
    groupsClaim: config.string('GITSPACES_OIDC_GROUPS_CLAIM', 'groups'),
    signUp: config.oneOf('GITSPACES_OIDC_SIGNUP', SIGN_UP_MODES, 'invite'),
    recheckSeconds: config.positiveInt('GITSPACES_OIDC_RECHECK_SECONDS', DEFAULT_OIDC_RECHECK_SECONDS),
  };
  const why = 'sign-in through an identity provider needs its issuer, client id and client secret';
  if (config.string('GITSPACES_OIDC_ISSUER') || clientId || clientSecret) {
    if (!oidc) config.required('GITSPACES_OIDC_ISSUER', why);
    if (!clientId) config.required('GITSPACES_OIDC_CLIENT_ID', why);
    if (!clientSecret) config.required('GITSPACES_OIDC_CLIENT_SECRET', why);
  }
  const temporalUiUrl = config.url('GITSPACES_TEMPORAL_UI_URL');
  const cliLoginCodeTtlSeconds = config.positiveInt(
    'GITSPACES_CLI_LOGIN_CODE_TTL_SECONDS',
    DEFAULT_CLI_LOGIN_CODE_TTL_SECONDS,
  );
  const sessionKey = config.parsed('GITSPACES_SESSION_KEY', (raw) =>
    raw === undefined ? undefined : (SessionKey.parse(raw), raw),
  );
  return {
    publicUrl,
    publicUrlConfigured: configuredPublicUrl !== undefined,
    session,
    cliLoginCodeTtlSeconds,
    ...(oidc && clientId && clientSecret
      ? {
          oidc: {
            issuer: oidc,
            clientId,
            clientSecret,
            redirectUrl,
            groupsClaim: optional.groupsClaim,
            signUp: optional.signUp,
            recheckSeconds: optional.recheckSeconds,
            ...(optional.providerName ? { providerName: optional.providerName } : {}),
            ...(optional.adminGroup ? { adminGroup: optional.adminGroup } : {}),
          },
        }
      : {}),
    ...(sessionKey ? { sessionKey } : {}),
    ...(temporalUiUrl ? { temporalUiUrl } : {}),
  };
}

/** An issuer URL: https, or http on loopback only (a provider beside the API in development and tests). */
function checkedIssuer(issuer: string): string {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new Error(`must be the identity provider's issuer URL, got '${issuer}'`);
  }
  if (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname))) return issuer;
  throw new Error(`must be an https:// URL (http:// only on loopback), got '${issuer}'`);
}

export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}
