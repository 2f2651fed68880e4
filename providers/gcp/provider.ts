/**
 * The `gcp` provider (DESIGN.md §5): one Compute Engine instance per gitspace, with a persistent data disk
 * (`<name>-data`, device `gitspace-data`) that survives stop and start and goes with the instance on delete. Every
 * instance and disk carries the `gitspace-id` and installation labels; `create` finds by label first, and every
 * mutating call carries a `requestId` derived from the idempotency key, so retries and resets adopt what exists.
 *
 * Calls return once Compute accepted them, with the zone operation they started (`operation`: name and zone). The
 * provider keeps nothing in memory: the runner's step hands the operation to the workflow, the workflow to the step
 * that waits (on this runner or another), and `describe` given it checks it, so an operation that fails later, such
 * as an exhausted zone, surfaces as its error instead of a machine that never appears.
 */
import { DisksClient, InstancesClient, ZoneOperationsClient, type protos } from '@google-cloud/compute';
// The Compute client's own auth library (a dependency of google-gax), for the fixed token an emulator accepts.
import { OAuth2Client } from 'google-auth-library';
import type { Logger } from '../../common/logger';
import { GCP_DATA_DISK_DEVICES, agentSecretIn, renderBootstrapScript } from '../bootstrap';
import { InstanceNotFoundError, ProviderUnavailableError } from '../../contracts/provider-errors';
import {
  DATA_DISK_DEVICE_NAME,
  MACHINE_LABELS,
  agentUrlFor,
  dataDiskNameFor,
  deriveRequestId,
  labelValueFor,
  machineLabelsFor,
  machineNameFor,
} from '../naming';
import { retryTransient } from '../retry';
import type {
  AgentBootstrap,
  CreateMachineRequest,
  MachineInfo,
  MachineStatus,
  Provider,
  ProviderCallOptions,
  ProviderOperation,
} from '../../contracts/provider';
import { OperationFailedError } from '../../contracts/provider';
import type { GcpInfrastructureConfig } from './config';
import { isGcpAlreadyExists, isGcpNotFound, mapGcpError, mapGcpOperationError } from './errors';

type Instance = protos.google.cloud.compute.v1.IInstance;
type Disk = protos.google.cloud.compute.v1.IDisk;
type Operation = protos.google.cloud.compute.v1.IOperation;

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

export interface GcpProviderOptions {
  config: GcpInfrastructureConfig;
  /** Labels every resource so `list()` finds this installation's machines and nobody else's. */
  installationId: string;
  clients: GcpClients;
  logger: Logger;
}

const STATUS_BY_GCP: Record<string, MachineStatus> = {
  PROVISIONING: 'provisioning',
  STAGING: 'provisioning',
  REPAIRING: 'provisioning',
  RUNNING: 'running',
  STOPPING: 'stopping',
  SUSPENDING: 'stopping',
  TERMINATED: 'stopped',
  STOPPED: 'stopped',
  SUSPENDED: 'stopped',
};

