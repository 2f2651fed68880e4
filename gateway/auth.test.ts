import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SignJWT, createRemoteJWKSet, importPKCS8 } from 'jose';
import { ACCESS_TOKEN_KEY_FILE, createAccessTokenIssuer, type AccessTokenIssuer } from '../api/access-tokens';
import { ACCESS_TOKEN_AUDIENCE, ACCESS_TOKEN_ISSUER } from '../contracts/access-token';
import {
  ExpiredAccessTokenError,
  InvalidAccessTokenError,
  KeysUnavailableError,
  MissingAccessTokenError,
  WrongGitspaceTokenError,
  createAccessTokenVerifier,
} from './auth';

describe('access token verifier against the control plane JWKS endpoint', () => {
  let dataDir: string;
  let issuer: AccessTokenIssuer;
  let jwksServer: http.Server;
  let jwksUrl: URL;
  let fetches = 0;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-auth-'));
    issuer = await createAccessTokenIssuer({ dataDir, ttlSeconds: 600 });
    jwksServer = http.createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(issuer.jwks()));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = new URL(`http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/api/v1/.well-known/jwks.json`);
  });
  afterAll(async () => {
    jwksServer.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('fetches the keys once, not per request, and verifies locally', async () => {
    fetches = 0;
    const verifier = createAccessTokenVerifier({ keys: createRemoteJWKSet(jwksUrl) });
    for (let i = 0; i < 20; i++) {
      const { token } = await issuer.issue({ userId: `user-${i}`, gitspaceId: 'gs-a', runId: 'run-1' });
      await expect(verifier.verify(token, 'gs-a')).resolves.toMatchObject({ userId: `user-${i}`, gitspaceId: 'gs-a' });
    }
    expect(fetches).toBe(1);
  });

  it('refetches on an unknown key id, so a new control-plane key is picked up without a restart', async () => {
    const verifier = createAccessTokenVerifier({ keys: createRemoteJWKSet(jwksUrl, { cooldownDuration: 0 }) });
    const { token } = await issuer.issue({ userId: 'u', gitspaceId: 'gs-a', runId: 'run-1' });
    await verifier.verify(token, 'gs-a');
    const rotatedDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-auth-rotated-'));
    const previous = issuer;
    issuer = await createAccessTokenIssuer({ dataDir: rotatedDir, ttlSeconds: 600 });
    try {
      fetches = 0;
      const rotated = await issuer.issue({ userId: 'u', gitspaceId: 'gs-a', runId: 'run-1' });
      await expect(verifier.verify(rotated.token, 'gs-a')).resolves.toMatchObject({ userId: 'u' });
      expect(fetches).toBe(1);
    } finally {
      issuer = previous;
      await rm(rotatedDir, { recursive: true, force: true });
    }
  });

  it('names each refusal', async () => {
    let now = Date.now();
    const verifier = createAccessTokenVerifier({ keys: createRemoteJWKSet(jwksUrl), now: () => now });
    const { token } = await issuer.issue({ userId: 'u', gitspaceId: 'gs-a', runId: 'run-1' });
    await expect(verifier.verify(undefined, 'gs-a')).rejects.toBeInstanceOf(MissingAccessTokenError);
    await expect(verifier.verify('not.a.jwt', 'gs-a')).rejects.toBeInstanceOf(InvalidAccessTokenError);
    await expect(verifier.verify(token, 'gs-b')).rejects.toBeInstanceOf(WrongGitspaceTokenError);
    await verifier.verify(token, 'gs-a');
    now += 601_000 + 5_000; // past expiry and tolerance: the cached verification must not outlive the token
    await expect(verifier.verify(token, 'gs-a')).rejects.toBeInstanceOf(ExpiredAccessTokenError);
  });

  it('reads the run a token was issued for, and refuses a token that names none', async () => {
    const verifier = createAccessTokenVerifier({ keys: createRemoteJWKSet(jwksUrl) });
    const { token } = await issuer.issue({ userId: 'u', gitspaceId: 'gs-a', runId: 'run-7' });
    await expect(verifier.verify(token, 'gs-a')).resolves.toMatchObject({ runId: 'run-7' });
    // The same claims without run_id, signed by the same key (a token of the previous version).
    const key = await importPKCS8(await readFile(path.join(dataDir, ACCESS_TOKEN_KEY_FILE), 'utf8'), 'EdDSA');
    const payload = { sub: 'u', gitspace_id: 'gs-a', aud: ACCESS_TOKEN_AUDIENCE, iss: ACCESS_TOKEN_ISSUER };
    const sign = (extra: Record<string, unknown>) =>
      new SignJWT({ ...payload, ...extra })
        .setProtectedHeader({ alg: 'EdDSA', kid: issuer.jwks().keys[0]!.kid })
        .setExpirationTime('10m')
        .sign(key);
    await expect(verifier.verify(await sign({}), 'gs-a')).rejects.toBeInstanceOf(InvalidAccessTokenError);
    await expect(verifier.verify(await sign({ run_id: '' }), 'gs-a')).rejects.toBeInstanceOf(InvalidAccessTokenError);
    await expect(verifier.verify(await sign({ run_id: 7 }), 'gs-a')).rejects.toBeInstanceOf(InvalidAccessTokenError);
  });

  it('reads the scope and the SSH keys a token was issued for; no scope claim means browser; a bad one is refused', async () => {
    const verifier = createAccessTokenVerifier({ keys: createRemoteJWKSet(jwksUrl) });
    const browser = await issuer.issue({ userId: 'u', gitspaceId: 'gs-a', runId: 'run-1' });
    await expect(verifier.verify(browser.token, 'gs-a')).resolves.toMatchObject({ scope: 'browser' });
    const ssh = await issuer.issue({
      userId: 'u',
      gitspaceId: 'gs-a',
      runId: 'run-1',
      scope: 'ssh',
      sshKeys: ['SHA256:a'],
    });
    await expect(verifier.verify(ssh.token, 'gs-a')).resolves.toMatchObject({ scope: 'ssh', sshKeys: ['SHA256:a'] });
    await expect(issuer.issue({ userId: 'u', gitspaceId: 'gs-a', runId: 'run-1', scope: 'ssh' })).rejects.toThrow(
      /sshKeys/,
    );

    const key = await importPKCS8(await readFile(path.join(dataDir, ACCESS_TOKEN_KEY_FILE), 'utf8'), 'EdDSA');
    const payload = {
      sub: 'u',
      gitspace_id: 'gs-a',
      run_id: 'run-1',
      aud: ACCESS_TOKEN_AUDIENCE,
      iss: ACCESS_TOKEN_ISSUER,
    };
    const sign = (extra: Record<string, unknown>) =>
      new SignJWT({ ...payload, ...extra })
        .setProtectedHeader({ alg: 'EdDSA', kid: issuer.jwks().keys[0]!.kid })
        .setExpirationTime('10m')
        .sign(key);
    await expect(verifier.verify(await sign({}), 'gs-a')).resolves.toMatchObject({ scope: 'browser' });
    for (const bad of [{ scope: 'admin' }, { scope: 1 }, { scope: 'ssh', ssh_keys: 'SHA256:a' }, { ssh_keys: [1] }]) {
      await expect(verifier.verify(await sign(bad), 'gs-a')).rejects.toBeInstanceOf(InvalidAccessTokenError);
    }
  });

  it('answers at once for a token verified before, with the same checks of gitspace and expiry', async () => {
    let now = Date.now();
    const verifier = createAccessTokenVerifier({ keys: createRemoteJWKSet(jwksUrl), now: () => now });
    const { token } = await issuer.issue({ userId: 'u', gitspaceId: 'gs-a', runId: 'run-1' });
    expect(verifier.verifyCached(token, 'gs-a')).toBeUndefined();
    expect(() => verifier.verifyCached(undefined, 'gs-a')).toThrow(MissingAccessTokenError);
    await verifier.verify(token, 'gs-a');
    expect(verifier.verifyCached(token, 'gs-a')).toMatchObject({ userId: 'u', gitspaceId: 'gs-a' });
    expect(() => verifier.verifyCached(token, 'gs-b')).toThrow(WrongGitspaceTokenError);
    // A forged token is never in the cache: it goes through the signature check.
    expect(verifier.verifyCached(`${token.slice(0, -4)}AAAA`, 'gs-a')).toBeUndefined();
    // Nor is another token with a copied signature.
    const [header, , signature] = token.split('.') as [string, string, string];
    const otherPayload = Buffer.from(JSON.stringify({ sub: 'u', gs: 'gs-b', exp: 9_999_999_999 })).toString(
      'base64url',
    );
    const transplanted = `${header}.${otherPayload}.${signature}`;
    expect(verifier.verifyCached(transplanted, 'gs-b')).toBeUndefined();
    await expect(verifier.verify(transplanted, 'gs-b')).rejects.toBeInstanceOf(InvalidAccessTokenError);
    now += 601_000 + 5_000;
    expect(verifier.verifyCached(token, 'gs-a')).toBeUndefined();
  });

  it('checks a token again once its entry aged out, then answers at once for it again', async () => {
    let now = Date.now();
    const verifier = createAccessTokenVerifier({ keys: createRemoteJWKSet(jwksUrl), now: () => now });
    const { token } = await issuer.issue({ userId: 'u', gitspaceId: 'gs-a', runId: 'run-1' });
    await verifier.verify(token, 'gs-a');
    expect(verifier.verifyCached(token, 'gs-a')).toMatchObject({ gitspaceId: 'gs-a' });
    now += 61_000; // past the cache's time to live, not the token's expiry
    expect(verifier.verifyCached(token, 'gs-a')).toBeUndefined();
    await verifier.verify(token, 'gs-a');
    expect(verifier.verifyCached(token, 'gs-a')).toMatchObject({ gitspaceId: 'gs-a' });
    expect(verifier.verifyCached(token, 'gs-a')).toMatchObject({ gitspaceId: 'gs-a' });
  });

  it('reports unreachable keys as such, not as a bad token', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const verifier = createAccessTokenVerifier({
      keys: createRemoteJWKSet(new URL(`http://127.0.0.1:${port}/jwks.json`)),
    });
    const { token } = await issuer.issue({ userId: 'u', gitspaceId: 'gs-a', runId: 'run-1' });
    await expect(verifier.verify(token, 'gs-a')).rejects.toBeInstanceOf(KeysUnavailableError);
  });
});
