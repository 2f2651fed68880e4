/** The Compute API clients of the runner: the real API, or an emulator on loopback (DESIGN.md §6, §7). */
import { DisksClient, InstancesClient, ZoneOperationsClient } from '@google-cloud/compute';
// The Compute client's own auth library (a dependency of google-gax), for the fixed token an emulator accepts.
import { OAuth2Client } from 'google-auth-library';

/** The Compute API clients the provider uses; built once by the runner's main. */
export interface GcpClients {
  instances: InstancesClient;
  disks: DisksClient;
  zoneOperations: ZoneOperationsClient;
  close(): Promise<void>;
}

export interface GcpClientOptions {
  /**
   * An emulator's base URL (`http://127.0.0.1:<port>`, from GITSPACES_GCP_COMPUTE_ENDPOINT). When set, the clients
   * use the REST transport against it with a fixed access token; when absent, the real API with Application Default
   * Credentials.
   */
  apiEndpoint?: string;
}

/** Options of a Google Cloud client (Compute, Secret Manager): its REST transport. */
export type GcpClientConstructorOptions = NonNullable<ConstructorParameters<typeof InstancesClient>[0]>;

/**
 * How the runner's Google Cloud clients are built: the real API with Application Default Credentials, or, given an
 * emulator's base URL, the REST transport against it with a fixed access token.
 */
export function gcpClientOptions(apiEndpoint?: string): GcpClientConstructorOptions {
  if (!apiEndpoint) return { fallback: true };
  const url = new URL(apiEndpoint);
  // Node's own fetch: the auth library's default loads node-fetch through a dynamic import, which jest's CommonJS
  // runtime cannot do.
  const authClient = new OAuth2Client({ transporterOptions: { fetchImplementation: fetch } });
  // An emulator checks only that a token is there; this keeps the library from looking for real credentials.
  authClient.setCredentials({ access_token: 'emulator', expiry_date: Date.now() + 365 * 24 * 3600_000 });
  return {
    apiEndpoint: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    protocol: url.protocol.replace(':', ''),
    fallback: true,
    authClient,
  } as GcpClientConstructorOptions;
}

/** Builds the Compute clients of the runner. */
export function createGcpClients(options: GcpClientOptions = {}): GcpClients {
  const clientOptions = gcpClientOptions(options.apiEndpoint);
  const instances = new InstancesClient(clientOptions);
  const disks = new DisksClient(clientOptions);
  const zoneOperations = new ZoneOperationsClient(clientOptions);
  return {
    instances,
    disks,
    zoneOperations,
    close: async () => {
      await Promise.all([instances.close(), disks.close(), zoneOperations.close()]);
    },
  };
}
