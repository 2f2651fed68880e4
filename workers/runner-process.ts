import path from 'node:path';
import { installWorkerRuntime } from './runtime';
import { NativeConnection } from '@temporalio/worker';
import { createAgentClient } from '../activities/agent-client';
import { createGatewayAdminClient } from '../activities/gateway-admin-client';
import type { Logger } from '../common/logger';
import { SecretsKey } from '../common/sealed-secret';
import { readOrCreateSecretFile } from '../common/secret-file';
import { createProviderResolver } from '../providers';
import { createRunnerWorker } from './runner';

export interface RunnerConfig {
  infrastructureId: string;
  temporalAddress: string;
  namespace: string;
  dataDir: string;
  secretsKey?: string;
  gatewayAdminUrl: string;
  gatewayAdminToken?: string;
  agentEndpoint?: string;
  gcpComputeEndpoint?: string;
  installationId: string;
  pollIntervalMs?: number;
}

export interface RunningRunner {
  stop(): Promise<void>;
}

/** Starts a runner for one infrastructure: connects out to Temporal and polls that infrastructure's queue. */
export async function startRunner(config: RunnerConfig, logger: Logger): Promise<RunningRunner> {
  const secretsKey =
    config.secretsKey ??
    (await readOrCreateSecretFile(path.join(config.dataDir, 'secrets-key'), SecretsKey.generateBase64)).value;
  const gatewayToken =
    config.gatewayAdminToken ??
    (await readOrCreateSecretFile(path.join(config.dataDir, 'gateway-admin-token'), () => SecretsKey.generateBase64()))
      .value;
  installWorkerRuntime();
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const providers = createProviderResolver({
    localRoot: path.join(config.dataDir, 'machines'),
    installationId: config.installationId,
    logger,
    ...(config.gcpComputeEndpoint ? { gcpComputeEndpoint: config.gcpComputeEndpoint } : {}),
  });
  const worker = await createRunnerWorker({
    connection,
    namespace: config.namespace,
    infrastructureId: config.infrastructureId,
    resolveProvider: providers,
    agents: createAgentClient(),
    gateway: createGatewayAdminClient({ url: config.gatewayAdminUrl, token: gatewayToken }),
    secrets: SecretsKey.fromBase64(secretsKey),
    ...(config.agentEndpoint ? { agentEndpoint: config.agentEndpoint } : {}),
    ...(config.pollIntervalMs ? { pollIntervalMs: config.pollIntervalMs } : {}),
    logger,
  });
  const done = worker.run();
  logger.info('runner polling', { infrastructureId: config.infrastructureId });
  return {
    async stop() {
      worker.shutdown();
      await done;
      await providers.close();
      await connection.close();
    },
  };
}
