import { errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import {
  ACCESS_TOKEN_ALGORITHM,
  ACCESS_TOKEN_AUDIENCE,
  ACCESS_TOKEN_CLAIMS,
  ACCESS_TOKEN_SCOPES,
  type AccessTokenScope,
  ACCESS_TOKEN_ISSUER,
  type AccessTokenClaims,
} from '../contracts/access-token';

/**
 * The gateway's auth check: verifies access tokens locally against the control plane's public keys. No database, no
 * call per request: the key set is cached by its resolver (jose's remote JWKS refetches only on an unknown `kid`),
 * and tokens already verified are remembered until they expire.
 */

/** Thrown when a request carries no access token at all (401). */
export class MissingAccessTokenError extends Error {
  constructor() {
    super('this gitspace needs an access token: ask the API for one (POST /api/v1/gitspaces/:id/access)');
    this.name = 'MissingAccessTokenError';
  }
}

/** Thrown when the token's signature, audience, issuer or shape is wrong (401). */
export class InvalidAccessTokenError extends Error {
  constructor(readonly reason: string) {
    super(`the access token is not valid (${reason}): ask the API for a new one`);
    this.name = 'InvalidAccessTokenError';
  }
}

/** Thrown when the token was good once but its expiry has passed (401). */
export class ExpiredAccessTokenError extends Error {
  constructor(readonly expiredAt: Date) {
    super(`the access token expired at ${expiredAt.toISOString()}: ask the API for a new one`);
    this.name = 'ExpiredAccessTokenError';
  }
}

/** Thrown when a valid token was issued for a different gitspace than the one requested (403). */
export class WrongGitspaceTokenError extends Error {
  constructor(
    readonly requestedGitspaceId: string,
    readonly tokenGitspaceId: string,
  ) {
    super(`the access token is for another gitspace, not '${requestedGitspaceId}'`);
    this.name = 'WrongGitspaceTokenError';
  }
}

/**
 * Thrown when a valid token was issued for an earlier run of the gitspace than the one its route was registered by: a
 * stop and the next start revoke every token issued before (401, common/gateway-route.ts).
 */
export class RevokedAccessTokenError extends Error {
  constructor(
    readonly gitspaceId: string,
    readonly tokenRunId: string,
  ) {
    super(`the access token was issued for an earlier run of gitspace '${gitspaceId}': ask the API for a new one`);
    this.name = 'RevokedAccessTokenError';
  }
}

/** Thrown when the control plane's public keys cannot be fetched, so no token can be checked (503). */
export class KeysUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(`the gateway cannot fetch the control plane's public keys right now (${reason}); try again shortly`);
    this.name = 'KeysUnavailableError';
  }
}

export interface AccessTokenVerifierOptions {
  /** Resolves a token's key: `createRemoteJWKSet(jwksUrl)` in production, `createLocalJWKSet(jwks)` in tests. */
  keys: JWTVerifyGetKey;
  /** Expected `iss`; defaults to the control plane's. */
  issuer?: string;
  /** Clock skew tolerated between control plane and gateway, in seconds. */
  clockToleranceSeconds?: number;
  /** Clock in milliseconds since the epoch. */
  now?: () => number;
  /** How many verified tokens to remember (a bounded cache; cleared when full). */
  cacheSize?: number;
}

/** Checks access tokens for one gitspace. */
export interface AccessTokenVerifier {
  /** Resolves with the claims, or rejects with one of the errors above. */
  verify(token: string | undefined, gitspaceId: string): Promise<AccessTokenClaims>;
  /**
   * The same check without waiting, for a token whose signature was verified before: its claims, or undefined when
   * it must go through `verify`. Throws as `verify` rejects.
   */
  verifyCached(token: string | undefined, gitspaceId: string): AccessTokenClaims | undefined;
}

interface CachedToken {
  token: string;
  claims: AccessTokenClaims;
  validUntilMs: number;
}

/** How long a verified token is trusted without checking its signature again (keys may rotate). */
const CACHE_TTL_MS = 60_000;

