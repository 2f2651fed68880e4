import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { ACCESS_TOKEN_AUDIENCE } from '../contracts/access-token';
import {
  ACCESS_TOKEN_KEY_FILE,
  InvalidAccessTokenOptionsError,
  InvalidSigningKeyError,
  createAccessTokenIssuer,
} from './access-tokens';

describe('access token issuer', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-issuer-'));
  });
  afterEach(() => rm(dataDir, { recursive: true, force: true }));

  it('generates an Ed25519 key into the data dir on first use (0600) and reuses it afterwards', async () => {
    const first = await createAccessTokenIssuer({ dataDir, ttlSeconds: 3600 });
    const file = path.join(dataDir, ACCESS_TOKEN_KEY_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const pem = await readFile(file, 'utf8');
    const second = await createAccessTokenIssuer({ dataDir, ttlSeconds: 3600 });
    expect(await readFile(file, 'utf8')).toBe(pem);
    expect(second.jwks()).toEqual(first.jwks());
    const [key] = first.jwks().keys;
    expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid: expect.any(String) });
    expect(key).not.toHaveProperty('d');
  });

  it('issues tokens with the user, the gitspace, its run, the gateway audience and the configured expiry', async () => {
    const now = Date.UTC(2030, 0, 1);
    const issuer = await createAccessTokenIssuer({ dataDir, ttlSeconds: 900, now: () => now });
    const { token, expiresAt } = await issuer.issue({ userId: 'user-7', gitspaceId: 'gs-x', runId: 'run-1' });
    expect(expiresAt).toBe(new Date(now + 900_000).toISOString());
    expect(decodeJwt(token)).toMatchObject({
      sub: 'user-7',
      gitspace_id: 'gs-x',
      run_id: 'run-1',
      aud: ACCESS_TOKEN_AUDIENCE,
      exp: now / 1000 + 900,
    });
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'EdDSA', kid: issuer.jwks().keys[0]!.kid });
    await expect(
      jwtVerify(token, createLocalJWKSet(issuer.jwks()), { currentDate: new Date(now) }),
    ).resolves.toBeDefined();
  });

  it('takes the key from configuration, and refuses one that is not Ed25519', async () => {
    const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const issuer = await createAccessTokenIssuer({ privateKeyPem: pem, ttlSeconds: 60 });
    expect(issuer.jwks().keys).toHaveLength(1);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    await expect(createAccessTokenIssuer({ privateKeyPem: rsa, ttlSeconds: 60 })).rejects.toBeInstanceOf(
      InvalidSigningKeyError,
    );
    await expect(createAccessTokenIssuer({ privateKeyPem: 'garbage', ttlSeconds: 60 })).rejects.toThrow(
      /not a PEM private key/,
    );
  });

  it('refuses incomplete options and bad subjects', async () => {
    await expect(createAccessTokenIssuer({ ttlSeconds: 60 })).rejects.toBeInstanceOf(InvalidAccessTokenOptionsError);
    await expect(createAccessTokenIssuer({ dataDir, ttlSeconds: 0 })).rejects.toThrow(/ttlSeconds/);
    const issuer = await createAccessTokenIssuer({ dataDir, ttlSeconds: 60 });
    await expect(issuer.issue({ userId: 'u', gitspaceId: '../x', runId: 'r' })).rejects.toThrow(/gitspaceId/);
    await expect(issuer.issue({ userId: '', gitspaceId: 'gs-a', runId: 'r' })).rejects.toThrow(/userId/);
    await expect(issuer.issue({ userId: 'u', gitspaceId: 'gs-a', runId: '' })).rejects.toThrow(/runId/);
  });
});
