import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import path from 'node:path';
import { SignJWT, calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import {
  ACCESS_TOKEN_ALGORITHM,
  ACCESS_TOKEN_AUDIENCE,
  ACCESS_TOKEN_CLAIMS,
  ACCESS_TOKEN_ISSUER,
  GITSPACE_ID_PATTERN,
  type AccessTokenScope,
} from '../contracts/access-token';
import { readOrCreateSecretFile } from '../common/secret-file';

/** File name of the generated signing key inside the data dir. */
export const ACCESS_TOKEN_KEY_FILE = 'access-token-key.pem';

export interface AccessTokenIssuerOptions {
  /** Where the signing key is generated on first use and found afterwards (unless `privateKeyPem` is given). */
  dataDir?: string;
  /** An Ed25519 private key in PKCS#8 PEM, from configuration. Takes precedence over `dataDir`. */
  privateKeyPem?: string;
  /** Token lifetime in seconds. */
  ttlSeconds: number;
  /** The `iss` claim; defaults to {@link ACCESS_TOKEN_ISSUER}. */
  issuer?: string;
  /** Clock in milliseconds since the epoch (tests move it). */
  now?: () => number;
}

export interface IssuedAccessToken {
  token: string;
  /** ISO 8601 time after which the gateway refuses the token. */
  expiresAt: string;
}

/** The public half of the signing key, as served at `/api/v1/.well-known/jwks.json`. */
export interface Jwks {
  keys: JWK[];
}

/** Signs gateway access tokens and publishes the key to verify them. */
export interface AccessTokenIssuer {
  /** `runId`: the start workflow run that made the gitspace running (common/gateway-route.ts). */
  issue(subject: {
    userId: string;
    gitspaceId: string;
    runId: string;
    /** `browser` unless said; an `ssh` token names the fingerprints of the user's SSH keys. */
    scope?: AccessTokenScope;
    sshKeys?: string[];
  }): Promise<IssuedAccessToken>;
  jwks(): Jwks;
}

/** Thrown when the configured or stored signing key is not an Ed25519 private key. */
export class InvalidSigningKeyError extends Error {
  constructor(
    readonly source: string,
    readonly reason: string,
  ) {
    super(`the access token signing key from ${source} is unusable: ${reason}`);
    this.name = 'InvalidSigningKeyError';
  }
}

/** Thrown when the issuer options are incomplete or out of range; names the field. */
export class InvalidAccessTokenOptionsError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field} ${message}`);
    this.name = 'InvalidAccessTokenOptionsError';
  }
}

/**
 * Builds the control plane's access token issuer. The Ed25519 key comes from `privateKeyPem`, or from
 * `<dataDir>/access-token-key.pem`, which is generated (mode 0600) the first time and reused afterwards.
 */
export async function createAccessTokenIssuer(options: AccessTokenIssuerOptions): Promise<AccessTokenIssuer> {
  if (!Number.isInteger(options.ttlSeconds) || options.ttlSeconds <= 0) {
    throw new InvalidAccessTokenOptionsError(
      'ttlSeconds',
      `must be a positive whole number, got ${options.ttlSeconds}`,
    );
  }
  let privateKey: KeyObject;
  if (options.privateKeyPem !== undefined) {
    privateKey = parsePrivateKey(options.privateKeyPem, 'configuration');
  } else if (options.dataDir !== undefined) {
    privateKey = await readOrCreateKey(path.join(options.dataDir, ACCESS_TOKEN_KEY_FILE));
  } else {
    throw new InvalidAccessTokenOptionsError('dataDir', 'or privateKeyPem is required');
  }

  const publicJwk = await exportJWK(createPublicKey(privateKey));
  const kid = await calculateJwkThumbprint(publicJwk);
  const jwk: JWK = { ...publicJwk, kid, alg: ACCESS_TOKEN_ALGORITHM, use: 'sig' };
  const issuer = options.issuer ?? ACCESS_TOKEN_ISSUER;
  const now = options.now ?? Date.now;

  return {
    async issue({ userId, gitspaceId, runId, scope = 'browser', sshKeys }) {
      if (!userId) throw new InvalidAccessTokenOptionsError('userId', 'is required');
      if (!GITSPACE_ID_PATTERN.test(gitspaceId)) {
        throw new InvalidAccessTokenOptionsError('gitspaceId', `'${gitspaceId}' is not a gitspace id`);
      }
      const issuedAt = Math.floor(now() / 1000);
      const expiresAt = issuedAt + options.ttlSeconds;
      if (!runId) throw new InvalidAccessTokenOptionsError('runId', 'is required');
      if ((scope === 'ssh') !== (sshKeys !== undefined)) {
        throw new InvalidAccessTokenOptionsError('sshKeys', 'are given with scope ssh, and only then');
      }
      const token = await new SignJWT({
        [ACCESS_TOKEN_CLAIMS.gitspaceId]: gitspaceId,
        [ACCESS_TOKEN_CLAIMS.runId]: runId,
        [ACCESS_TOKEN_CLAIMS.scope]: scope,
        ...(sshKeys ? { [ACCESS_TOKEN_CLAIMS.sshKeys]: sshKeys } : {}),
      })
        .setProtectedHeader({ alg: ACCESS_TOKEN_ALGORITHM, kid, typ: 'JWT' })
        .setSubject(userId)
        .setAudience(ACCESS_TOKEN_AUDIENCE)
        .setIssuer(issuer)
        .setIssuedAt(issuedAt)
        .setExpirationTime(expiresAt)
        .setJti(randomUUID())
        .sign(privateKey);
      return { token, expiresAt: new Date(expiresAt * 1000).toISOString() };
    },
    jwks: () => ({ keys: [{ ...jwk }] }),
  };
}

async function readOrCreateKey(file: string): Promise<KeyObject> {
  const { value } = await readOrCreateSecretFile(file, () =>
    generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  );
  return parsePrivateKey(value, file);
}

function parsePrivateKey(pem: string, source: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    throw new InvalidSigningKeyError(source, `not a PEM private key (${(error as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new InvalidSigningKeyError(source, `expected an Ed25519 key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  return key;
}
