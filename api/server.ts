import { ConflictError } from '../common/errors';
import path from 'node:path';
import http from 'node:http';
import { listen } from '../common/net';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { lifecycleWorkflowId } from '../contracts/lifecycle';
import { DEFAULT_ORPHAN_GRACE_SECONDS } from './reconciliation';
import {
  DEFAULT_PRUNE_EVERY_SECONDS,
  DEFAULT_WARM_POOL_EVERY_SECONDS,
  ensureInfrastructureSchedule,
  ensurePruneSchedule,
  removeInfrastructureSchedules,
  type InfrastructureScheduleKind,
} from './schedules';
import type { Retention } from '../activities/pruning';
import { installWorkerRuntime } from '../workers/runtime';
import { NativeConnection, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Logger } from '../common/logger';
import { connectionOptions, logTemporalConnection, type TemporalConnection } from '../common/temporal-connection';
import { newToken } from '../common/ids';
import { loadRunnerKeyRing } from '../common/sealed-secret';
import { readOrCreateSecretFile } from '../common/secret-file';
import {
  EncryptionCodec,
  loadPayloadKeyRing,
  payloadDataConverter,
  type PayloadKeyRing,
} from '../common/payload-codec';
import type { PayloadCodec } from '@temporalio/common';
import { openDatabase, type DatabaseLocation } from '../db/connect';
import { createStore, type Store } from '../db/store';
import {
  createControlPlaneWorker,
  makeWorkerVersionCurrent,
  type ControlPlaneVersioning,
} from '../workers/control-plane-worker';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { createAccessTokenIssuer } from './access-tokens';
import { createWorkOrderSigner } from '../common/work-order';
import { createApp } from './app';
import { SessionKey } from './auth/session-key';
import type { SignInSettings } from './auth/settings';
import { DEFAULT_EVENT_POLL_MS, EventFeed } from './event-feed';
import { listenForChanges } from '../db/change-listener';
import type { ApiLimits } from './limits';
import type { TrustedProxies } from '../common/client-address';
import { createLifecycleService } from './lifecycle-requests';
import {
  createAutoStopArming,
  createAutoStopServices,
  DEFAULT_AUTO_STOP_MIN_SECONDS,
  ensureAutoStopWatchers,
} from './auto-stop';
import { listRunners } from './runners';
import { createApiMetrics } from './metrics';

export interface ControlPlaneConfig {
  dataDir: string;
  database: DatabaseLocation;
  host: string;
  port: number;
  /** How to reach Temporal: Temporal's environment configuration, read in main (common/temporal-connection). */
  temporal: TemporalConnection;
  /** GITSPACES_ADMIN_TOKEN; when absent one is generated once and written to `<dataDir>/admin-token`. */
  adminToken?: string;
  /** GITSPACES_PAYLOAD_KEYS; when absent the key ring is kept in `<dataDir>/payload-keys` (generated once). */
  payloadKeys?: PayloadKeyRing;
  /** Register the `local` infrastructure and its `default` machine (the embedded default). */
  embeddedDefaults: boolean;
  /**
   * GITSPACES_LOCAL_RUNNER_PUBLIC_KEYS: the embedded `local` infrastructure's runner public keys, when its runner keeps
   * its own key ring (its own container or host); when absent, the ring in this data dir, shared with `npm start`'s.
   */
  localRunnerPublicKeys?: string[];
  /** The public gateway URL given to the embedded `local` infrastructure. */
  publicGatewayUrl: string;
  runnerPickupTimeoutSeconds: number;
  accessTokenTtlSeconds: number;
  /** How often each infrastructure is reconciled. */
  reconcileEverySeconds: number;
  /** How long a machine of an unknown gitspace is kept (stopped) before it is deleted; default one hour. */
  orphanGraceSeconds?: number;
  /** How long old records are kept (activities/pruning.ts DEFAULT_RETENTION where absent) and how often they are pruned. */
  retention?: Partial<Retention>;
  pruneEverySeconds?: number;
  /** How often each infrastructure's warm pools are brought back to their size (default 60 s). */
  warmPoolEverySeconds?: number;
  /** An Ed25519 private key (PKCS#8 PEM) for access tokens; when absent one is kept in the data dir. */
  accessTokenKeyPem?: string;
  /** An Ed25519 private key (PKCS#8 PEM) for work orders; when absent one is kept in the data dir. */
  workOrderKeyPem?: string;
  /** Reuse a workflow bundle (tests bundle once per file). */
  workflowBundle?: WorkflowBundleWithSourceMap;
  /**
   * GITSPACES_EVENT_POLL_MS: how often the event streams' one shared change feed reads everything; changes come sooner
   * through database notifications, so this only catches a lost one (default 30 s).
   */
  eventPollMs?: number;
  /** GITSPACES_EVENT_COALESCE_MS: the least time between two reads that notifications bring (default 250 ms). */
  eventCoalesceMs?: number;
  /** Rate limits, gitspace quota and event stream cap (README: configuration); the defaults where absent. */
  limits?: Partial<ApiLimits>;
  /** Reverse proxies whose `X-Forwarded-For` the limits believe (`GITSPACES_API_TRUSTED_PROXIES`); none by default. */
  trustedProxies?: TrustedProxies;
  /** The worker's build id and who makes it current (workers/control-plane-worker.ts); the defaults where absent. */
  versioning?: ControlPlaneVersioning;
  /** Dashboard sign-in and sessions (api/auth/settings.ts); API tokens only when absent. */
  signIn?: SignInSettings;
  /** GITSPACES_AUTO_STOP_WARNING_SECONDS (default 300) and GITSPACES_AUTO_STOP_MIN_SECONDS (default 60). */
  autoStop?: { warningSeconds?: number; minSeconds?: number };
  /** GITSPACES_ENABLE_SIMULATED_PROVIDER=1: accept infrastructures of the `simulated` provider (benchmarks only). */
  simulatedProvider?: boolean;
}

