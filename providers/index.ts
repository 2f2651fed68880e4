import { repositoryNetworksSchema } from '../agent/repository-address';
import { InputError, type FieldProblem } from '../common/errors';
import type { Logger } from '../common/logger';
import { parseAwsInfrastructureConfig, validateAwsMachineSpec } from './aws/config';
import { createAwsProvider, createEc2Client } from './aws/provider';
import { parseWithProblems, type ParseResult } from './config-problems';
import { parseGcpInfrastructureConfig, validateGcpMachineSpec } from './gcp/config';
import { createGcpClients, createGcpProvider, type GcpClients } from './gcp/provider';
import { createLocalProvider } from './local/provider';
import type { MachineSpec, Provider, ProviderName } from '../contracts/provider';

export interface ProviderResolverOptions {
  /** Where the local provider keeps machine directories. */
  localRoot: string;
  installationId: string;
  logger: Logger;
  /** An emulator's Compute API base URL (GITSPACES_GCP_COMPUTE_ENDPOINT); AWS reads AWS_ENDPOINT_URL_EC2 itself. */
  gcpComputeEndpoint?: string;
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
  const resolve = (infrastructure: { provider: ProviderName; providerConfig: Record<string, unknown> }): Provider => {
    const key = `${infrastructure.provider}:${JSON.stringify(infrastructure.providerConfig)}`;
    let provider = cache.get(key);
    if (provider) return provider;
    const { installationId, logger } = options;
    switch (infrastructure.provider) {
      case 'local':
        provider = createLocalProvider({ rootDir: options.localRoot, logger: logger.child('local') });
        break;
      case 'aws': {
        const config = valid(parseAwsInfrastructureConfig(infrastructure.providerConfig), 'aws');
        provider = createAwsProvider({
          config,
          installationId,
          ec2: createEc2Client({ region: config.region }),
          logger: logger.child('aws'),
        });
        break;
      }
      case 'gcp': {
        const config = valid(parseGcpInfrastructureConfig(infrastructure.providerConfig), 'gcp');
        gcpClients ??= createGcpClients(options.gcpComputeEndpoint ? { apiEndpoint: options.gcpComputeEndpoint } : {});
        provider = createGcpProvider({ config, installationId, clients: gcpClients, logger: logger.child('gcp') });
        break;
      }
    }
    cache.set(key, provider);
    return provider;
  };
  return Object.assign(resolve, {
    close: async () => {
      await gcpClients?.close();
    },
  });
}

/** Validates an infrastructure's `config` for its provider; problems carry paths under `config.`. */
export function validateInfrastructureConfig(
  provider: ProviderName,
  config: Record<string, unknown>,
): Record<string, unknown> {
  switch (provider) {
    case 'local': {
      // The local provider keeps machines in the runner's data dir: its one setting is shared by every provider.
      const problems: FieldProblem[] = Object.keys(config)
        .filter((key) => key !== 'repositoryNetworks')
        .map((key) => ({ path: `config.${key}`, message: 'is not a setting of the local provider' }));
      const networks = parseWithProblems(
        repositoryNetworksSchema.optional(),
        config.repositoryNetworks,
        'config.repositoryNetworks',
      );
      if (!networks.ok) problems.push(...networks.problems);
      if (problems.length > 0) throw invalid('the local infrastructure config is invalid', problems);
      return config;
    }
    case 'aws':
      return valid(parseAwsInfrastructureConfig(config), 'aws');
    case 'gcp':
      return valid(parseGcpInfrastructureConfig(config), 'gcp');
  }
}

/** Validates a machine's type, disk and image against its infrastructure's provider and config. */
export function validateMachineSpec(provider: ProviderName, config: Record<string, unknown>, spec: MachineSpec): void {
  let problems: FieldProblem[] = [];
  if (provider === 'local' && spec.image !== undefined) {
    problems = [{ path: 'image', message: 'the local provider runs on the runner host and takes no image' }];
  } else if (provider === 'aws') {
    problems = validateAwsMachineSpec(valid(parseAwsInfrastructureConfig(config), 'aws'), spec);
  } else if (provider === 'gcp') {
    problems = validateGcpMachineSpec(valid(parseGcpInfrastructureConfig(config), 'gcp'), spec);
  }
  if (problems.length > 0) throw invalid(`the machine does not fit the ${provider} provider`, problems);
}

function valid<T>(result: ParseResult<T>, provider: ProviderName): T {
  if (!result.ok) throw invalid(`the ${provider} infrastructure config is invalid`, result.problems);
  return result.value;
}

function invalid(summary: string, problems: FieldProblem[]): InputError {
  return new InputError(`${summary}: ${problems.map((p) => `${p.path} ${p.message}`).join('; ')}`, problems);
}