/** Builds the verifier the gateway uses on every request. */
export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): AccessTokenVerifier {
  const now = options.now ?? Date.now;
  const tolerance = options.clockToleranceSeconds ?? 5;
  const cacheSize = options.cacheSize ?? 10_000;
  // Verifying an Ed25519 signature on every proxied request would dominate the gateway's cost; a verified token
  // cannot change, so its claims are kept until it expires or the entry ages out.
  // Keyed by the signature (a fraction of the token to hash per request); an entry matches only the very same token.
  const cache = new Map<string, CachedToken>();
  // The entry found last: a client's requests carry the same token one after another, and comparing it with the
  // last one is cheaper than taking out its signature and hashing that.
  let last: CachedToken | undefined;

  async function claimsOf(token: string): Promise<AccessTokenClaims> {
    const claims = await verifySignature(token);
    if (cache.size >= cacheSize) cache.clear();
    const expiresMs = (claims.expiresAt + tolerance) * 1000;
    last = { token, claims, validUntilMs: Math.min(expiresMs, now() + CACHE_TTL_MS) };
    cache.set(signatureOf(token), last);
    return claims;
  }

  /** Checks claims against the gitspace asked for and the clock: the cache holds tokens, not decisions. */
  function checked(claims: AccessTokenClaims, gitspaceId: string): AccessTokenClaims {
    if ((claims.expiresAt + tolerance) * 1000 <= now()) {
      throw new ExpiredAccessTokenError(new Date(claims.expiresAt * 1000));
    }
    if (claims.gitspaceId !== gitspaceId) throw new WrongGitspaceTokenError(gitspaceId, claims.gitspaceId);
    return claims;
  }

  function verifyCached(token: string | undefined, gitspaceId: string): AccessTokenClaims | undefined {
    if (!token) throw new MissingAccessTokenError();
    const time = now();
    let cached = last !== undefined && last.token === token && last.validUntilMs > time ? last : undefined;
    if (!cached) {
      cached = cache.get(signatureOf(token));
      if (!cached || cached.token !== token || cached.validUntilMs <= time) return undefined;
      last = cached;
    }
    return checked(cached.claims, gitspaceId);
  }

  async function verifySignature(token: string): Promise<AccessTokenClaims> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, options.keys, {
        algorithms: [ACCESS_TOKEN_ALGORITHM],
        audience: ACCESS_TOKEN_AUDIENCE,
        issuer: options.issuer ?? ACCESS_TOKEN_ISSUER,
        requiredClaims: ['exp', 'sub', ACCESS_TOKEN_CLAIMS.gitspaceId, ACCESS_TOKEN_CLAIMS.runId],
        clockTolerance: tolerance,
        currentDate: new Date(now()),
      }));
    } catch (error) {
      throw translate(error);
    }
    const gitspaceId = payload[ACCESS_TOKEN_CLAIMS.gitspaceId];
    const runId = payload[ACCESS_TOKEN_CLAIMS.runId];
    // A token from before scopes existed opens what every token did then: the browser's pages.
    const scope = payload[ACCESS_TOKEN_CLAIMS.scope] ?? 'browser';
    const sshKeys = payload[ACCESS_TOKEN_CLAIMS.sshKeys];
    if (
      typeof gitspaceId !== 'string' ||
      typeof runId !== 'string' ||
      runId === '' ||
      typeof payload.sub !== 'string' ||
      typeof payload.exp !== 'number' ||
      !ACCESS_TOKEN_SCOPES.includes(scope as AccessTokenScope) ||
      (sshKeys !== undefined && !(Array.isArray(sshKeys) && sshKeys.every((key) => typeof key === 'string')))
    ) {
      throw new InvalidAccessTokenError('claims of the wrong type');
    }
    return {
      userId: payload.sub,
      gitspaceId,
      runId,
      expiresAt: payload.exp,
      scope: scope as AccessTokenScope,
      ...(sshKeys ? { sshKeys: sshKeys as string[] } : {}),
    };
  }

  return {
    async verify(token, gitspaceId) {
      return verifyCached(token, gitspaceId) ?? checked(await claimsOf(token!), gitspaceId);
    },
    verifyCached,
  };
}

/** The last segment of a compact JWS: its signature. */
function signatureOf(token: string): string {
  return token.slice(token.lastIndexOf('.') + 1);
}

function translate(error: unknown): Error {
  if (error instanceof errors.JWTExpired) {
    const exp = typeof error.payload.exp === 'number' ? error.payload.exp : 0;
    return new ExpiredAccessTokenError(new Date(exp * 1000));
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) {
    return new KeysUnavailableError(error.message);
  }
  // jose reports a JWKS endpoint answering non-200 or non-JSON as its plain base error.
  if (error instanceof errors.JOSEError && error.constructor === errors.JOSEError)
    return new KeysUnavailableError(error.message);
  if (error instanceof errors.JWTClaimValidationFailed)
    return new InvalidAccessTokenError(`${error.claim}: ${error.reason}`);
  if (error instanceof errors.JOSEError) return new InvalidAccessTokenError(error.code);
  // Anything else is the key fetch itself failing (connection refused, bad HTTP status).
  return new KeysUnavailableError(error instanceof Error ? error.message : String(error));
}
