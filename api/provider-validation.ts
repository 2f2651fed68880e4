import { InputError, type FieldProblem } from '../common/errors';
import type { MachineSpec, ProviderName } from '../providers/types';

/** Validates an infrastructure's `config` for its provider; problems carry paths under `config.`. */
export function validateInfrastructureConfig(provider: ProviderName, config: Record<string, unknown>): Record<string, unknown> {
  const problems: FieldProblem[] = [];
  if (provider === 'local') {
    // The local provider keeps machines in the runner's data dir: it takes no configuration.
    for (const key of Object.keys(config)) problems.push({ path: `config.${key}`, message: 'is not a setting of the local provider' });
  }
  if (problems.length > 0) {
    throw new InputError(`the ${provider} infrastructure config is invalid: ${problems.map((p) => `${p.path} ${p.message}`).join('; ')}`, problems);
  }
  return config;
}

/** Validates a machine's type, disk and image for its provider. */
export function validateMachineSpec(provider: ProviderName, spec: MachineSpec): void {
  const problems: FieldProblem[] = [];
  if (provider === 'local' && spec.image !== undefined) {
    problems.push({ path: 'image', message: 'the local provider runs on the runner host and takes no image' });
  }
  if (problems.length > 0) {
    throw new InputError(`the machine does not fit the ${provider} provider: ${problems.map((p) => `${p.path} ${p.message}`).join('; ')}`, problems);
  }
}
