/**
 * The `simulated` infrastructure config (`POST /api/v1/infrastructures` with `provider: "simulated"`, accepted only by
 * an API started with GITSPACES_ENABLE_SIMULATED_PROVIDER=1), validated like the clouds' configs.
 */
import { z } from 'zod';
import { parseWithProblems, type ParseResult } from '../config-problems';

export const simulatedInfrastructureConfigSchema = z
  .object({
    /** How long a machine takes from create to running, when its agent begins to answer. */
    bootSeconds: z.number().min(0).max(600).default(2),
    /**
     * How long a stopped machine takes from start to running; bootSeconds when absent. A cloud boots a stopped,
     * prepared machine much faster than it creates one, and that difference is what a warm pool saves.
     */
    resumeSeconds: z.number().min(0).max(600).optional(),
  })
  .strict();

export type SimulatedInfrastructureConfig = z.infer<typeof simulatedInfrastructureConfigSchema>;

/** Validates a `simulated` infrastructure config; problems have paths like `config.bootSeconds`. */
export function parseSimulatedInfrastructureConfig(input: unknown): ParseResult<SimulatedInfrastructureConfig> {
  return parseWithProblems(simulatedInfrastructureConfigSchema, input, 'config');
}
