/**
 * The `gcp` infrastructure config (`POST /api/v1/infrastructures` with `provider: "gcp"`), validated when the
 * infrastructure is created, and the machine spec rules for its machine catalogue.
 */
import { z } from 'zod';
import { repositoryNetworksSchema } from '../../agent/repository-address';
import { agentInstallConfigSchema } from '../bootstrap';
import { parseWithProblems, type FieldProblem, type ParseResult } from '../config-problems';
import { machineSpecProblems } from '../machine-spec';
import type { MachineSpec } from '../../contracts/provider';

export const gcpInfrastructureConfigSchema = z
  .object({
    project: z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, "must be a GCP project id such as 'acme-dev-123'"),
    region: z.string().regex(/^[a-z]+-[a-z]+\d+$/, "must be a GCP region such as 'europe-west1'"),
    /** Zones machines may be placed in; the first is the default. */
    zones: z.array(z.string().regex(/^[a-z]+-[a-z]+\d+-[a-z]$/, "must be a zone such as 'europe-west1-b'")).min(1),
    /** VPC network and subnetwork (names or self links); machines get no public address. */
    network: z.string().min(1),
    subnetwork: z.string().min(1),
    /** Service account email the machines run as (they need no cloud permissions of their own). */
    serviceAccount: z.email('must be a service account email'),
    /** Boot image of the machines (a machine may name another). */
    image: z.string().min(1).default('projects/debian-cloud/global/images/family/debian-12'),
    bootDiskSizeGb: z.number().int().min(10).max(2000).default(20),
    diskType: z.enum(['pd-balanced', 'pd-ssd', 'pd-standard']).default('pd-balanced'),
    /** Network tags, for the firewall rule that lets the runner reach the agent port. */
    networkTags: z.array(z.string().regex(/^[a-z]([-a-z0-9]*[a-z0-9])?$/, 'must be a valid network tag')).default([]),
    agent: agentInstallConfigSchema.default({}),
    /** Internal networks repositories may live on (loopback, private); link-local and metadata never. */
    repositoryNetworks: repositoryNetworksSchema.optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    config.zones.forEach((zone, index) => {
      if (!zone.startsWith(`${config.region}-`)) {
        ctx.addIssue({
          code: 'custom',
          path: ['zones', index],
          message: `must be a zone of region '${config.region}'`,
        });
      }
    });
  });

export type GcpInfrastructureConfig = z.infer<typeof gcpInfrastructureConfigSchema>;

/** Validates a `gcp` infrastructure config; problems have paths like `config.zones[1]`. */
export function parseGcpInfrastructureConfig(input: unknown): ParseResult<GcpInfrastructureConfig> {
  return parseWithProblems(gcpInfrastructureConfigSchema, input, 'config');
}

/** Checks a machine of a `gcp` infrastructure (machine type, disk size, zone, image); empty when valid. */
export function validateGcpMachineSpec(config: GcpInfrastructureConfig, spec: MachineSpec): FieldProblem[] {
  return machineSpecProblems(spec, {
    provider: 'gcp',
    machineType: { pattern: /^[a-z][a-z0-9]*-[a-z0-9-]+$/, example: 'e2-standard-4' },
    image: { pattern: /^(projects\/[a-z][a-z0-9-]+\/global\/images\/|https:\/\/)\S+$/, example: config.image },
    // Persistent disk limits.
    diskSizeGb: { min: 10, max: 65536 },
    region: config.region,
    zones: config.zones,
  });
}
