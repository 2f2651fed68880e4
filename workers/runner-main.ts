import { runMain } from '../common/main';
import path from 'node:path';
import { ConfigReader } from '../common/config';
import { preparePrivateDataDir } from '../common/data-dir';
import { createLogger, readLogSettings } from '../common/logger';
import { readTemporalConnection } from '../common/temporal-connection';
import { PAYLOAD_KEYS_ENV, PayloadKeyRing } from '../common/payload-codec';
import { startRunner } from './runner-process';
import { localVscodeCommand } from '../providers/local/provider';
import { isLoopbackHost, type RunnerMetricsListen } from './runner-metrics';
import { RunnerKeyRing } from '../common/sealed-secret';
import { parseSecretStoreConfig } from '../activities/secret-store';

/** `npm run runner`: the delegate + VM runner for the infrastructure named by GITSPACES_INFRASTRUCTURE_ID. */
async function main(): Promise<{ stop(): Promise<void> }> {
  const config = new ConfigReader(process.env);
  const settings = {
    infrastructureId: config.string('GITSPACES_INFRASTRUCTURE_ID', 'local'),
    // TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE.
    temporal: config.include(() => readTemporalConnection(process.env))!,
    dataDir: path.resolve(config.string('GITSPACES_DATA_DIR', '.gitspaces')),
    legacySecretsKey: config.string('GITSPACES_SECRETS_KEY'),
    runnerKeys: config.parsed('GITSPACES_RUNNER_KEYS', (raw) => (raw ? RunnerKeyRing.parse(raw) : undefined)),
    workOrderPublicKeyPem: config.string('GITSPACES_WORK_ORDER_PUBLIC_KEY'),
    gatewayAdminUrl: config.url('GITSPACES_GATEWAY_ADMIN_URL', 'http://127.0.0.1:3002')!,
    gatewayAdminToken: config.string('GITSPACES_GATEWAY_ADMIN_TOKEN'),
    agentEndpoint: config.url('GITSPACES_AGENT_ENDPOINT'),
    gcpComputeEndpoint: config.url('GITSPACES_GCP_COMPUTE_ENDPOINT'),
    installationId: config.string('GITSPACES_INSTALLATION_ID', 'default'),
    localSandbox: config.oneOf('GITSPACES_LOCAL_SANDBOX', ['auto', 'required'], 'auto'),
    simulatedProvider: config.oneOf('GITSPACES_ENABLE_SIMULATED_PROVIDER', ['0', '1'], '0') === '1',
    // `<executable> <arguments with {port} and {workspace}>`, e.g. `code-server --bind-addr 127.0.0.1:{port} --auth none {workspace}`.
    localVscodeCommand: config.parsed('GITSPACES_LOCAL_VSCODE_COMMAND', (raw) =>
      raw?.trim() ? localVscodeCommand(raw, process.env.PATH ?? '') : undefined,
    ),
  };
  const localMachinesDir = config.string('GITSPACES_LOCAL_MACHINES_DIR');
  const payloadKeys = config.string(PAYLOAD_KEYS_ENV);
  const secretStore = config.parsed('GITSPACES_SECRET_STORE', (raw) => (raw ? parseSecretStoreConfig(raw) : undefined));
  const secretManagerEndpoint = config.url('GITSPACES_GCP_SECRET_MANAGER_ENDPOINT');
  // GET /metrics: off unless a port is given; on loopback by default; a token is required anywhere else.
  const metricsPort = config.string('GITSPACES_RUNNER_METRICS_PORT')
    ? config.port('GITSPACES_RUNNER_METRICS_PORT', 0)
    : undefined;
  const metricsHost = config.string('GITSPACES_RUNNER_METRICS_HOST', '127.0.0.1');
  const metricsToken = config.string('GITSPACES_RUNNER_METRICS_TOKEN');
  const metrics = config.parsed('GITSPACES_RUNNER_METRICS_HOST', (): RunnerMetricsListen | undefined => {
    if (metricsPort === undefined) return undefined;
    if (!isLoopbackHost(metricsHost) && metricsToken === undefined) {
      throw new Error(
        `'${metricsHost}' is not a loopback address: set GITSPACES_RUNNER_METRICS_TOKEN too, so only the scraper reads the runner's metrics`,
      );
    }
    return { host: metricsHost, port: metricsPort, ...(metricsToken !== undefined ? { token: metricsToken } : {}) };
  });
  const logSettings = config.include(() => readLogSettings(process.env));
  config.done();
  await preparePrivateDataDir(settings.dataDir);

  const logger = createLogger(`runner:${settings.infrastructureId}`, logSettings);
  const runner = await startRunner(
    {
      ...settings,
      ...(localMachinesDir ? { localMachinesDir: path.resolve(localMachinesDir) } : {}),
      ...(secretStore
        ? {
            secretStore:
              secretStore.kind === 'gcp' && secretManagerEndpoint
                ? { ...secretStore, apiEndpoint: secretManagerEndpoint }
                : secretStore,
          }
        : {}),
      ...(payloadKeys !== undefined ? { payloadKeys: PayloadKeyRing.parse(payloadKeys) } : {}),
      ...(metrics ? { metrics } : {}),
    },
    logger,
  );
  return {
    stop: () => {
      logger.info('shutting down; running gitspaces keep running');
      return runner.stop();
    },
  };
}

runMain(main);
