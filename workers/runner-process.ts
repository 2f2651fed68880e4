import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { installWorkerRuntime } from './runtime';
import { NativeConnection } from '@temporalio/worker';
import { createAgentClient } from '../activities/agent-client';
import { createGatewayAdminClient } from '../activities/gateway-admin-client';
import type { Logger } from '../common/logger';
import { connectionOptions, logTemporalConnection, type TemporalConnection } from '../common/temporal-connection';
import { LegacySecretsKey, loadRunnerKeyRing, type RunnerKeyRing } from '../common/sealed-secret';
import { readOrCreateGatewayAdminToken } from '../common/gateway-route';
import { createSecretStore, type SecretStoreConfig } from '../activities/secret-store';
import {
  EncryptionCodec,
  loadPayloadKeyRing,
  payloadDataConverter,
  type PayloadKeyRing,
} from '../common/payload-codec';
import { createProviderResolver } from '../providers/resolver';
import { localMachinesRoot, localVscode, migrateLegacyMachines } from '../providers/local/provider';
import { isSandboxed, localSandbox } from '../providers/local/sandbox';
import { createRunnerWorker } from './runner';
import { PACKAGE_VERSION } from '../common/package-version';
import { RunnerMetrics, serveRunnerMetrics, type RunnerMetricsListen } from './runner-metrics';
import { RUNNER_CONTRACT_VERSION, WORK_ORDER_PUBLIC_KEY_FILE, createWorkOrderVerifier } from '../common/work-order';

export interface RunnerConfig {
  infrastructureId: string;
  /** How to reach Temporal: Temporal's environment configuration, read in main (common/temporal-connection). */
  temporal: TemporalConnection;
  dataDir: string;
  /**
   * GITSPACES_RUNNER_KEYS: the infrastructure's runner key ring (common/sealed-secret.ts), the same on every runner of
   * the infrastructure. When absent it is kept in `<dataDir>/runner-keys` (generated once).
   */
  runnerKeys?: RunnerKeyRing;
  /** GITSPACES_SECRETS_KEY of earlier versions: only to open tokens they sealed; `<dataDir>/secrets-key` if there. */
  legacySecretsKey?: string;
  /** GITSPACES_SECRET_STORE: where `repository.tokenRef` names are resolved; none by default. */
  secretStore?: SecretStoreConfig;
  /**
   * GITSPACES_WORK_ORDER_PUBLIC_KEY: the control plane's work-order public key (SPKI PEM). When absent, a runner that
   * shares the control plane's data dir reads `<dataDir>/work-order-public-key.pem`; without either it refuses all work.
   */
  workOrderPublicKeyPem?: string;
  /** GITSPACES_PAYLOAD_KEYS; when absent the key ring is kept in `<dataDir>/payload-keys` (generated once). */
  payloadKeys?: PayloadKeyRing;
  gatewayAdminUrl: string;
  gatewayAdminToken?: string;
  agentEndpoint?: string;
  gcpComputeEndpoint?: string;
  installationId: string;
  pollIntervalMs?: number;
  /** Where the local provider keeps machines (GITSPACES_LOCAL_MACHINES_DIR); default beside the data dir. */
  localMachinesDir?: string;
  /** `required`: refuse to start when local gitspaces cannot be sandboxed (GITSPACES_LOCAL_SANDBOX). */
  localSandbox?: 'auto' | 'required';
  /** GITSPACES_LOCAL_VSCODE_COMMAND: the VS Code server command of local `vscode-web` gitspaces (none by default). */
  localVscodeCommand?: string;
  /**
   * GITSPACES_ENABLE_SIMULATED_PROVIDER=1: serve infrastructures of the `simulated` provider (providers/simulated),
   * whose machines are answered by this runner. Benchmarks and tests only; off by default.
   */
  simulatedProvider?: boolean;
  /**
   * The runner contract version this runner speaks (common/work-order.ts), default RUNNER_CONTRACT_VERSION. Only tests
   * set it, to act as a runner that was not upgraded.
   */
  contractVersion?: number;
  /**
   * Where to serve `GET /metrics` (GITSPACES_RUNNER_METRICS_PORT, _HOST, _TOKEN): activities and provider calls
   * (workers/runner-metrics.ts). No listener when absent.
   */
  metrics?: RunnerMetricsListen;
}

export interface RunningRunner {
  /** The base URL of the metrics listener, when there is one. */
  metricsUrl?: string;
  stop(): Promise<void>;
}

