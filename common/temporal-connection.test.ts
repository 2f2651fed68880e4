import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ConnectionOptions } from '@temporalio/client';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { createTestCa } from '../test/support/tls';
import { ConfigError } from './config';
import {
  connectionOptions,
  describeTemporalConnection,
  embeddedTemporalEnv,
  isTemporalConnectionVariable,
  readTemporalConnection,
  temporalConnectionWarning,
} from './temporal-connection';

/**
 * Temporal's environment configuration (`@temporalio/envconfig`) turned into client and worker connection options:
 * defaults, API keys (never in plaintext), mTLS from files, inline PEM or a TOML profile, and clear refusals of
 * settings that would otherwise be silently dropped or fall back to the local server.
 */
describe('Temporal connection from environment configuration', () => {
  let dir: string;
  let client: { certFile: string; keyFile: string };
  let caFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-temporal-conn-'));
    const ca = await createTestCa(dir, 'unit-ca');
    caFile = ca.certFile;
    client = await ca.issue('unit-runner');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const problems = (env: Record<string, string>) => {
    try {
      readTemporalConnection(env);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    throw new Error('expected a ConfigError');
  };

  it('defaults to the embedded dev server: 127.0.0.1:7233, namespace default, plaintext', () => {
    // No HOME: no ~/.config/temporalio/temporal.toml is read either.
    const connection = readTemporalConnection({ TEMPORAL_ADDRESS: '', PATH: '/usr/bin' });
    expect(connection).toEqual({ address: '127.0.0.1:7233', namespace: 'default' });
    expect(connectionOptions(connection)).toEqual({ address: '127.0.0.1:7233' });
    expect(describeTemporalConnection(connection)).toBe('127.0.0.1:7233, namespace default, plaintext');
    expect(temporalConnectionWarning(connection)).toBeUndefined();
  });

  it('an API key turns TLS on (as Temporal Cloud requires) and reaches both connections', () => {
    const connection = readTemporalConnection({
      TEMPORAL_ADDRESS: 'my-ns.a1b2c.tmprl.cloud:7233',
      TEMPORAL_NAMESPACE: 'my-ns.a1b2c',
      TEMPORAL_API_KEY: 'key-123',
    });
    // One set of options, typed for the client's Connection and the worker's NativeConnection alike.
    const options: ConnectionOptions & NativeConnectionOptions = connectionOptions(connection);
    expect(options).toEqual({ address: 'my-ns.a1b2c.tmprl.cloud:7233', tls: {}, apiKey: 'key-123' });
    expect(connection.namespace).toBe('my-ns.a1b2c');
    const description = describeTemporalConnection(connection);
    expect(description).toBe('my-ns.a1b2c.tmprl.cloud:7233, namespace my-ns.a1b2c, TLS with an API key');
    expect(description).not.toContain('key-123');
  });

  it('refuses to send an API key over plaintext', () => {
    expect(problems({ TEMPORAL_API_KEY: 'key-123', TEMPORAL_TLS: 'false' })).toEqual([
      'TEMPORAL_API_KEY is set but TLS is disabled: an API key is never sent over plaintext',
    ]);
  });

  it('mTLS from certificate files, with the server CA and server name', async () => {
    const connection = readTemporalConnection({
      TEMPORAL_ADDRESS: 'temporal.internal:7233',
      TEMPORAL_TLS_CLIENT_CERT_PATH: client.certFile,
      TEMPORAL_TLS_CLIENT_KEY_PATH: client.keyFile,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: caFile,
      TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
      TEMPORAL_GRPC_META_X_TENANT: 'acme',
    });
    const expected = {
      address: 'temporal.internal:7233',
      tls: {
        serverNameOverride: 'temporal.internal',
        serverRootCACertificate: await readFile(caFile),
        clientCertPair: { crt: await readFile(client.certFile), key: await readFile(client.keyFile) },
      },
      metadata: { 'x-tenant': 'acme' },
    };
    expect(connectionOptions(connection)).toEqual(expected);
    expect(describeTemporalConnection(connection)).toBe('temporal.internal:7233, namespace default, mTLS');
  });

  it('mTLS from inline PEM data', async () => {
    const connection = readTemporalConnection({
      TEMPORAL_TLS_CLIENT_CERT_DATA: await readFile(client.certFile, 'utf8'),
      TEMPORAL_TLS_CLIENT_KEY_DATA: await readFile(client.keyFile, 'utf8'),
    });
    expect(Buffer.from(connection.tls!.clientCertPair!.crt)).toEqual(await readFile(client.certFile));
  });

  it('a TOML profile chosen by TEMPORAL_PROFILE, with environment variables over it', async () => {
    const file = path.join(dir, 'temporal.toml');
    await writeFile(
      file,
      [
        '[profile.default]',
        'address = "127.0.0.1:7233"',
        '',
        '[profile.prod]',
        'address = "temporal.example.com:7233"',
        'namespace = "gitspaces"',
        '[profile.prod.tls]',
        `client_cert_path = "${client.certFile}"`,
        `client_key_path = "${client.keyFile}"`,
        `server_ca_cert_path = "${caFile}"`,
        '',
      ].join('\n'),
    );
    const prod = readTemporalConnection({
      TEMPORAL_CONFIG_FILE: file,
      TEMPORAL_PROFILE: 'prod',
      TEMPORAL_NAMESPACE: 'other',
    });
    expect(prod.address).toBe('temporal.example.com:7233');
    expect(prod.namespace).toBe('other');
    expect(prod.tls?.clientCertPair?.crt).toEqual(await readFile(client.certFile));
    expect(describeTemporalConnection(prod)).toBe(
      `temporal.example.com:7233, namespace other, mTLS, profile 'prod' of ${file}`,
    );
    expect(readTemporalConnection({ TEMPORAL_CONFIG_FILE: file }).tls).toBeUndefined();
    expect(problems({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' })).toEqual([
      `TEMPORAL_PROFILE 'staging' is not a profile in ${file}`,
    ]);
  });

  it('names every configuration problem instead of connecting somewhere else', async () => {
    const missing = path.join(dir, 'no-such.crt');
    expect(problems({ TEMPORAL_CONFIG_FILE: path.join(dir, 'missing.toml') })).toEqual([
      `TEMPORAL_CONFIG_FILE names ${path.join(dir, 'missing.toml')}, which is not a readable file`,
    ]);
    expect(
      problems({
        TEMPORAL_ADDRESS: 'https://temporal.example.com',
        TEMPORAL_TLS_CLIENT_CERT_PATH: missing,
        TEMPORAL_TLS_CLIENT_KEY_PATH: client.keyFile,
        TEMPORAL_TLS_SERVER_CA_CERT_DATA: 'not a certificate',
      }),
    ).toEqual([
      "TEMPORAL_ADDRESS (or the profile's address) must be host:port, got 'https://temporal.example.com'",
      `TLS client certificate file ${missing} (TEMPORAL_TLS_CLIENT_CERT_PATH or the profile's path) cannot be read: ENOENT`,
      "TLS server CA TEMPORAL_TLS_SERVER_CA_CERT_DATA (or the profile's data) is not PEM (no '-----BEGIN' line)",
    ]);
    expect(problems({ TEMPORAL_TLS_CLIENT_CERT_PATH: client.certFile })).toEqual([
      'a TLS client certificate is set without its key (TEMPORAL_TLS_CLIENT_KEY_PATH or tls.client_key_path)',
    ]);
    expect(problems({ TEMPORAL_TLS: 'yes' })).toEqual(["TEMPORAL_TLS must be true or false, got 'yes'"]);
    expect(problems({ TEMPORAL_TLS: 'false', TEMPORAL_TLS_SERVER_CA_CERT_PATH: caFile })).toEqual([
      'TLS settings (certificates or a server name) are given but TLS is disabled (TEMPORAL_TLS=false)',
    ]);
    expect(problems({ TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'true' })[0]).toMatch(/is not supported/);
    const typo = path.join(dir, 'typo.toml');
    await writeFile(typo, '[profile.default.tls]\nclient_cert = "/x"\n');
    expect(problems({ TEMPORAL_CONFIG_FILE: typo })[0]).toMatch(/key\(s\) unrecognized in profile.default.tls/);
  });

  it('warns about plaintext off loopback, and knows which variables are connection settings', () => {
    expect(temporalConnectionWarning(readTemporalConnection({ TEMPORAL_ADDRESS: '10.0.0.5:7233' }))).toMatch(
      /plaintext, unauthenticated/,
    );
    expect(temporalConnectionWarning(readTemporalConnection({ TEMPORAL_ADDRESS: '[::1]:7233' }))).toBeUndefined();
    expect(isTemporalConnectionVariable('TEMPORAL_TLS_CLIENT_CERT_PATH')).toBe(true);
    expect(isTemporalConnectionVariable('TEMPORAL_GRPC_META_AUTHORIZATION')).toBe(true);
    expect(isTemporalConnectionVariable('TEMPORAL_CLI_PATH')).toBe(false);
  });

  it("keeps npm start's parts on its own plaintext dev server, whatever Temporal settings the shell has", () => {
    const shell = {
      PATH: '/usr/bin',
      HOME: dir,
      TEMPORAL_CLI_PATH: '/opt/temporal',
      TEMPORAL_ADDRESS: 'prod.tmprl.cloud:7233',
      TEMPORAL_API_KEY: 'key-123',
      TEMPORAL_PROFILE: 'prod',
      TEMPORAL_TLS_CLIENT_CERT_PATH: client.certFile,
      TEMPORAL_GRPC_META_X_TENANT: 'acme',
    };
    const embedded = embeddedTemporalEnv(shell, { address: '127.0.0.1:7300', namespace: 'default' });
    expect(embedded.ignored).toEqual([
      'TEMPORAL_ADDRESS',
      'TEMPORAL_API_KEY',
      'TEMPORAL_PROFILE',
      'TEMPORAL_TLS_CLIENT_CERT_PATH',
      'TEMPORAL_GRPC_META_X_TENANT',
    ]);
    expect(embedded.env).toEqual({
      PATH: '/usr/bin',
      HOME: dir,
      TEMPORAL_CLI_PATH: '/opt/temporal',
      TEMPORAL_CONFIG_FILE: '/dev/null',
      TEMPORAL_ADDRESS: '127.0.0.1:7300',
      TEMPORAL_NAMESPACE: 'default',
    });
    expect(readTemporalConnection(embedded.env)).toEqual({
      address: '127.0.0.1:7300',
      namespace: 'default',
    });
  });
});