export interface RunningControlPlane {
  url: string;
  store: Store;
  client: Client;
  /** The codec every payload this control plane sends or receives goes through (replays need it too). */
  payloadCodec: PayloadCodec;
  adminToken: string;
  /** Where the generated admin token is kept (unset when GITSPACES_ADMIN_TOKEN gives it). */
  adminTokenFile?: string;
  /** True on the start that generated the admin token (its file is reported then; the token is never printed). */
  adminTokenCreated: boolean;
  stop(): Promise<void>;
}

/** The control plane: REST API + control-plane worker, the only process that touches its database. */
export async function startControlPlane(config: ControlPlaneConfig, logger: Logger): Promise<RunningControlPlane> {
  // Payloads are sealed with keys Temporal never sees; a payload not sealed with one of them is refused.
  const payloadCodec = new EncryptionCodec(
    config.payloadKeys ?? (await loadPayloadKeyRing({ dataDir: config.dataDir })),
  );
  const dataConverter = payloadDataConverter(payloadCodec);
  const db = await openDatabase(config.database);
  const store = createStore(db);
  const admin = await ensureAdmin(store, config);
  if (config.embeddedDefaults) {
    // The `local` runner's public keys: configured (its own container or host), or, for the runner of `npm start`
    // that shares this data dir, read from its key ring there (made here if it is not yet).
    const runnerKeys =
      config.localRunnerPublicKeys ?? (await loadRunnerKeyRing(config.dataDir)).publicKeys().map(String);
    await ensureEmbeddedDefaults(store, config.publicGatewayUrl, logger, runnerKeys, {
      replaceKeys: config.localRunnerPublicKeys !== undefined,
    });
  }

  logTemporalConnection(logger, config.temporal);
  const connection = await Connection.connect(connectionOptions(config.temporal));
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter });
  installWorkerRuntime();
  const workerConnection = await NativeConnection.connect(connectionOptions(config.temporal));
  // Its own key, not the access-token key (common/work-order.ts); the public half is written beside it for a runner.
  const workOrders = await createWorkOrderSigner({
    dataDir: config.dataDir,
    ...(config.workOrderKeyPem ? { privateKeyPem: config.workOrderKeyPem } : {}),
  });
  // One registry for the API's /metrics and the worker's lifecycle observations.
  const metrics = createApiMetrics(store);
  // Before the worker: the auto-stop's activities ask the lifecycle service for their stops.
  const autoStopArming = createAutoStopArming(client, logger.child('auto-stop'));
  const lifecycle = createLifecycleService({
    client,
    store,
    logger: logger.child('lifecycle'),
    onAccepted: (gitspaceId, action) => void (action !== 'start' && autoStopArming.recheck(gitspaceId)),
  });
  const worker = await createControlPlaneWorker({
    connection: workerConnection,
    lifecycleDuration: metrics.lifecycleDuration,
    namespace: config.temporal.namespace,
    dataConverter,
    workflowBundle: config.workflowBundle ?? (await bundleLifecycleWorkflows()),
    store,
    logger: logger.child('worker'),
    runnerPickupTimeoutSeconds: config.runnerPickupTimeoutSeconds,
    orphanGraceSeconds: config.orphanGraceSeconds ?? DEFAULT_ORPHAN_GRACE_SECONDS,
    ...(config.retention ? { retention: config.retention } : {}),
    workOrders,
    ...(config.versioning ? { versioning: config.versioning } : {}),
    isLifecycleRunning: lifecycleRunningCheck(client),
    autoStop: createAutoStopServices({
      arming: autoStopArming,
      lifecycle,
      ...(config.autoStop?.warningSeconds ? { warningSeconds: config.autoStop.warningSeconds } : {}),
    }),
  });
  const workerDone = worker.run();
  if (config.versioning?.promotion !== 'manual') await makeWorkerVersionCurrent(client, worker, { logger });
  // Make every gitspace's recorded state true again (after a crash or a host restart), now and on a schedule.
  const everySeconds: Record<InfrastructureScheduleKind, number> = {
    reconcile: config.reconcileEverySeconds,
    'warm-pool': config.warmPoolEverySeconds ?? DEFAULT_WARM_POOL_EVERY_SECONDS,
  };
  const schedule = (kind: InfrastructureScheduleKind, infrastructureId: string, trigger: boolean) =>
    ensureInfrastructureSchedule(client, kind, infrastructureId, { everySeconds: everySeconds[kind], trigger, logger });
  const pooled = await store.infrastructuresWithWarmPools();
  for (const infrastructure of await store.listInfrastructures()) {
    await schedule('reconcile', infrastructure.id, true);
    if (pooled.has(infrastructure.id)) await schedule('warm-pool', infrastructure.id, true);
  }
  await ensureAutoStopWatchers(store, autoStopArming, logger.child('auto-stop'));
  await ensurePruneSchedule(client, { everySeconds: config.pruneEverySeconds ?? DEFAULT_PRUNE_EVERY_SECONDS, logger });

  const accessTokens = await createAccessTokenIssuer({
    dataDir: config.dataDir,
    ttlSeconds: config.accessTokenTtlSeconds,
    ...(config.accessTokenKeyPem ? { privateKeyPem: config.accessTokenKeyPem } : {}),
  });
  const eventFeed = new EventFeed({
    store,
    pollMs: config.eventPollMs ?? DEFAULT_EVENT_POLL_MS,
    ...(config.eventCoalesceMs ? { coalesceMs: config.eventCoalesceMs } : {}),
    logger: logger.child('events'),
  });
  const changeListener = await listenForChanges(config.database, db, eventFeed, logger.child('events'));
  // The key that seals the provider's refresh tokens and the sign-in state: every API replica must share it.
  const signIn = config.signIn && {
    settings: { ...config.signIn, temporalNamespace: config.temporal.namespace },
    key: await SessionKey.load({
      dataDir: config.dataDir,
      ...(config.signIn.sessionKey ? { key: config.signIn.sessionKey } : {}),
    }),
  };
  const app = createApp({
    store,
    metrics,
    eventFeed,
    ...(config.limits ? { limits: config.limits } : {}),
    ...(config.trustedProxies ? { trustedProxies: config.trustedProxies } : {}),
    ...(signIn ? { signIn } : {}),
    accessTokens,
    lifecycle,
    autoStop: {
      minSeconds: config.autoStop?.minSeconds ?? DEFAULT_AUTO_STOP_MIN_SECONDS,
      recheck: autoStopArming.recheck,
    },
    ...(config.simulatedProvider ? { simulatedProvider: true } : {}),
    onInfrastructureCreated: (infrastructureId) => schedule('reconcile', infrastructureId, false),
    runners: (infrastructureId) => listRunners(client, infrastructureId),
    onInfrastructureDeleted: (infrastructureId) => removeInfrastructureSchedules(client, infrastructureId, logger),
    onWarmPoolChanged: (infrastructureId) => schedule('warm-pool', infrastructureId, true),
    logger,
    ready: async () => {
      await store.ping();
      await client.workflowService.getSystemInfo({});
    },
  });
  // Node's own server rather than app.listen: Express 5 hands a listen error to the callback, which would then run as
  // if listening had worked.
  const server = http.createServer(app);
  const url = await listen(server, config.port, config.host);
  logger.info('control plane listening', { url });

  return {
    url,
    store,
    client,
    payloadCodec,
    adminToken: admin.token,
    adminTokenCreated: admin.created,
    ...(admin.file ? { adminTokenFile: admin.file } : {}),
    async stop() {
      eventFeed.close();
      await changeListener.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      worker.shutdown();
      await workerDone;
      await workerConnection.close();
      await connection.close();
      await db.destroy();
    },
  };
}

