/**
 * The EC2 API as the `aws` provider calls it: the runner's client, every call answering in the provider taxonomy,
 * and this installation's live instances and volumes (all, or one gitspace's) found by tag.
 */
import {
  EC2Client,
  paginateDescribeInstances,
  paginateDescribeVolumes,
  type Filter,
  type Instance,
  type Volume,
} from '@aws-sdk/client-ec2';
import type { Logger } from '../../common/logger';
import { MACHINE_LABELS } from '../naming';
import type { AwsInfrastructureConfig } from './config';
import { mapAwsError } from './errors';

export interface Ec2ClientOptions {
  region: string;
  /** Attempts per call, including the first; throttling and 5xx are retried with the SDK's backoff. */
  maxAttempts?: number;
}

/**
 * Builds the EC2 client of the runner. Credentials come from the SDK's default chain and an emulator endpoint from
 * the SDK's standard `AWS_ENDPOINT_URL_EC2`; nothing here adds a way of its own.
 */
export function createEc2Client(options: Ec2ClientOptions): EC2Client {
  return new EC2Client({ region: options.region, maxAttempts: options.maxAttempts ?? 4 });
}

/** What the provider's EC2 calls work with: the provider's options. */
export interface Ec2Scope {
  config: AwsInfrastructureConfig;
  /** Tags every resource so `list()` finds this installation's machines and nobody else's. */
  installationId: string;
  ec2: EC2Client;
  logger: Logger;
}

/** Every EC2 call goes through here, so its errors speak the provider taxonomy. */
export async function callEc2<T>(signal: AbortSignal, run: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
  signal.throwIfAborted();
  try {
    return await run(signal);
  } catch (error) {
    throw mapAwsError(error);
  }
}

// Everything but `terminated`: a terminated instance is gone even though EC2 lists it for a while.
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];

/** This installation's live instances (or one gitspace's), oldest first. */
export async function findInstances(
  { ec2, installationId }: Ec2Scope,
  gitspaceId: string | undefined,
  signal: AbortSignal,
): Promise<Instance[]> {
  const filters = [...tagFilters(installationId, gitspaceId), { Name: 'instance-state-name', Values: LIVE_STATES }];
  const found: Instance[] = [];
  try {
    for await (const page of paginateDescribeInstances(
      { client: ec2 },
      { Filters: filters },
      { abortSignal: signal },
    )) {
      for (const reservation of page.Reservations ?? []) found.push(...(reservation.Instances ?? []));
    }
  } catch (error) {
    throw mapAwsError(error);
  }
  // Oldest first: should two ever exist, every call settles on the same one and list() shows the other.
  return found.sort((a, b) => (a.LaunchTime?.getTime() ?? 0) - (b.LaunchTime?.getTime() ?? 0));
}

/** The instance of a gitspace, if it has one. */
export async function findInstance(scope: Ec2Scope, gitspaceId: string, signal: AbortSignal) {
  return (await findInstances(scope, gitspaceId, signal))[0];
}

/** This installation's volumes (or one gitspace's) that are not deleted. */
export async function findVolumes(
  { ec2, installationId }: Ec2Scope,
  gitspaceId: string | undefined,
  signal: AbortSignal,
): Promise<Volume[]> {
  const found: Volume[] = [];
  try {
    for await (const page of paginateDescribeVolumes(
      { client: ec2 },
      { Filters: tagFilters(installationId, gitspaceId) },
      { abortSignal: signal },
    )) {
      found.push(...(page.Volumes ?? []).filter((v) => v.State !== 'deleted'));
    }
  } catch (error) {
    throw mapAwsError(error);
  }
  return found;
}

function tagFilters(installationId: string, gitspaceId?: string): Filter[] {
  const filters: Filter[] = [{ Name: `tag:${MACHINE_LABELS.installation}`, Values: [installationId] }];
  if (gitspaceId !== undefined) filters.push({ Name: `tag:${MACHINE_LABELS.gitspaceId}`, Values: [gitspaceId] });
  return filters;
}
