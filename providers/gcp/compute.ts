/**
 * The Compute API as the `gcp` provider calls it: every call answers in the provider taxonomy, after a few quick
 * retries of transient errors, and this installation's instances and disks (all, or one gitspace's) are found by
 * label across the infrastructure's zones.
 */
import type { protos } from '@google-cloud/compute';
import type { Logger } from '../../common/logger';
import { MACHINE_LABELS, labelValueFor } from '../naming';
import { retryTransient } from '../retry';
import type { GcpClients } from './clients';
import type { GcpInfrastructureConfig } from './config';
import { mapGcpError } from './errors';

export type Instance = protos.google.cloud.compute.v1.IInstance;
export type Disk = protos.google.cloud.compute.v1.IDisk;

/** A resource and the zone it was found in. */
export type InZone<T> = [zone: string, resource: T];

/** What the provider's Compute calls work with: the provider's options. */
export interface ComputeScope {
  config: GcpInfrastructureConfig;
  /** Labels every resource so `list()` finds this installation's machines and nobody else's. */
  installationId: string;
  clients: GcpClients;
  logger: Logger;
}

/** Every Compute call goes through here: taxonomy errors, and a few quick retries of transient ones. */
export function callCompute<T>(
  scope: ComputeScope,
  what: string,
  signal: AbortSignal,
  run: () => Promise<T>,
): Promise<T> {
  return retryTransient(
    async () => {
      try {
        return await run();
      } catch (error) {
        throw mapGcpError(error);
      }
    },
    { signal, logger: scope.logger, what },
  );
}

/** This installation's instances (or one gitspace's), in every zone of the infrastructure. */
export function listInstances(
  scope: ComputeScope,
  gitspaceId: string | undefined,
  signal: AbortSignal,
): Promise<InZone<Instance>[]> {
  const filter = labelFilter(scope.installationId, gitspaceId);
  return acrossZones(scope, 'instances', signal, (zone) =>
    scope.clients.instances.list({ project: scope.config.project, zone, filter }),
  );
}

/** The instance of a gitspace, if it has one. */
export async function findInstance(
  scope: ComputeScope,
  gitspaceId: string,
  signal: AbortSignal,
): Promise<InZone<Instance> | undefined> {
  return (await listInstances(scope, gitspaceId, signal))[0];
}

/** This installation's disks (or one gitspace's), in every zone of the infrastructure. */
export function listDisks(
  scope: ComputeScope,
  gitspaceId: string | undefined,
  signal: AbortSignal,
): Promise<InZone<Disk>[]> {
  const filter = labelFilter(scope.installationId, gitspaceId);
  return acrossZones(scope, 'disks', signal, (zone) =>
    scope.clients.disks.list({ project: scope.config.project, zone, filter }),
  );
}

async function acrossZones<T>(
  scope: ComputeScope,
  what: string,
  signal: AbortSignal,
  listIn: (zone: string) => Promise<[T[], ...unknown[]]>,
): Promise<InZone<T>[]> {
  const found: InZone<T>[] = [];
  for (const zone of scope.config.zones) {
    const [items] = await callCompute(scope, `list ${what} in ${zone}`, signal, () => listIn(zone));
    for (const item of items) found.push([zone, item]);
  }
  return found;
}

/** The one filter form the provider sends: the installation's label, and the gitspace's when given. */
function labelFilter(installationId: string, gitspaceId?: string): string {
  const clauses = [`(labels.${MACHINE_LABELS.installation} = "${labelValueFor(installationId)}")`];
  if (gitspaceId !== undefined) clauses.push(`(labels.${MACHINE_LABELS.gitspaceId} = "${labelValueFor(gitspaceId)}")`);
  return clauses.join(' ');
}