/**
 * The admin user and its token: the configured one, or one generated on first start and kept in the data dir. API
 * replicas starting at once on an empty database both try to create the admin: the one that loses uses the winner's.
 */
export async function ensureAdmin(
  store: Store,
  config: Pick<ControlPlaneConfig, 'adminToken' | 'dataDir'>,
): Promise<{ token: string; file?: string; created: boolean }> {
  let admin = await store.findUserByName('admin');
  if (!admin) {
    admin = await store.createUser('admin', 'admin').then(
      (created) => created.user,
      async (error: unknown) => {
        // Another replica created it a moment ago.
        if (!(error instanceof ConflictError)) throw error;
        return (await store.findUserByName('admin'))!;
      },
    );
  }
  if (config.adminToken) {
    await store.addToken(admin.id, config.adminToken);
    return { token: config.adminToken, created: false };
  }
  const file = path.join(config.dataDir, 'admin-token');
  const { value, created } = await readOrCreateSecretFile(file, () => newToken('gsp'));
  await store.addToken(admin.id, value);
  return { token: value, file, created };
}

/** Registers the embedded `local` infrastructure and its `default` machine, once (tests of the API alone use it too). */
export async function ensureEmbeddedDefaults(
  store: Store,
  gatewayUrl: string,
  logger: Logger,
  runnerPublicKeys: string[] = [],
  options: { replaceKeys?: boolean } = {},
): Promise<void> {
  const existing = (await store.listInfrastructures()).find((i) => i.id === 'local');
  if (existing) {
    // Configured keys win; otherwise only an infrastructure registered before runner keys gets the shared ring's.
    const replace = options.replaceKeys || existing.runnerPublicKeys.length === 0;
    if (replace && runnerPublicKeys.length > 0 && existing.runnerPublicKeys.join() !== runnerPublicKeys.join()) {
      await store.updateInfrastructure('local', { runnerPublicKeys });
    }
    return;
  }
  // Its machines run on the runner host, where a developer's own git server usually is too: loopback is allowed.
  const config = { repositoryNetworks: { allowLoopback: true } };
  try {
    await store.createInfrastructure({
      id: 'local',
      name: 'local',
      provider: 'local',
      config,
      gatewayUrl,
      runnerPublicKeys,
    });
  } catch (error) {
    // Another API replica starting at the same moment registered it first (it makes the machine too).
    if (!(error instanceof ConflictError)) throw error;
    return ensureEmbeddedDefaults(store, gatewayUrl, logger, runnerPublicKeys, options);
  }
  await store.createMachine({
    id: 'local-default',
    infrastructureId: 'local',
    name: 'default',
    machineType: 'local',
    diskSizeGb: 10,
    region: null,
    zone: null,
    image: null,
  });
  logger.info("registered the embedded 'local' infrastructure with machine 'default'");
}

/** Whether a gitspace's lifecycle workflow is running, asked of Temporal (what reconciliation must not repair). */
export function lifecycleRunningCheck(client: Client): (gitspaceId: string) => Promise<boolean> {
  return async (gitspaceId) => {
    try {
      return (await client.workflow.getHandle(lifecycleWorkflowId(gitspaceId)).describe()).status.name === 'RUNNING';
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return false;
      throw error;
    }
  };
}
