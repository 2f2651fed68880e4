/**
 * The `aws` infrastructure config (`POST /api/v1/infrastructures` with `provider: "aws"`), validated when the
 * infrastructure is created, and the machine spec rules for its machine catalogue.
 */
import { z } from 'zod';
import { repositoryNetworksSchema } from '../../agent/repository-address';
import { agentInstallConfigSchema } from '../bootstrap';
import { parseWithProblems, type FieldProblem, type ParseResult } from '../config-problems';
import { machineSpecProblems } from '../machine-spec';
import type { MachineSpec } from '../../contracts/provider';

const awsId = (prefix: string) =>
  z.string().regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), `must be an id like '${prefix}-0123456789abcdef0'`);

export const awsInfrastructureConfigSchema = z
  .object({
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "must be an AWS region such as 'eu-west-1'"),
    /** The private subnet the machines live in; it also decides their availability zone. */
    subnetId: awsId('subnet'),
    /** Must let the runner reach the agent port (8089) and nothing else from outside. */
    securityGroupIds: z.array(awsId('sg')).min(1, 'at least one security group is required'),
    /** A fixed AMI, or `amiLookup` to pick the newest image matching a name pattern. */
    ami: awsId('ami').optional(),
    amiLookup: z
      .object({
        owners: z.array(z.string().min(1)).min(1, 'at least one owner is required'),
        namePattern: z.string().min(1),
        architecture: z.enum(['x86_64', 'arm64']).optional(),
      })
      .strict()
      .optional(),
    /** Instance profile name or ARN the machines run as (they need no cloud permissions of their own). */
    instanceProfile: z.string().min(1).optional(),
    keyName: z.string().min(1).optional(),
    /** EBS volume type of the data volume. */
    volumeType: z.enum(['gp3', 'gp2', 'io1', 'io2']).default('gp3'),
    agent: agentInstallConfigSchema.default({}),
    /** Internal networks repositories may live on (loopback, private); link-local and metadata never. */
    repositoryNetworks: repositoryNetworksSchema.optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    if ((config.ami === undefined) === (config.amiLookup === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['ami'], message: 'set exactly one of ami and amiLookup' });
    }
  });

export type AwsInfrastructureConfig = z.infer<typeof awsInfrastructureConfigSchema>;

/** Validates an `aws` infrastructure config; problems have paths like `config.securityGroupIds[0]`. */
export function parseAwsInfrastructureConfig(input: unknown): ParseResult<AwsInfrastructureConfig> {
  return parseWithProblems(awsInfrastructureConfigSchema, input, 'config');
}

/** Checks a machine of an `aws` infrastructure (instance type, EBS size, AMI); empty when valid. */
export function validateAwsMachineSpec(config: AwsInfrastructureConfig, spec: MachineSpec): FieldProblem[] {
  return machineSpecProblems(spec, {
    provider: 'aws',
    machineType: { pattern: /^[a-z][a-z0-9-]*\.[a-z0-9]+$/, example: 't3.large' },
    image: { pattern: /^ami-[0-9a-f]{8,17}$/, example: 'ami-0123456789abcdef0' },
    // gp3/gp2 limits; the bootstrap needs a little room for the workspace.
    diskSizeGb: { min: 1, max: 16384 },
    region: config.region,
    zoneNotAllowedReason: "cannot be chosen on aws: the infrastructure's subnet decides the availability zone",
  });
}
