/**
 * The `simulated` infrastructure config (`POST /api/v1/infrastructures` with `provider: "simulated"`, accepted only by
 * an API started with GITSPACES_ENABLE_SIMULATED_PROVIDER=1), validated like the clouds' configs.
 */
import { z } from 'zod';
import { parseWithProblems, type ParseResult } from '../config-problems';

export const simulatedInfrastructureConfigSchema = z
  .object({
    /** How long a machine takes from create (or start) to running, when its agent begins to answer. */
    bootSeconds: z.number().min(0).max(600).default(2),
  })
  .strict();

export type SimulatedInfrastructureConfig = z.infer<typeof simulatedInfrastructureConfigSchema>;

/** Validates a `simulated` infrastructure config; problems have paths like `config.bootSeconds`. */
export function parseSimulatedInfrastructureConfig(input: unknown): ParseResult<SimulatedInfrastructureConfig> {
  return parseWithProblems(simulatedInfrastructureConfigSchema, input, 'config');
}