/** Starts a runner for one infrastructure: connects out to Temporal and polls that infrastructure's queue. */
export async function startRunner(config: RunnerConfig, logger: Logger): Promise<RunningRunner> {
  const runnerKeys = config.runnerKeys ?? (await loadRunnerKeyRing(config.dataDir));
  logger.info('runner public keys: register them on the infrastructure (runnerPublicKeys) to seal tokens to it', {
    infrastructureId: config.infrastructureId,
    runnerPublicKeys: runnerKeys.publicKeys().map(String),
  });
  const legacySecretsKey = config.legacySecretsKey ?? (await readIfThere(path.join(config.dataDir, 'secrets-key')));
  // The control plane's public key; a runner beside it (same data dir) finds it there once the control plane wrote it.
  const workOrders = createWorkOrderVerifier({
    ...(config.workOrderPublicKeyPem !== undefined
      ? { publicKeyPem: config.workOrderPublicKeyPem }
      : { dataDir: config.dataDir }),
    ...(config.contractVersion !== undefined ? { contractVersion: config.contractVersion } : {}),
  });
  if (config.workOrderPublicKeyPem === undefined) {
    const file = path.join(config.dataDir, WORK_ORDER_PUBLIC_KEY_FILE);
    if (
      !(await access(file).then(
        () => true,
        () => false,
      ))
    ) {
      logger.warn(
        `no work order public key yet (GITSPACES_WORK_ORDER_PUBLIC_KEY or ${file}): every task is refused until one is there`,
      );
    }
  }
  const payloadCodec = new EncryptionCodec(
    config.payloadKeys ?? (await loadPayloadKeyRing({ dataDir: config.dataDir })),
  );
  const gatewayToken = config.gatewayAdminToken ?? (await readOrCreateGatewayAdminToken(config.dataDir)).value;
  const localRoot = path.resolve(config.localMachinesDir ?? localMachinesRoot(config.dataDir));
  const fromData = path.relative(path.resolve(config.dataDir), localRoot);
  if (!fromData.startsWith('..') && !path.isAbsolute(fromData)) {
    // A gitspace's machine must never be where the control plane keeps its secrets.
    throw new Error(`the local machines dir ${localRoot} must not be inside the data dir ${config.dataDir}`);
  }
  // Its directory is readable in every local gitspace: never one that holds what the runner keeps to itself.
  const vscode = config.localVscodeCommand
    ? localVscode(config.localVscodeCommand, [config.dataDir, localRoot, os.userInfo().homedir])
    : undefined;
  // Machines an older version kept inside the data dir move out of it (their unsandboxed agents are stopped).
  await migrateLegacyMachines(path.join(config.dataDir, 'machines'), localRoot, logger.child('local'));
  // Found (and, when gitspaces are not sandboxed, said loudly) once, at start, by runners of the local
  // infrastructure; another runner finds it when it first serves a local infrastructure.
  if (config.infrastructureId === 'local' || config.localSandbox === 'required') {
    const sandbox = await localSandbox(localRoot, logger.child('local'));
    if (config.localSandbox === 'required' && !isSandboxed(sandbox)) {
      throw new Error(`GITSPACES_LOCAL_SANDBOX=required, but local gitspaces cannot be sandboxed: ${sandbox.reason}`);
    }
  }
  installWorkerRuntime();
  logTemporalConnection(logger, config.temporal);
  const connection = await NativeConnection.connect(connectionOptions(config.temporal));
  const metrics = config.metrics ? new RunnerMetrics() : undefined;
  const providers = createProviderResolver({
    localRoot,
    ...(vscode ? { localVscode: vscode } : {}),
    installationId: config.installationId,
    logger,
    ...(config.gcpComputeEndpoint ? { gcpComputeEndpoint: config.gcpComputeEndpoint } : {}),
    ...(config.simulatedProvider ? { simulatedProvider: true } : {}),
  });
  if (config.simulatedProvider) {
    logger.warn(
      'the simulated provider is enabled (GITSPACES_ENABLE_SIMULATED_PROVIDER): for benchmarks and tests only',
    );
  }
  const worker = await createRunnerWorker({
    connection,
    namespace: config.temporal.namespace,
    dataConverter: payloadDataConverter(payloadCodec),
    infrastructureId: config.infrastructureId,
    resolveProvider: metrics ? (spec) => metrics.instrumentProvider(providers(spec), spec.provider) : providers,
    ...(metrics ? { activityInterceptors: [metrics.activityInterceptor] } : {}),
    agents: createAgentClient(),
    gateway: createGatewayAdminClient({ url: config.gatewayAdminUrl, token: gatewayToken }),
    runnerKeys,
    ...(legacySecretsKey ? { legacySecrets: LegacySecretsKey.fromBase64(legacySecretsKey) } : {}),
    ...(config.secretStore ? { secretStore: createSecretStore(config.secretStore) } : {}),
    workOrders,
    ...(config.agentEndpoint ? { agentEndpoint: config.agentEndpoint } : {}),
    ...(config.pollIntervalMs ? { pollIntervalMs: config.pollIntervalMs } : {}),
    ...(config.contractVersion !== undefined ? { contractVersion: config.contractVersion } : {}),
    logger,
  });
  // Listening before polling: a metrics port in use fails the start rather than leaving a runner half up.
  const metricsServer = metrics && config.metrics ? await serveRunnerMetrics(metrics, config.metrics) : undefined;
  const done = worker.run();
  if (metricsServer) {
    logger.info('runner metrics listening', {
      url: `${metricsServer.url}/metrics`,
      tokenRequired: config.metrics?.token !== undefined,
    });
  }
  logger.info('runner polling', {
    infrastructureId: config.infrastructureId,
    version: PACKAGE_VERSION,
    contractVersion: config.contractVersion ?? RUNNER_CONTRACT_VERSION,
  });
  return {
    ...(metricsServer ? { metricsUrl: metricsServer.url } : {}),
    async stop() {
      await metricsServer?.close();
      worker.shutdown();
      await done;
      await providers.close();
      await connection.close();
    },
  };
}

async function readIfThere(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
