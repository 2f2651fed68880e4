/** How Compute instances and disks read as the provider's machines (MachineInfo), across clouds alike. */
import type { MachineInfo, MachineStatus } from '../../contracts/provider';
import { MACHINE_LABELS, agentUrlFor } from '../naming';
import type { Disk, InZone, Instance } from './compute';

const STATUS_BY_GCP: Record<string, MachineStatus> = {
  PROVISIONING: 'provisioning',
  STAGING: 'provisioning',
  REPAIRING: 'provisioning',
  RUNNING: 'running',
  STOPPING: 'stopping',
  SUSPENDING: 'stopping',
  TERMINATED: 'stopped',
  STOPPED: 'stopped',
  SUSPENDED: 'stopped',
};

/** An instance's status as a machine status; undefined for one Compute added after this was written. */
export function machineStatusOf(instance: Instance): MachineStatus | undefined {
  return STATUS_BY_GCP[instance.status ?? ''];
}

/** The machine an instance is; `deleting` while a delete operation given to `describe` still runs. */
export function machineInfoOf(instance: Instance, deleting = false): MachineInfo {
  return {
    gitspaceId: gitspaceIdOf(instance),
    providerId: instance.name ?? '',
    status: deleting ? 'deleting' : (machineStatusOf(instance) ?? 'provisioning'),
    agentUrl: agentUrlFor(instance.networkInterfaces?.[0]?.networkIP),
    disks: (instance.disks ?? [])
      .filter((disk) => !disk.boot)
      .flatMap((disk) => (disk.source ? [disk.source.split('/').pop() ?? disk.source] : [])),
    labels: { ...(instance.labels ?? {}) },
  };
}

/**
 * Every machine: the instances, then, per gitspace whose instance is gone, its disks as one machine on its way out
 * (so reconciliation deletes them).
 */
export function machinesOf(instances: InZone<Instance>[], disks: InZone<Disk>[]): MachineInfo[] {
  const machines = instances.map(([, instance]) => machineInfoOf(instance));
  const seen = new Set(machines.map((m) => m.labels[MACHINE_LABELS.gitspaceId]));
  const orphans = new Map<string, MachineInfo>();
  for (const [, disk] of disks) {
    const label = disk.labels?.[MACHINE_LABELS.gitspaceId];
    if (label === undefined || seen.has(label)) continue;
    const entry = orphans.get(label) ?? {
      gitspaceId: label,
      providerId: disk.name ?? '',
      status: 'deleting' as const,
      disks: [],
      labels: { ...(disk.labels ?? {}) },
    };
    entry.disks.push(disk.name ?? '');
    orphans.set(label, entry);
  }
  return [...machines, ...orphans.values()];
}

/** The exact gitspace id (labels hold a sanitised one). */
function gitspaceIdOf(instance: Instance): string {
  const fromMetadata = instance.metadata?.items?.find((item) => item.key === MACHINE_LABELS.gitspaceId)?.value;
  return fromMetadata ?? instance.labels?.[MACHINE_LABELS.gitspaceId] ?? '';
}
