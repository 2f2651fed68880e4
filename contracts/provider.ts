/**
 * The provider interface (DESIGN.md §5): one small contract that `local`, `gcp` and `aws` implement. Providers never
 * wait for a machine to change state: waiting is done by heartbeating activities that call `describe`.
 */

/** The providers an installation offers. */
export const PROVIDER_NAMES = ['local', 'gcp', 'aws'] as const;
/**
 * Machines with a boot time and no process (providers/simulated), for benchmarks and tests only: not one of
 * PROVIDER_NAMES, and a runner serves it only when started with GITSPACES_ENABLE_SIMULATED_PROVIDER=1.
 */
export const SIMULATED_PROVIDER = 'simulated';
export type ProviderName = (typeof PROVIDER_NAMES)[number] | typeof SIMULATED_PROVIDER;

/**
 * A warm key, `warm-…`: a pooled machine's name where a gitspace's machine has the gitspace id (`gs-…`). Made by the
 * control plane's warm pool (db/stores/warm-pool.ts); a runner acts on a warm key only under a warm-pool order.
 */
export const WARM_KEY_PATTERN = /^warm-[a-z0-9]{12}$/;

/** The providers whose machines can change owner (`adopt`), so their infrastructures may have warm pools. */
export const WARM_POOL_PROVIDERS: readonly ProviderName[] = ['aws', SIMULATED_PROVIDER];

/** Every call takes an idempotency key (derived from the gitspace and the operation) and an abort signal. */
export interface ProviderCallOptions {
  idempotencyKey: string;
  signal: AbortSignal;
  /**
   * For `describe`: the cloud operation an earlier call started (its result's `operation`), so that an operation which
   * fails after the cloud accepted it surfaces as its error, and an insert still under way reads as provisioning.
   */
  operation?: ProviderOperation;
}

/**
 * A cloud operation a call started and that may still fail after the cloud accepted the call (a GCP zone operation).
 * Plain data: it travels from the step that started it to the step that waits through the workflow's history, never
 * through a runner's memory, so any runner of the infrastructure can wait for it.
 */
export interface ProviderOperation {
  kind: 'insert' | 'start' | 'stop' | 'delete';
  name: string;
  zone?: string;
}

/**
 * Thrown by `describe` when the operation it was given finished with an error. Final: the operation will not succeed
 * by waiting longer. `cause` is the error in the provider taxonomy (its class name is the failure type).
 */
export class OperationFailedError extends Error {
  constructor(
    readonly operation: ProviderOperation,
    override readonly cause: Error,
  ) {
    super(cause.message, { cause });
    this.name = 'OperationFailedError';
  }
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
  /** The cloud operation the call that returned this started (create, start), for the step that waits for it. */
  operation?: ProviderOperation;
}

export interface Provider {
  readonly name: ProviderName;
  /** Creates and boots the machine; when one already exists for the gitspace, returns it instead. */
  create(request: CreateMachineRequest, options: ProviderCallOptions): Promise<MachineInfo>;
  /** The machine of a gitspace, or null when there is none. */
  describe(gitspaceId: string, options: ProviderCallOptions): Promise<MachineInfo | null>;
  /** Boots a stopped machine; throws InstanceNotFoundError when there is none. */
  start(gitspaceId: string, bootstrap: AgentBootstrap, options: ProviderCallOptions): Promise<MachineInfo>;
  /** Stops the machine and keeps its disks; stopping what is stopped or gone succeeds. Returns the operation it started. */
  stop(gitspaceId: string, options: ProviderCallOptions): Promise<ProviderOperation | void>;
  /** Deletes the machine and its disks; deleting what is gone succeeds. Returns the operation it started. */
  delete(gitspaceId: string, options: ProviderCallOptions): Promise<ProviderOperation | void>;
  /** Every machine this installation created on the infrastructure (for reconciliation). */
  list(options: ProviderCallOptions): Promise<MachineInfo[]>;
  /**
   * Warm pools (optional; a provider without it offers none): gives the pooled machine made under `warmKey` (created
   * with `create({ gitspaceId: warmKey })`, then stopped) to the gitspace, so that every call naming the gitspace finds
   * it from then on and none naming `warmKey` does. Idempotent: when the gitspace already has a machine, returns it
   * unchanged. Returns null when there is neither (the pooled machine is gone; the caller creates one instead).
   */
  adopt?(warmKey: string, gitspaceId: string, options: ProviderCallOptions): Promise<MachineInfo | null>;
}
