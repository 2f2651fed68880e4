/**
 * Machine spec checks shared by the cloud providers; each provider's config.ts adds its own machine type and image
 * rules. Problems use the field names of the machine catalogue (`machineType`, `diskSizeGb`, ...).
 */
import type { FieldProblem } from './config-problems';
import type { MachineSpec } from '../contracts/provider';

export interface SpecRules {
  provider: string;
  machineType: { pattern: RegExp; example: string };
  image?: { pattern: RegExp; example: string };
  diskSizeGb: { min: number; max: number };
  /** The infrastructure's region; a spec may repeat it but not name another one. */
  region: string;
  /** Zones a spec may name, or undefined when the provider decides placement some other way. */
  zones?: readonly string[];
  zoneNotAllowedReason?: string;
}

/** Every problem of `spec` under `rules`, with field paths; empty when the spec is valid. */
export function machineSpecProblems(spec: MachineSpec, rules: SpecRules): FieldProblem[] {
  const problems: FieldProblem[] = [];
  if (!rules.machineType.pattern.test(spec.machineType)) {
    problems.push({
      path: 'machineType',
      message: `'${spec.machineType}' is not a ${rules.provider} machine type (for example '${rules.machineType.example}')`,
    });
  }
  const { min, max } = rules.diskSizeGb;
  if (!Number.isInteger(spec.diskSizeGb) || spec.diskSizeGb < min || spec.diskSizeGb > max) {
    problems.push({
      path: 'diskSizeGb',
      message: `must be a whole number of GB from ${min} to ${max} on ${rules.provider}`,
    });
  }
  if (spec.region !== undefined && spec.region !== rules.region) {
    problems.push({ path: 'region', message: `must be the infrastructure's region '${rules.region}'` });
  }
  if (spec.zone !== undefined) {
    if (!rules.zones) {
      problems.push({ path: 'zone', message: rules.zoneNotAllowedReason ?? `cannot be chosen on ${rules.provider}` });
    } else if (!rules.zones.includes(spec.zone)) {
      problems.push({ path: 'zone', message: `must be one of the infrastructure's zones: ${rules.zones.join(', ')}` });
    }
  }
  if (spec.image !== undefined && rules.image && !rules.image.pattern.test(spec.image)) {
    problems.push({
      path: 'image',
      message: `'${spec.image}' is not a ${rules.provider} image (for example '${rules.image.example}')`,
    });
  }
  return problems;
}
