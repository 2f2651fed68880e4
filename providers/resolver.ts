/**
 * The provider resolver of the runner: it loads the cloud SDKs. The API validates configs with ./validation.ts, which
 * loads none.
 */
import type { Logger } from '../common/logger';
import { parseAwsInfrastructureConfig } from './aws/config';
import { createAwsProvider, createEc2Client } from './aws/provider';
import { parseGcpInfrastructureConfig } from './gcp/config';
import { createGcpClients, createGcpProvider, type GcpClients } from './gcp/provider';
import { createLocalProvider, type LocalVscode } from './local/provider';
import { parseSimulatedInfrastructureConfig } from './simulated/config';
import { createSimulatedCloud, type SimulatedCloud } from './simulated/provider';
import { ProviderAuthError } from '../contracts/provider-errors';
import type { Provider, ProviderName } from '../contracts/provider';
import { validConfig } from './validation';

export interface ProviderResolverOptions {
  /** Where the local provider keeps machine directories. */
  localRoot: string;
  /** The VS Code server of local `vscode-web` agents (GITSPACES_LOCAL_VSCODE_COMMAND). */
  localVscode?: LocalVscode;
  installationId: string;
  logger: Logger;
  /** An emulator's Compute API base URL (GITSPACES_GCP_COMPUTE_ENDPOINT); AWS reads AWS_ENDPOINT_URL_EC2 itself. */
  gcpComputeEndpoint?: string;
  /** Serve the `simulated` provider (GITSPACES_ENABLE_SIMULATED_PROVIDER=1): benchmarks and tests only. */
  simulatedProvider?: boolean;
}

export interface ProviderResolver {
  (infrastructure: { provider: ProviderName; providerConfig: Record<string, unknown> }): Provider;
  close(): Promise<void>;
}

/**
 * Builds providers on demand from an infrastructure's provider name and config (which travel in the workflow's
 * activity input), with the runner's own credentials; one instance per distinct config, so a provider's memory of
 * operations it started survives across activities.
 */
export function createProviderResolver(options: ProviderResolverOptions): ProviderResolver {
  const cache = new Map<string, Provider>();
  let gcpClients: GcpClients | undefined;
  let simulatedCloud: SimulatedCloud | undefined;
  const resolve = (infrastructure: { provider: ProviderName; providerConfig: Record<string, unknown> }): Provider => {
    const key = `${infrastructure.provider}:${JSON.stringify(infrastructure.providerConfig)}`;
    let provider = cache.get(key);
    if (provider) return provider;
    const { installationId, logger } = options;
    switch (infrastructure.provider) {
      case 'local':
        provider = createLocalProvider({
          rootDir: options.localRoot,
          logger: logger.child('local'),
          ...(options.localVscode ? { vscode: options.localVscode } : {}),
        });
        break;
      case 'aws': {
        const config = validConfig(parseAwsInfrastructureConfig(infrastructure.providerConfig), 'aws');
        provider = createAwsProvider({
          config,
          installationId,
          ec2: createEc2Client({ region: config.region }),
          logger: logger.child('aws'),
        });
        break;
      }
      case 'gcp': {
        const config = validConfig(parseGcpInfrastructureConfig(infrastructure.providerConfig), 'gcp');
        gcpClients ??= createGcpClients(options.gcpComputeEndpoint ? { apiEndpoint: options.gcpComputeEndpoint } : {});
        provider = createGcpProvider({ config, installationId, clients: gcpClients, logger: logger.child('gcp') });
        break;
      }
      case 'simulated': {
        if (!options.simulatedProvider) {
          throw new ProviderAuthError(
            "this runner does not serve the 'simulated' provider (benchmarks and tests only): start it with GITSPACES_ENABLE_SIMULATED_PROVIDER=1",
            'simulated',
          );
        }
        const config = validConfig(parseSimulatedInfrastructureConfig(infrastructure.providerConfig), 'simulated');
        simulatedCloud ??= createSimulatedCloud({ logger: logger.child('simulated') });
        provider = simulatedCloud.provider(config);
        break;
      }
    }
    cache.set(key, provider);
    return provider;
  };
  return Object.assign(resolve, {
    close: async () => {
      await gcpClients?.close();
      await simulatedCloud?.close();
    },
  });
}
