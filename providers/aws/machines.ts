/** How EC2 instances and volumes read as the provider's machines (MachineInfo), across clouds alike. */
import type { Instance, Tag, Volume } from '@aws-sdk/client-ec2';
import type { MachineInfo, MachineStatus } from '../../contracts/provider';
import { AWS_DATA_DISK_DEVICES } from '../bootstrap';
import { MACHINE_LABELS, agentUrlFor } from '../naming';

const STATUS_BY_STATE: Record<string, MachineStatus> = {
  pending: 'provisioning',
  running: 'running',
  stopping: 'stopping',
  stopped: 'stopped',
  'shutting-down': 'deleting',
};

/** An instance state name (`running`, …) as a machine status; undefined for one not listed above. */
export function machineStatusOf(state: string): MachineStatus | undefined {
  return STATUS_BY_STATE[state];
}

/** The machine an instance is. */
export function machineInfoOf(instance: Instance): MachineInfo {
  const labels = tagsToRecord(instance.Tags);
  return {
    gitspaceId: labels[MACHINE_LABELS.gitspaceId] ?? '',
    providerId: instance.InstanceId ?? '',
    status: machineStatusOf(instance.State?.Name ?? '') ?? 'provisioning',
    agentUrl: agentUrlFor(instance.PrivateIpAddress),
    disks: (instance.BlockDeviceMappings ?? [])
      .filter((mapping) => AWS_DATA_DISK_DEVICES.includes(mapping.DeviceName as (typeof AWS_DATA_DISK_DEVICES)[number]))
      .flatMap((mapping) => (mapping.Ebs?.VolumeId ? [mapping.Ebs.VolumeId] : [])),
    labels,
  };
}

/** What is left of a gitspace whose instance is gone: its volumes, on their way out. */
export function leftoverInfo(gitspaceId: string, volumes: Volume[]): MachineInfo {
  return {
    gitspaceId,
    providerId: volumes[0]?.VolumeId ?? '',
    status: 'deleting',
    disks: volumes.flatMap((v) => (v.VolumeId ? [v.VolumeId] : [])),
    labels: tagsToRecord(volumes[0]?.Tags),
  };
}

/** Every machine: the instances, then the volumes of each gitspace whose instance is gone, as one leftover. */
export function machinesOf(instances: Instance[], volumes: Volume[]): MachineInfo[] {
  const machines = instances.map(machineInfoOf);
  const withInstance = new Set(machines.map((m) => m.gitspaceId));
  const orphans = new Map<string, Volume[]>();
  for (const volume of volumes) {
    const id = tagsToRecord(volume.Tags)[MACHINE_LABELS.gitspaceId];
    if (id === undefined || withInstance.has(id)) continue;
    orphans.set(id, [...(orphans.get(id) ?? []), volume]);
  }
  for (const [id, leftovers] of orphans) machines.push(leftoverInfo(id, leftovers));
  return machines;
}

function tagsToRecord(tags: Tag[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const tag of tags ?? []) if (tag.Key !== undefined) out[tag.Key] = tag.Value ?? '';
  return out;
}