/** Creates the `gcp` provider. */
export function createGcpProvider(options: GcpProviderOptions): Provider {
  const { config, installationId, clients, logger } = options;
  const project = config.project;

  /** Every Compute call goes through here: taxonomy errors, and a few quick retries of transient ones. */
  function call<T>(what: string, signal: AbortSignal, run: () => Promise<T>): Promise<T> {
    return retryTransient(
      async () => {
        try {
          return await run();
        } catch (error) {
          throw mapGcpError(error);
        }
      },
      { signal, logger, what },
    );
  }

  function labelFilter(gitspaceId?: string): string {
    const clauses = [`(labels.${MACHINE_LABELS.installation} = "${labelValueFor(installationId)}")`];
    if (gitspaceId !== undefined)
      clauses.push(`(labels.${MACHINE_LABELS.gitspaceId} = "${labelValueFor(gitspaceId)}")`);
    return clauses.join(' ');
  }

  async function listInstances(gitspaceId: string | undefined, signal: AbortSignal): Promise<[string, Instance][]> {
    const found: [string, Instance][] = [];
    for (const zone of config.zones) {
      const [items] = await call(`list instances in ${zone}`, signal, () =>
        clients.instances.list({ project, zone, filter: labelFilter(gitspaceId) }),
      );
      for (const item of items) found.push([zone, item]);
    }
    return found;
  }

  async function findInstance(gitspaceId: string, signal: AbortSignal): Promise<[string, Instance] | undefined> {
    return (await listInstances(gitspaceId, signal))[0];
  }

  async function listDisks(gitspaceId: string | undefined, signal: AbortSignal): Promise<[string, Disk][]> {
    const found: [string, Disk][] = [];
    for (const zone of config.zones) {
      const [items] = await call(`list disks in ${zone}`, signal, () =>
        clients.disks.list({ project, zone, filter: labelFilter(gitspaceId) }),
      );
      for (const item of items) found.push([zone, item]);
    }
    return found;
  }

  function gitspaceIdOf(instance: Instance): string {
    const fromMetadata = instance.metadata?.items?.find((item) => item.key === MACHINE_LABELS.gitspaceId)?.value;
    return fromMetadata ?? instance.labels?.[MACHINE_LABELS.gitspaceId] ?? '';
  }

  function toInfo(instance: Instance, deleting = false): MachineInfo {
    return {
      gitspaceId: gitspaceIdOf(instance),
      providerId: instance.name ?? '',
      status: deleting ? 'deleting' : (STATUS_BY_GCP[instance.status ?? ''] ?? 'provisioning'),
      agentUrl: agentUrlFor(instance.networkInterfaces?.[0]?.networkIP),
      disks: (instance.disks ?? [])
        .filter((disk) => !disk.boot)
        .flatMap((disk) => (disk.source ? [disk.source.split('/').pop() ?? disk.source] : [])),
      labels: { ...(instance.labels ?? {}) },
    };
  }

  /** The handle of a zone operation a call started, to be returned with its result (plain data, for history). */
  function handleOf(kind: ProviderOperation['kind'], zone: string, operation: unknown): ProviderOperation | undefined {
    const name = (operation as { name?: string | null } | undefined)?.name;
    return name ? { kind, zone, name } : undefined;
  }

  /**
   * Whether a zone operation an earlier call started (on any runner) is still running; one that finished with an error
   * throws it (OperationFailedError: final). One Compute no longer knows counts as finished.
   */
  async function stillRunning(gitspaceId: string, op: ProviderOperation, signal: AbortSignal): Promise<boolean> {
    if (!op.zone || !config.zones.includes(op.zone)) return false;
    let state: Operation;
    try {
      [state] = await call(`get operation ${op.name}`, signal, () =>
        clients.zoneOperations.get({ project, zone: op.zone, operation: op.name }),
      );
    } catch (error) {
      if (!isGcpNotFound((error as { cause?: unknown }).cause ?? error)) throw error;
      return false;
    }
    if (state.status !== 'DONE') return true;
    const errors = state.error?.errors ?? [];
    if (errors.length > 0) {
      logger.warn('a zone operation failed', { gitspaceId, operation: op.name, kind: op.kind, errors });
      throw new OperationFailedError(op, mapGcpOperationError(errors));
    }
    return false;
  }

  function startupScript(gitspaceId: string, bootstrap: AgentBootstrap): string {
    return renderBootstrapScript({
      gitspaceId,
      bootstrap,
      agent: config.agent,
      dataDiskDevices: GCP_DATA_DISK_DEVICES,
    });
  }

  return {
    name: 'gcp',

    async create(request: CreateMachineRequest, { idempotencyKey, signal }: ProviderCallOptions): Promise<MachineInfo> {
      const { gitspaceId, spec, bootstrap } = request;
      const existing = await findInstance(gitspaceId, signal);
      if (existing) {
        logger.info('adopting the instance this gitspace already has', { gitspaceId, instance: existing[1].name });
        return toInfo(existing[1]);
      }
      const zone = spec.zone ?? config.zones[0] ?? '';
      const name = machineNameFor(gitspaceId);
      const labels = machineLabelsFor(gitspaceId, installationId);
      const diskType = `zones/${zone}/diskTypes/${config.diskType}`;
      const instanceResource: Instance = {
        name,
        machineType: `zones/${zone}/machineTypes/${spec.machineType}`,
        labels,
        metadata: {
          items: [
            { key: 'startup-script', value: startupScript(gitspaceId, bootstrap) },
            // Labels hold a sanitised id; the exact one is kept here for list().
            { key: MACHINE_LABELS.gitspaceId, value: gitspaceId },
          ],
        },
        disks: [
          {
            boot: true,
            autoDelete: true,
            initializeParams: {
              sourceImage: spec.image ?? config.image,
              diskSizeGb: config.bootDiskSizeGb,
              diskType,
              labels,
            },
          },
          {
            // Survives stop/start (persistent disks always do); goes with the instance on delete.
            boot: false,
            autoDelete: true,
            deviceName: DATA_DISK_DEVICE_NAME,
            initializeParams: { diskName: dataDiskNameFor(gitspaceId), diskSizeGb: spec.diskSizeGb, diskType, labels },
          },
        ],
        // No access config: no public address. The gateway and the runner reach the machine privately.
        networkInterfaces: [{ network: config.network, subnetwork: config.subnetwork }],
        serviceAccounts: [{ email: config.serviceAccount, scopes: ['https://www.googleapis.com/auth/cloud-platform'] }],
        tags: config.networkTags.length > 0 ? { items: config.networkTags } : undefined,
      };
      try {
        const [operation] = await call(`insert ${name}`, signal, () =>
          clients.instances.insert({
            project,
            zone,
            requestId: deriveRequestId(`insert:${zone}/${name}`, idempotencyKey),
            instanceResource,
          }),
        );
        const handle = handleOf('insert', zone, operation.latestResponse);
        logger.info('instance inserted', { gitspaceId, instance: name, zone, type: spec.machineType });
        return {
          gitspaceId,
          providerId: name,
          status: 'provisioning',
          disks: [dataDiskNameFor(gitspaceId)],
          labels,
          ...(handle ? { operation: handle } : {}),
        };
      } catch (error) {
        // A racing or earlier insert made it: adopt it.
        if (!isGcpAlreadyExists((error as { cause?: unknown }).cause ?? error)) throw error;
        const made = await findInstance(gitspaceId, signal);
        if (made) return toInfo(made[1]);
        throw error;
      }
    },

    async describe(gitspaceId: string, { signal, operation }: ProviderCallOptions): Promise<MachineInfo | null> {
      const op = operation && (await stillRunning(gitspaceId, operation, signal)) ? operation : undefined;
      const found = await findInstance(gitspaceId, signal);
      if (found) return toInfo(found[1], op?.kind === 'delete');
      const labels = machineLabelsFor(gitspaceId, installationId);
      if (op?.kind === 'insert') {
        return { gitspaceId, providerId: machineNameFor(gitspaceId), status: 'provisioning', disks: [], labels };
      }
      const leftovers = await listDisks(gitspaceId, signal);
      if (leftovers.length === 0) return null;
      return {
        gitspaceId,
        providerId: machineNameFor(gitspaceId),
        status: 'deleting',
        disks: leftovers.map(([, disk]) => disk.name ?? ''),
        labels,
      };
    },

    async start(gitspaceId: string, bootstrap: AgentBootstrap, { idempotencyKey, signal }: ProviderCallOptions) {
      const found = await findInstance(gitspaceId, signal);
      if (!found) throw new InstanceNotFoundError(gitspaceId, 'gcp');
      const [zone, instance] = found;
      const name = instance.name ?? '';
      const status = STATUS_BY_GCP[instance.status ?? ''];
      if (status === 'running' || status === 'provisioning') return toInfo(instance);
      if (status === 'stopping') {
        throw new ProviderUnavailableError(`instance ${name} is still stopping; try again shortly`, 'gcp');
      }
      await refreshStartupScript(zone, instance, gitspaceId, bootstrap, idempotencyKey, signal);
      const [operation] = await call(`start ${name}`, signal, () =>
        clients.instances.start({
          project,
          zone,
          instance: name,
          requestId: deriveRequestId(`start:${zone}/${name}`, idempotencyKey),
        }),
      );
      const handle = handleOf('start', zone, operation.latestResponse);
      logger.info('instance starting', { gitspaceId, instance: name });
      return { ...toInfo(instance), status: 'provisioning', ...(handle ? { operation: handle } : {}) };
    },

    async stop(gitspaceId: string, { idempotencyKey, signal }: ProviderCallOptions): Promise<ProviderOperation | void> {
      const found = await findInstance(gitspaceId, signal);
      if (!found) return;
      const [zone, instance] = found;
      const name = instance.name ?? '';
      const status = STATUS_BY_GCP[instance.status ?? ''];
      if (status !== 'running' && status !== 'provisioning') return;
      try {
        const [operation] = await call(`stop ${name}`, signal, () =>
          clients.instances.stop({
            project,
            zone,
            instance: name,
            requestId: deriveRequestId(`stop:${zone}/${name}`, idempotencyKey),
          }),
        );
        logger.info('instance stopping', { gitspaceId, instance: name });
        return handleOf('stop', zone, operation.latestResponse);
      } catch (error) {
        if (!isGcpNotFound((error as { cause?: unknown }).cause ?? error)) throw error;
      }
    },

    async delete(
      gitspaceId: string,
      { idempotencyKey, signal }: ProviderCallOptions,
    ): Promise<ProviderOperation | void> {
      let started: ProviderOperation | undefined;
      for (const [zone, instance] of await listInstances(gitspaceId, signal)) {
        const name = instance.name ?? '';
        try {
          const [operation] = await call(`delete ${name}`, signal, () =>
            clients.instances.delete({
              project,
              zone,
              instance: name,
              requestId: deriveRequestId(`delete:${zone}/${name}`, idempotencyKey),
            }),
          );
          started = handleOf('delete', zone, operation.latestResponse) ?? started;
          logger.info('instance deleting', { gitspaceId, instance: name });
        } catch (error) {
          if (!isGcpNotFound((error as { cause?: unknown }).cause ?? error)) throw error;
        }
      }
      // Disks attached to nothing (left by a failed insert, or detached by hand) go too; attached ones go with
      // their instance (autoDelete).
      for (const [zone, disk] of await listDisks(gitspaceId, signal)) {
        const name = disk.name ?? '';
        if ((disk.users ?? []).length > 0) continue;
        try {
          await call(`delete disk ${name}`, signal, () =>
            clients.disks.delete({
              project,
              zone,
              disk: name,
              requestId: deriveRequestId(`delete-disk:${zone}/${name}`, idempotencyKey),
            }),
          );
          logger.info('disk deleting', { gitspaceId, disk: name });
        } catch (error) {
          if (!isGcpNotFound((error as { cause?: unknown }).cause ?? error)) throw error;
        }
      }
      return started;
    },

    async list({ signal }: ProviderCallOptions): Promise<MachineInfo[]> {
      const machines = (await listInstances(undefined, signal)).map(([, instance]) => toInfo(instance));
      const seen = new Set(machines.map((m) => m.labels[MACHINE_LABELS.gitspaceId]));
      const orphans = new Map<string, MachineInfo>();
      for (const [, disk] of await listDisks(undefined, signal)) {
        const label = disk.labels?.[MACHINE_LABELS.gitspaceId];
        if (label === undefined || seen.has(label)) continue;
        const entry = orphans.get(label) ?? {
          gitspaceId: label,
          providerId: disk.name ?? '',
          status: 'deleting' as const,
          disks: [],
          labels: { ...(disk.labels ?? {}) },
        };
        entry.disks.push(disk.name ?? '');
        orphans.set(label, entry);
      }
      return [...machines, ...orphans.values()];
    },
  };

  /** Rewrites the startup script when a restart brings a new agent secret (the script runs on every boot). */
  async function refreshStartupScript(
    zone: string,
    instance: Instance,
    gitspaceId: string,
    bootstrap: AgentBootstrap,
    idempotencyKey: string,
    signal: AbortSignal,
  ): Promise<void> {
    const items = instance.metadata?.items ?? [];
    const current = items.find((item) => item.key === 'startup-script')?.value ?? '';
    if (agentSecretIn(current) === bootstrap.agentSecret) return;
    const name = instance.name ?? '';
    const updated = [
      ...items.filter((item) => item.key !== 'startup-script'),
      { key: 'startup-script', value: startupScript(gitspaceId, bootstrap) },
    ];
    await call(`set metadata of ${name}`, signal, () =>
      clients.instances.setMetadata({
        project,
        zone,
        instance: name,
        requestId: deriveRequestId(`set-metadata:${zone}/${name}`, idempotencyKey),
        metadataResource: { fingerprint: instance.metadata?.fingerprint, items: updated },
      }),
    );
    logger.info('startup script updated with the new agent secret', { gitspaceId, instance: name });
  }
}
