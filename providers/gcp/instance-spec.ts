/**
 * What a gitspace's Compute Engine instance is made of: its machine type, labels, boot disk, persistent data disk,
 * private network interface, service account, and the bootstrap as its startup script.
 */
import type { AgentBootstrap, CreateMachineRequest } from '../../contracts/provider';
import { GCP_DATA_DISK_DEVICES, agentSecretIn, renderBootstrapScript } from '../bootstrap';
import { DATA_DISK_DEVICE_NAME, MACHINE_LABELS, dataDiskNameFor, machineLabelsFor, machineNameFor } from '../naming';
import type { Instance } from './compute';
import type { GcpInfrastructureConfig } from './config';

const STARTUP_SCRIPT = 'startup-script';

type MetadataItem = NonNullable<NonNullable<Instance['metadata']>['items']>[number];

/** The bootstrap of a gitspace's machine, as the startup script it runs on every boot. */
export function startupScriptFor(config: GcpInfrastructureConfig, gitspaceId: string, bootstrap: AgentBootstrap) {
  return renderBootstrapScript({
    gitspaceId,
    bootstrap,
    agent: config.agent,
    dataDiskDevices: GCP_DATA_DISK_DEVICES,
  });
}

/** The instance `insert` asks for in `zone`. */
export function instanceResourceFor(
  config: GcpInfrastructureConfig,
  installationId: string,
  { gitspaceId, spec, bootstrap }: CreateMachineRequest,
  zone: string,
): Instance {
  const labels = machineLabelsFor(gitspaceId, installationId);
  const diskType = `zones/${zone}/diskTypes/${config.diskType}`;
  return {
    name: machineNameFor(gitspaceId),
    machineType: `zones/${zone}/machineTypes/${spec.machineType}`,
    labels,
    metadata: {
      items: [
        { key: STARTUP_SCRIPT, value: startupScriptFor(config, gitspaceId, bootstrap) },
        // Labels hold a sanitised id; the exact one is kept here for list().
        { key: MACHINE_LABELS.gitspaceId, value: gitspaceId },
      ],
    },
    disks: [
      {
        boot: true,
        autoDelete: true,
        initializeParams: {
          sourceImage: spec.image ?? config.image,
          diskSizeGb: config.bootDiskSizeGb,
          diskType,
          labels,
        },
      },
      {
        // Survives stop/start (persistent disks always do); goes with the instance on delete.
        boot: false,
        autoDelete: true,
        deviceName: DATA_DISK_DEVICE_NAME,
        initializeParams: { diskName: dataDiskNameFor(gitspaceId), diskSizeGb: spec.diskSizeGb, diskType, labels },
      },
    ],
    // No access config: no public address. The gateway and the runner reach the machine privately.
    networkInterfaces: [{ network: config.network, subnetwork: config.subnetwork }],
    serviceAccounts: [{ email: config.serviceAccount, scopes: ['https://www.googleapis.com/auth/cloud-platform'] }],
    tags: config.networkTags.length > 0 ? { items: config.networkTags } : undefined,
  };
}

/**
 * The instance's metadata items with the startup script of this bootstrap, or undefined when its script already
 * carries the bootstrap's agent secret (a restart brings a new one; the script runs on every boot).
 */
export function metadataWithNewAgentSecret(
  config: GcpInfrastructureConfig,
  instance: Instance,
  gitspaceId: string,
  bootstrap: AgentBootstrap,
): MetadataItem[] | undefined {
  const items = instance.metadata?.items ?? [];
  const current = items.find((item) => item.key === STARTUP_SCRIPT)?.value ?? '';
  if (agentSecretIn(current) === bootstrap.agentSecret) return undefined;
  return [
    ...items.filter((item) => item.key !== STARTUP_SCRIPT),
    { key: STARTUP_SCRIPT, value: startupScriptFor(config, gitspaceId, bootstrap) },
  ];
}
