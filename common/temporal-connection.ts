import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { loadClientConfigProfile, type ClientConfigProfile, type ConfigDataSource } from '@temporalio/envconfig';
import { Connection, type ConnectionOptions, type TLSConfig } from '@temporalio/client';
import { ConfigError, type Env } from './config';
import type { Logger } from './logger';

/**
 * How a process reaches Temporal: read once in each process's `main` from Temporal's own environment configuration
 * (`@temporalio/envconfig`: a TOML profile, then `TEMPORAL_*` variables over it) and handed down; nothing below `main`
 * reads the environment. The same settings make the client's `Connection` and the worker's `NativeConnection`.
 */
export interface TemporalConnection {
  /** host:port */
  address: string;
  namespace: string;
  /** Sent as a bearer token on every call (Temporal Cloud API keys); only ever over TLS. */
  apiKey?: string;
  /** Absent: plaintext (the embedded loopback dev server). `{}`: TLS with the system's roots. */
  tls?: TLSConfig;
  /** Extra gRPC headers (`TEMPORAL_GRPC_META_*`, a profile's `grpc_meta`). */
  metadata?: Record<string, string>;
  /** Where the settings came from (a profile file), for the start-up log. */
  profile?: { name: string; file: string };
}

export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_TEMPORAL_NAMESPACE = 'default';

/** The embedded dev server (and tests): plaintext on loopback. */
export function localTemporal(address = DEFAULT_TEMPORAL_ADDRESS, namespace = DEFAULT_TEMPORAL_NAMESPACE) {
  return { address, namespace } satisfies TemporalConnection;
}

/** The variables `@temporalio/envconfig` reads for a connection (besides `TEMPORAL_GRPC_META_*`). */
export const TEMPORAL_CONNECTION_VARIABLES = [
  'TEMPORAL_ADDRESS',
  'TEMPORAL_NAMESPACE',
  'TEMPORAL_API_KEY',
  'TEMPORAL_TLS',
  'TEMPORAL_TLS_CLIENT_CERT_PATH',
  'TEMPORAL_TLS_CLIENT_CERT_DATA',
  'TEMPORAL_TLS_CLIENT_KEY_PATH',
  'TEMPORAL_TLS_CLIENT_KEY_DATA',
  'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
  'TEMPORAL_TLS_SERVER_CA_CERT_DATA',
  'TEMPORAL_TLS_SERVER_NAME',
  'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION',
  'TEMPORAL_PROFILE',
  'TEMPORAL_CONFIG_FILE',
] as const;

/** True for a variable that says how to connect to Temporal (so `npm start` can keep its children off them). */
export function isTemporalConnectionVariable(name: string): boolean {
  return (TEMPORAL_CONNECTION_VARIABLES as readonly string[]).includes(name) || name.startsWith('TEMPORAL_GRPC_META_');
}

/**
 * Reads the connection from `env` as Temporal's SDKs and CLI do: the profile `TEMPORAL_PROFILE` (default `default`)
 * of the TOML file `TEMPORAL_CONFIG_FILE` (default `~/.config/temporalio/temporal.toml`, if present), with
 * `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY` and `TEMPORAL_TLS_*` over it. Defaults: the embedded
 * dev server, `127.0.0.1:7233`, namespace `default`, plaintext. Throws a ConfigError naming every problem: a file
 * that cannot be read, a certificate without its key, an API key over plaintext, settings envconfig would ignore.
 */
