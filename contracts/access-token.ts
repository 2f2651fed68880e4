/**
 * The gateway access token (DESIGN.md §4): one source of truth for its shape, shared by the control plane that signs
 * it (`api/access-tokens.ts`) and the gateway that verifies it (`gateway/auth.ts`).
 */

/** The `aud` claim: a token signed for the gateway is good for nothing else. */
export const ACCESS_TOKEN_AUDIENCE = 'gitspaces-gateway';

/** The default `iss` claim the control plane puts in and the gateway expects. */
export const ACCESS_TOKEN_ISSUER = 'gitspaces-control-plane';

/** Ed25519 signatures, as JOSE names them. */
export const ACCESS_TOKEN_ALGORITHM = 'EdDSA';

/** Default lifetime of an access token: one hour. */
export const DEFAULT_ACCESS_TOKEN_TTL_SECONDS = 3600;

/** Claim names: `sub` carries the user, a private claim carries the gitspace. */
export const ACCESS_TOKEN_CLAIMS = {
  user: 'sub',
  gitspaceId: 'gitspace_id',
  runId: 'run_id',
  scope: 'scope',
  sshKeys: 'ssh_keys',
} as const;

/**
 * What a token opens. `browser` (the default, and what a token without the claim means): the IDE's pages, by query
 * parameter, cookie or bearer. `ssh`: only the SSH tunnel (common/gateway-route.ts SSH_TUNNEL_PATH), only as a bearer,
 * never exchanged for a cookie; it names the fingerprints of the keys its user had registered when it was issued.
 */
export const ACCESS_TOKEN_SCOPES = ['browser', 'ssh'] as const;
export type AccessTokenScope = (typeof ACCESS_TOKEN_SCOPES)[number];

/** The query parameter that carries a token on the first visit (exchanged for a cookie by the gateway). */
export const ACCESS_TOKEN_QUERY_PARAM = 'token';

/** What a verified access token says. */
export interface AccessTokenClaims {
  userId: string;
  gitspaceId: string;
  /** The start workflow run the token was issued for (see common/gateway-route.ts): a later start revokes it. */
  runId: string;
  /** Expiry, seconds since the epoch. */
  expiresAt: number;
  scope: AccessTokenScope;
  /** For scope `ssh`: the `SHA256:` fingerprints of the user's registered SSH keys (common/ssh-public-key.ts). */
  sshKeys?: string[];
}

/**
 * Gitspace ids the gateway routes: a letter or digit, then letters, digits, `-` or `_`. Nothing that could be read as
 * a path segment, a dot segment or a host name trick.
 */
export const GITSPACE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
