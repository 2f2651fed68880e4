/**
 * Validation of infrastructure configs and machine specs against their provider: zod schemas only, no cloud SDK, so
 * the API can check what it stores without loading the providers (the runner's resolver is ./resolver.ts).
 */
import { repositoryNetworksSchema } from '../agent/repository-address';
import { InputError, type FieldProblem } from '../common/errors';
import type { MachineSpec, ProviderName } from '../contracts/provider';
import { parseAwsInfrastructureConfig, validateAwsMachineSpec } from './aws/config';
import { parseWithProblems, type ParseResult } from './config-problems';
import { parseGcpInfrastructureConfig, validateGcpMachineSpec } from './gcp/config';
import { parseSimulatedInfrastructureConfig } from './simulated/config';

export interface ProviderValidationOptions {
  /** Accept the `simulated` provider (GITSPACES_ENABLE_SIMULATED_PROVIDER=1): benchmarks and tests only. */
  simulatedProvider?: boolean;
}

/** What an API that was not started for benchmarks says to an infrastructure of the `simulated` provider. */
export const SIMULATED_PROVIDER_REFUSED =
  "the 'simulated' provider is for benchmarks and tests only: this API accepts it only when started with GITSPACES_ENABLE_SIMULATED_PROVIDER=1";

/** Validates an infrastructure's `config` for its provider; problems carry paths under `config.`. */
export function validateInfrastructureConfig(
  provider: ProviderName,
  config: Record<string, unknown>,
  options: ProviderValidationOptions = {},
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
      return validConfig(parseAwsInfrastructureConfig(config), 'aws');
    case 'gcp':
      return validConfig(parseGcpInfrastructureConfig(config), 'gcp');
    case 'simulated':
      if (!options.simulatedProvider) {
        throw new InputError(SIMULATED_PROVIDER_REFUSED, [{ path: 'provider', message: SIMULATED_PROVIDER_REFUSED }]);
      }
      return validConfig(parseSimulatedInfrastructureConfig(config), 'simulated');
  }
}

/** Validates a machine's type, disk and image against its infrastructure's provider and config. */
export function validateMachineSpec(provider: ProviderName, config: Record<string, unknown>, spec: MachineSpec): void {
  let problems: FieldProblem[] = [];
  if (provider === 'local' && spec.image !== undefined) {
    problems = [{ path: 'image', message: 'the local provider runs on the runner host and takes no image' }];
  } else if (provider === 'aws') {
    problems = validateAwsMachineSpec(validConfig(parseAwsInfrastructureConfig(config), 'aws'), spec);
  } else if (provider === 'gcp') {
    problems = validateGcpMachineSpec(validConfig(parseGcpInfrastructureConfig(config), 'gcp'), spec);
  }
  if (problems.length > 0) throw invalid(`the machine does not fit the ${provider} provider`, problems);
}

/** A parsed config, or the InputError listing its problems. */
export function validConfig<T>(result: ParseResult<T>, provider: ProviderName): T {
  if (!result.ok) throw invalid(`the ${provider} infrastructure config is invalid`, result.problems);
  return result.value;
}

function invalid(summary: string, problems: FieldProblem[]): InputError {
  return new InputError(`${summary}: ${problems.map((p) => `${p.path} ${p.message}`).join('; ')}`, problems);
}