export function readTemporalConnection(env: Env): TemporalConnection {
  const problems: string[] = [];
  // Empty values count as unset, as everywhere else (ConfigReader), except grpc meta, where empty removes a header.
  const vars: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (value.trim() === '' && !name.startsWith('TEMPORAL_GRPC_META_')) continue;
    vars[name] = name.startsWith('TEMPORAL_') && !name.endsWith('_DATA') ? value.trim() : value;
  }

  const configFile = vars.TEMPORAL_CONFIG_FILE;
  if (configFile !== undefined && !isReadableFile(configFile)) {
    // envconfig silently falls back to the defaults when the file is missing: a typo would mean the local server.
    problems.push(`TEMPORAL_CONFIG_FILE names ${configFile}, which is not a readable file`);
  }
  const tlsFlag = vars.TEMPORAL_TLS;
  if (tlsFlag !== undefined && !['true', 'false', '1', '0'].includes(tlsFlag)) {
    problems.push(`TEMPORAL_TLS must be true or false, got '${tlsFlag}'`);
  }
  if (vars.TEMPORAL_TLS_DISABLE_HOST_VERIFICATION !== undefined) {
    problems.push(
      "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION is not supported: set TEMPORAL_TLS_SERVER_NAME to the name in the server's certificate",
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const where = configFile ?? 'the Temporal config file (~/.config/temporalio/temporal.toml)';
  // envconfig 1.24 fails on a file without any profile (an empty one, /dev/null): such a file is no profile at all.
  const noProfiles = configFile !== undefined && !/\bprofile\b/.test(readFileSync(configFile, 'utf8'));
  if (noProfiles && vars.TEMPORAL_PROFILE !== undefined) {
    throw new ConfigError([`TEMPORAL_PROFILE '${vars.TEMPORAL_PROFILE}' is not a profile in ${where}`]);
  }
  let profile: ClientConfigProfile;
  try {
    // Strict: an unknown key in the file (a typo such as `client_cert = ...`) is an error, not a setting ignored.
    profile = loadClientConfigProfile({ overrideEnvVars: vars, configFileStrict: true, disableFile: noProfiles });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ConfigError([
      /^Profile '.*' not found/.test(message)
        ? `TEMPORAL_PROFILE '${vars.TEMPORAL_PROFILE}' is not a profile in ${where}`
        : error instanceof TypeError
          ? `${where} has no [profile.<name>] table`
          : `${where}: ${message}`,
    ]);
  }

  const address = profile.address ?? DEFAULT_TEMPORAL_ADDRESS;
  if (!/^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):\d{1,5}$/.test(address)) {
    problems.push(`TEMPORAL_ADDRESS (or the profile's address) must be host:port, got '${address}'`);
  }
  const namespace = profile.namespace ?? DEFAULT_TEMPORAL_NAMESPACE;
  const tlsSettings = profile.tls;
  const clientCert = readPem(tlsSettings?.clientCert, 'TLS client certificate', 'TEMPORAL_TLS_CLIENT_CERT', problems);
  const clientKey = readPem(tlsSettings?.clientKey, 'TLS client key', 'TEMPORAL_TLS_CLIENT_KEY', problems);
  const serverCa = readPem(tlsSettings?.serverCACert, 'TLS server CA', 'TEMPORAL_TLS_SERVER_CA_CERT', problems);
  if ((tlsSettings?.clientCert === undefined) !== (tlsSettings?.clientKey === undefined)) {
    problems.push(
      tlsSettings?.clientCert
        ? 'a TLS client certificate is set without its key (TEMPORAL_TLS_CLIENT_KEY_PATH or tls.client_key_path)'
        : 'a TLS client key is set without its certificate (TEMPORAL_TLS_CLIENT_CERT_PATH or tls.client_cert_path)',
    );
  }
  const tlsDisabled = tlsSettings?.disabled === true;
  // envconfig turns TLS on for any TLS setting or an API key (Temporal Cloud needs both), unless it is disabled.
  const tlsOn = !tlsDisabled && (tlsSettings !== undefined || profile.apiKey !== undefined);
  if (tlsDisabled && profile.apiKey !== undefined) {
    problems.push('TEMPORAL_API_KEY is set but TLS is disabled: an API key is never sent over plaintext');
  }
  if (
    tlsDisabled &&
    (tlsSettings?.clientCert ?? tlsSettings?.clientKey ?? tlsSettings?.serverCACert ?? tlsSettings?.serverName)
  ) {
    problems.push('TLS settings (certificates or a server name) are given but TLS is disabled (TEMPORAL_TLS=false)');
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const tls: TLSConfig | undefined = tlsOn
    ? {
        ...(tlsSettings?.serverName ? { serverNameOverride: tlsSettings.serverName } : {}),
        ...(serverCa ? { serverRootCACertificate: serverCa } : {}),
        ...(clientCert && clientKey ? { clientCertPair: { crt: clientCert, key: clientKey } } : {}),
      }
    : undefined;
  const profileName = vars.TEMPORAL_PROFILE ?? 'default';
  return {
    address,
    namespace,
    ...(profile.apiKey !== undefined ? { apiKey: profile.apiKey } : {}),
    ...(tls ? { tls } : {}),
    ...(profile.grpcMeta && Object.keys(profile.grpcMeta).length > 0 ? { metadata: profile.grpcMeta } : {}),
    ...(configFile && !noProfiles ? { profile: { name: profileName, file: configFile } } : {}),
  };
}

/**
 * Options for the client's `Connection.connect` and a worker's `NativeConnection.connect`: the same settings (address,
 * TLS, API key, gRPC metadata) for both.
 */
export function connectionOptions(connection: TemporalConnection): {
  address: string;
  tls?: TLSConfig;
  apiKey?: string;
  metadata?: Record<string, string>;
} {
  return {
    address: connection.address,
    ...(connection.tls ? { tls: connection.tls } : {}),
    ...(connection.apiKey !== undefined ? { apiKey: connection.apiKey } : {}),
    ...(connection.metadata ? { metadata: connection.metadata } : {}),
  };
}

/** A client connection (`Connection.connect`, which checks that the server answers). */
export function connectClient(
  connection: TemporalConnection,
  options: Pick<ConnectionOptions, 'connectTimeout'> = {},
): Promise<Connection> {
  return Connection.connect({ ...connectionOptions(connection), ...options });
}

/** For logs: where and how, never a secret (`127.0.0.1:7233, namespace default, plaintext`). */
export function describeTemporalConnection(connection: TemporalConnection): string {
  const security = connection.tls ? (connection.tls.clientCertPair ? 'mTLS' : 'TLS') : 'plaintext';
  return [
    connection.address,
    `namespace ${connection.namespace}`,
    connection.apiKey !== undefined ? `${security} with an API key` : security,
    ...(connection.profile ? [`profile '${connection.profile.name}' of ${connection.profile.file}`] : []),
  ].join(', ');
}

/** A warning worth logging at start: plaintext to anything but loopback means anyone on the path reads the traffic. */
export function temporalConnectionWarning(connection: TemporalConnection): string | undefined {
  if (connection.tls) return undefined;
  const host = connection.address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
  return loopback
    ? undefined
    : `Temporal at ${connection.address} is reached in plaintext, unauthenticated: set TEMPORAL_TLS_* or TEMPORAL_API_KEY (README: Connecting to Temporal Cloud or a secured cluster)`;
}

function isReadableFile(file: string): boolean {
  try {
    // A file, or a device such as /dev/null (an empty configuration: `npm start` pins its children to it).
    return !statSync(file).isDirectory();
  } catch {
    return false;
  }
}

/** The bytes of a certificate or key, from a file or inline PEM; a problem (not a throw) when absent or not PEM. */
function readPem(
  source: ConfigDataSource | undefined,
  what: string,
  variable: string,
  problems: string[],
): Buffer | undefined {
  if (source === undefined) return undefined;
  let bytes: Buffer;
  let where: string;
  if ('path' in source) {
    where = `${source.path} (${variable}_PATH or the profile's path)`;
    try {
      bytes = readFileSync(source.path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problems.push(`${what} file ${where} cannot be read${code ? `: ${code}` : ''}`);
      return undefined;
    }
  } else {
    where = `${variable}_DATA (or the profile's data)`;
    bytes = Buffer.from(source.data);
  }
  if (!bytes.toString('latin1').includes('-----BEGIN ')) {
    problems.push(`${what} ${where} is not PEM (no '-----BEGIN' line)`);
    return undefined;
  }
  return bytes;
}

/** Says at start where and how this process reaches Temporal (no secrets), and warns about plaintext off loopback. */
export function logTemporalConnection(logger: Logger, connection: TemporalConnection): void {
  logger.info('connecting to Temporal', { temporal: describeTemporalConnection(connection) });
  const warning = temporalConnectionWarning(connection);
  if (warning) logger.warn(warning);
}

/**
 * The environment for the parts that `npm start` (and the chaos run) start beside their own dev server: every Temporal
 * connection setting of the parent (variables, a profile, `~/.config/temporalio/temporal.toml`) replaced by plaintext
 * to that server, so a developer's Temporal Cloud settings never send the embedded stack elsewhere. `ignored` names
 * the parent's settings that were dropped.
 */
export function embeddedTemporalEnv(
  env: Env,
  server: TemporalConnection,
): { env: Record<string, string | undefined>; ignored: string[] } {
  const ignored = Object.keys(env).filter((name) => isTemporalConnectionVariable(name) && env[name]);
  const kept = Object.fromEntries(Object.entries(env).filter(([name]) => !isTemporalConnectionVariable(name)));
  return {
    // An empty config file instead of the user's default one: no profile applies.
    env: {
      ...kept,
      TEMPORAL_CONFIG_FILE: '/dev/null',
      TEMPORAL_ADDRESS: server.address,
      TEMPORAL_NAMESPACE: server.namespace,
    },
    ignored,
  };
}
