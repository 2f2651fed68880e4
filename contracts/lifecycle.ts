/**
 * The lifecycle vocabulary shared by the API, the workflows and the activities. Pure data and functions only: the
 * workflows import this file, so it must stay deterministic (no Node built-ins, no I/O).
 */
import type { IdeKind, MachineSpec, ProviderName } from './provider';

export const CONTROL_PLANE_TASK_QUEUE = 'gitspaces-control-plane';

/** The task queue a given infrastructure's runners poll. */
export function infrastructureTaskQueue(infrastructureId: string): string {
  return `gitspaces-infra-${infrastructureId}`;
}

/** One workflow ID per gitspace for every lifecycle operation: Temporal then allows one at a time. */
export function lifecycleWorkflowId(gitspaceId: string): string {
  return `gitspace-${gitspaceId}`;
}

export const GITSPACE_STATES = ['stopped', 'starting', 'running', 'stopping', 'deleting', 'deleted', 'error'] as const;
export type GitspaceState = (typeof GITSPACE_STATES)[number];

export const LIFECYCLE_ACTIONS = ['start', 'stop', 'delete'] as const;
export type LifecycleAction = (typeof LIFECYCLE_ACTIONS)[number];

export const OPERATION_STATUSES = ['running', 'succeeded', 'failed', 'cancelled'] as const;
export type OperationStatus = (typeof OPERATION_STATUSES)[number];

/** The steps of the lifecycle workflows, with the words a user reads in errors, events and the Web UI. */
export const STEPS = {
  begin: 'record the operation',
  ensureMachine: 'ensure the machine exists and runs',
  waitForMachine: 'wait for the machine',
  waitForAgent: 'wait for the gitspace agent',
  prepareWorkspace: 'prepare the workspace',
  registerRoute: 'register the gateway route',
  removeRoute: 'remove the gateway route',
  stopMachine: 'stop the machine',
  deleteMachine: 'delete the machine and its disks',
  finish: 'record the result',
} as const;
export type StepName = keyof typeof STEPS;

/** Why the auto-stop stopped a gitspace: nobody used it, or it ran as long as it may. */
export type AutoStopReason = 'idle' | 'max-lifetime';

/**
 * Who asked for a change; every event names one (DESIGN.md §8). A user (through the API), the reconciler, the
 * auto-stop (with its reason; in a stop workflow's input also the id of its recorded request, which is what makes the
 * claim believable), or `unknown` with the reason: a workflow started outside the API (`temporal workflow start` by
 * hand, whose input names no actor), or an event recorded before events named their actor.
 */
export type Actor =
  | { type: 'user'; id: string; name: string }
  | { type: 'reconciler' }
  | { type: 'auto-stop'; reason?: AutoStopReason; requestId?: string }
  | { type: 'unknown'; reason: string };

export const RECONCILER: Actor = { type: 'reconciler' };
/** The actor of a lifecycle workflow whose input names none: it was started outside the API. */
export const STARTED_OUTSIDE_THE_API: Actor = {
  type: 'unknown',
  reason: 'started outside the API (a Temporal workflow whose input names no actor)',
};
/** What events recorded before events named their actor read as (the column's default; see migration 0006). */
export const ACTOR_NOT_RECORDED: Actor = { type: 'unknown', reason: 'recorded before events named their actor' };

/** Workflow input: one object, so fields can be added without breaking running histories. */
export interface LifecycleInput {
  gitspaceId: string;
  /** Who asked (the API always sets it); a workflow started without it records its events as STARTED_OUTSIDE_THE_API. */
  actor?: Actor;
}

/** What a failed action leaves on the gitspace, for a user to act on. */
export interface GitspaceError {
  action: LifecycleAction;
  step: StepName;
  message: string;
  /** The failure type (an error class name such as `CloneFailedError`), when known. */
  cause?: string;
}

/** Everything the infrastructure activities need, loaded once by the first bookkeeping activity. */
export interface GitspaceSpec {
  gitspaceId: string;
  name: string;
  ownerId: string;
  infrastructureId: string;
  infrastructureName: string;
  provider: ProviderName;
  providerConfig: Record<string, unknown>;
  gatewayUrl: string;
  machine: MachineSpec;
  ide: IdeKind;
  /**
   * `tokenRef` names a token in the runner's own secret store (activities/secret-store.ts); a token given to the API is
   * sealed to the infrastructure and travels beside the spec instead.
   */
  repository: { url: string; branch?: string; tokenRef?: string };
}

/** A repository token reference: a name in the owner's scope (`github`) or in the shared scope (`shared/github`). */
export const TOKEN_REF_PATTERN = /^(shared\/)?[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

/** The auto-stop watcher of a gitspace (workflows/auto-stop.ts): one per gitspace, whatever its runs. */
export function autoStopWorkflowId(gitspaceId: string): string {
  return `gitspace-${gitspaceId}-auto-stop`;
}

/** Signals of the auto-stop watcher: `armed` (a start succeeded, with its run) and `recheck` (look again now). */
export const AUTO_STOP_SIGNALS = { armed: 'armed', recheck: 'recheck' } as const;

/** The effective auto-stop policy of a gitspace (null: that rule is off). */
export interface AutoStopPolicy {
  idleSeconds: number | null;
  maxLifetimeSeconds: number | null;
}

/** The watcher's input, carried across continue-as-new. */
export interface AutoStopInput {
  gitspaceId: string;
  /** The start run it watches (set by `armed`). */
  startRunId?: string;
  /** The warning already given, `<reason>@<deadline ms>`, so a new run does not give it again. */
  warnedFor?: string;
  /** True when it already recorded that the gateway cannot be observed (it says so once, not every minute). */
  unobserved?: boolean;
}

/** What the watcher reads at each decision (activities/auto-stop.ts). */
export interface AutoStopStatus {
  running: boolean;
  startRunId: string | null;
  infrastructureId: string;
  /** Milliseconds since the epoch when the start succeeded; null when not running. */
  runningSinceMs: number | null;
  policy: AutoStopPolicy;
  /** How long before a stop the warning is given (GITSPACES_AUTO_STOP_WARNING_SECONDS). */
  warningSeconds: number;
}

/** What the gateway has seen of a gitspace (GET /routes/:id/activity on its admin listener). */
export interface GatewayActivity {
  /** Seconds since the last request, the last tunnel closed or the gateway started, whichever is latest; 0 while a tunnel is open. */
  idleSeconds: number;
  openWebSockets: number;
  openSshSessions: number;
}
