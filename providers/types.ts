/**
 * The provider interface (DESIGN.md §5): one small contract that `local`, `gcp` and `aws` implement. Providers never
 * wait for a machine to change state: waiting is done by heartbeating activities that call `describe`.
 */

export const PROVIDER_NAMES = ['local', 'gcp', 'aws'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

/** Every call takes an idempotency key (derived from the gitspace and the operation) and an abort signal. */
export interface ProviderCallOptions {
  idempotencyKey: string;
  signal: AbortSignal;
}

/** The size and placement of a machine, from the infrastructure's machine catalogue. */
export interface MachineSpec {
  machineType: string;
  diskSizeGb: number;
  region?: string;
  zone?: string;
  image?: string;
}

/** What the gitspace agent on the machine needs to start; providers pass it to the machine's bootstrap. */
export interface AgentBootstrap {
  /** Shared secret the runner uses to call the agent's private API (never a repository credential). */
  agentSecret: string;
  ide: IdeKind;
}

export const IDE_KINDS = ['vscode-web', 'terminal', 'ssh'] as const;
export type IdeKind = (typeof IDE_KINDS)[number];

export interface CreateMachineRequest {
  gitspaceId: string;
  spec: MachineSpec;
  bootstrap: AgentBootstrap;
}

/** A machine's lifecycle as the provider reports it, normalised across clouds. */
export const MACHINE_STATUSES = ['provisioning', 'running', 'stopping', 'stopped', 'deleting'] as const;
export type MachineStatus = (typeof MACHINE_STATUSES)[number];

export interface MachineInfo {
  gitspaceId: string;
  /** The provider's own id for the instance (local: the machine directory name). */
  providerId: string;
  status: MachineStatus;
  /** Base URL of the gitspace agent, when the machine has an address. */
  agentUrl?: string;
  /** Data disk / volume ids that survive stop and start. */
  disks: string[];
  /** Labels or tags carried by the machine (`gitspace-id`, installation). */
  labels: Record<string, string>;
}

export interface Provider {
  readonly name: ProviderName;
  /** Creates and boots the machine; when one already exists for the gitspace, returns it instead. */
  create(request: CreateMachineRequest, options: ProviderCallOptions): Promise<MachineInfo>;
  /** The machine of a gitspace, or null when there is none. */
  describe(gitspaceId: string, options: ProviderCallOptions): Promise<MachineInfo | null>;
  /** Boots a stopped machine; throws InstanceNotFoundError when there is none. */
  start(gitspaceId: string, bootstrap: AgentBootstrap, options: ProviderCallOptions): Promise<MachineInfo>;
  /** Stops the machine and keeps its disks; stopping what is stopped or gone succeeds. */
  stop(gitspaceId: string, options: ProviderCallOptions): Promise<void>;
  /** Deletes the machine and its disks; deleting what is gone succeeds. */
  delete(gitspaceId: string, options: ProviderCallOptions): Promise<void>;
  /** Every machine this installation created on the infrastructure (for reconciliation). */
  list(options: ProviderCallOptions): Promise<MachineInfo[]>;
}
