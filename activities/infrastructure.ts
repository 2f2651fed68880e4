import { randomBytes } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { repositoryNetworksSchema } from '../agent/repository-address';
import type { Logger } from '../common/logger';
import type { GatewayActivity, GitspaceSpec } from '../contracts/lifecycle';
import { LegacySecretsKey, SealedSecretError, type RunnerKeyRing } from '../common/sealed-secret';
import {
  RunnerContractVersionError,
  WorkOrderRefusedError,
  type InfrastructurePart,
  type OrderedStep,
  type WorkOrderVerifier,
} from '../common/work-order';
import {
  OperationFailedError,
  type IdeKind,
  type MachineInfo,
  type MachineSpec,
  type MachineStatus,
  type Provider,
  type ProviderCallOptions,
  type ProviderOperation,
} from '../contracts/provider';
import { AgentRequestError, type AgentClient } from './agent-client';
import type { GatewayAdminClient } from './gateway-admin-client';
import { SecretNotFoundError, type SecretStore } from './secret-store';

export interface InfrastructureActivityDeps {
  /** The infrastructure this runner serves; a task for another one is refused. */
  infrastructureId: string;
  resolveProvider(spec: Pick<GitspaceSpec, 'provider' | 'providerConfig' | 'infrastructureId'>): Provider;
  agents: AgentClient;
  gateway: GatewayAdminClient;
  /** The infrastructure's runner key ring: opens sealed repository tokens, and derives agent secrets. */
  runnerKeys: RunnerKeyRing;
  /** Opens tokens sealed by earlier versions (`sealed:v1:`), when the runner still has that secrets key. */
  legacySecrets?: LegacySecretsKey;
  /** Resolves `repository.tokenRef` (activities/secret-store.ts); without one, a reference fails the start. */
  secretStore?: SecretStore;
  /** Checks every order against the control plane's public key (common/work-order.ts). */
  workOrders: WorkOrderVerifier;
  /** Reach every agent here instead of at the machine's own address (emulator runs: their addresses are fake). */
  agentEndpoint?: string;
  pollIntervalMs?: number;
  logger: Logger;
}

/** Enough to act on one machine: its gitspace and its infrastructure's provider. */
export type MachineRef = Pick<GitspaceSpec, 'gitspaceId' | 'infrastructureId' | 'provider' | 'providerConfig'>;

/** What waitForMachine waits for: a status, or the machine being gone. */
export type MachineTarget = Extract<MachineStatus, 'running' | 'stopped'> | 'gone';

/** A pooled machine's agent runs no IDE until a start adopts it and boots it with the gitspace's own. */
const WARM_MACHINE_IDE: IdeKind = 'terminal';

/** The agent wait's first interval: a local agent answers ~0.3–0.5 s after it starts, a fixed second would add half. */
const AGENT_FIRST_POLL_MS = 50;

/**
 * Infrastructure activities: they run on the infrastructure's own task queue, inside the runner, which alone holds
 * the cloud credentials. Each is idempotent: names and keys derive from the gitspace id, so a Temporal retry or a
 * Web UI reset adopts what an earlier attempt made instead of making a second one.
 */
export function createInfrastructureActivities(deps: InfrastructureActivityDeps) {
  const pollIntervalMs = deps.pollIntervalMs ?? 1000;

  /** Refuses a task for another infrastructure than this runner's. */
  const checkServed = (infrastructureId: string): void => {
    if (infrastructureId !== deps.infrastructureId) {
      throw ApplicationFailure.nonRetryable(
        `this runner serves infrastructure '${deps.infrastructureId}', not '${infrastructureId}'`,
        'WrongInfrastructureError',
      );
    }
  };
  const providerFor = (spec: Pick<GitspaceSpec, 'infrastructureId' | 'provider' | 'providerConfig'>): Provider => {
    checkServed(spec.infrastructureId);
    return deps.resolveProvider(spec);
  };
  /**
   * A provider call's options: its idempotency key names the workflow run too, so every attempt of one operation sends
   * the same key (a retried insert adopts the first) while the next start or stop is a new request to the cloud.
   */
  const callOptions = (key: string, operation?: ProviderOperation): ProviderCallOptions => ({
    idempotencyKey: `${key}/${workflowRun().runId}`,
    signal: Context.current().cancellationSignal,
    ...(operation ? { operation } : {}),
  });
  // Rotated on every start: derived from the start's workflow run, so each activity of that start (and its retries)
  // finds the same secret, and a later start gets another one.
  const agentSecret = (gitspaceId: string) => deps.runnerKeys.derive('agent', `${gitspaceId}/${workflowRun().runId}`);
  const agentUrlOf = (machine: MachineInfo): string | undefined => deps.agentEndpoint ?? machine.agentUrl;

  /**
   * Acts only on work the control plane ordered (DESIGN.md §8): the order must be signed by the control plane, for
   * this activity's own workflow run, allow this step, name this gitspace and match the spec in the input. Anything
   * else fails fast, before any provider, agent or gateway call.
   */
  const checkOrder = async (
    step: OrderedStep,
    order: unknown,
    target: {
      gitspaceId: string;
      infrastructure?: InfrastructurePart;
      spec?: GitspaceSpec;
      repositoryTokenSealed?: string | null;
      warmMachine?: string | null;
      machine?: MachineSpec;
    },
  ): Promise<void> => {
    const { workflowId, runId } = workflowRun();
    try {
      await deps.workOrders.verify(order, {
        step,
        workflowId,
        runId,
        infrastructureId: deps.infrastructureId,
        gitspaceId: target.gitspaceId,
        ...(target.infrastructure || target.spec ? { infrastructure: target.infrastructure ?? target.spec } : {}),
        ...(target.spec ? { spec: target.spec } : {}),
        ...(target.repositoryTokenSealed !== undefined ? { repositoryTokenSealed: target.repositoryTokenSealed } : {}),
        ...(target.warmMachine !== undefined ? { warmMachine: target.warmMachine } : {}),
        ...(target.machine ? { machine: target.machine } : {}),
      });
    } catch (error) {
      if (error instanceof RunnerContractVersionError) {
        deps.logger.warn('this runner is older than the operation needs: upgrade it', {
          step,
          gitspaceId: target.gitspaceId,
          runnerVersion: error.runnerVersion,
          neededVersion: error.neededVersion,
        });
        throw ApplicationFailure.nonRetryable(error.message, 'RunnerContractVersionError');
      }
      if (error instanceof WorkOrderRefusedError) {
        deps.logger.warn('work order refused', { step, gitspaceId: target.gitspaceId, reason: error.reason });
        throw ApplicationFailure.nonRetryable(error.message, 'WorkOrderRefusedError');
      }
      throw error;
    }
  };

  /** The agent of a gitspace, found through the runner's own provider: never an address from the activity's input. */
  const findAgent = async (spec: GitspaceSpec): Promise<string> => {
    const machine = await providerFor(spec).describe(spec.gitspaceId, callOptions(`describe-${spec.gitspaceId}`));
    const agentUrl = machine ? agentUrlOf(machine) : undefined;
    if (!agentUrl) {
      throw ApplicationFailure.nonRetryable(
        `the machine of gitspace '${spec.name}' has no address`,
        'MachineAddressMissingError',
      );
    }
    return agentUrl;
  };

  /**
   * The repository token of a start: opened with this infrastructure's runner keys, or resolved by name in the
   * runner's own secret store for the gitspace's owner. Neither is retried: the same token will not appear by itself.
   */
  const repositoryToken = async (spec: GitspaceSpec, sealed: string | undefined): Promise<string | undefined> => {
    const unavailable = (message: string) =>
      ApplicationFailure.nonRetryable(
        `the repository token of gitspace '${spec.name}' is not available to this runner: ${message}`,
        'RepositoryTokenUnavailableError',
      );
    if (sealed) {
      try {
        if (!LegacySecretsKey.isSealedWithIt(sealed)) {
          return deps.runnerKeys.open(sealed, { infrastructureId: spec.infrastructureId, gitspaceId: spec.gitspaceId });
        }
        if (!deps.legacySecrets)
          throw new SealedSecretError(
            'it was sealed by an earlier version with a secrets key this runner is not given',
          );
        return deps.legacySecrets.unseal(sealed);
      } catch (error) {
        if (error instanceof SealedSecretError) throw unavailable(error.message);
        throw error;
      }
    }
    const ref = spec.repository.tokenRef;
    if (!ref) return undefined;
    if (!deps.secretStore)
      throw unavailable(`it names '${ref}', but this runner has no secret store (GITSPACES_SECRET_STORE)`);
    try {
      return await deps.secretStore.resolve(ref, spec.ownerId);
    } catch (error) {
      if (error instanceof SecretNotFoundError)
        throw unavailable(`'${ref}' is not in the runner's secret store (${error.message})`);
      throw error;
    }
  };

  /** Runs a provider call while heartbeating, so a dead runner is noticed by heartbeat timeout, not startToClose. */
  const withHeartbeat = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    const context = Context.current();
    context.heartbeat(what);
    const timer = setInterval(() => context.heartbeat(what), 5000);
    try {
      return await call();
    } finally {
      clearInterval(timer);
    }
  };

  /**
   * Polls until `check` returns a value, heartbeating so a dead runner is noticed and cancellation arrives. Every
   * `pollIntervalMs`, or, from `firstIntervalMs`, at intervals growing by a quarter up to it: for a check that is cheap
   * and whose answer comes in well under a second (an agent starting), so the wait ends soon after the answer does.
   */
  const pollUntil = async <T>(
    check: () => Promise<T | undefined>,
    describeWait: () => string,
    firstIntervalMs = pollIntervalMs,
  ): Promise<T> => {
    const context = Context.current();
    for (
      let interval = Math.min(firstIntervalMs, pollIntervalMs);
      ;
      interval = Math.min(interval * 1.25, pollIntervalMs)
    ) {
      const result = await check();
      if (result !== undefined) return result;
      context.heartbeat(describeWait());
      await context.sleep(interval);
    }
  };

  /**
   * Waits, heartbeating, until the machine named `machineId` (a gitspace id, or a pooled machine's warm key) is
   * `target`. Null when it is gone and that is the target, or when the target is `stopped` and there is none (stopping
   * what is gone succeeds). `operation`: the cloud operation the step before started; its failure fails the wait, for
   * good. `what` names the machine in the error when it disappears.
   */
  const untilMachine = async (
    provider: Provider,
    machineId: string,
    what: string,
    target: MachineTarget,
    operation?: ProviderOperation,
  ): Promise<MachineInfo | null> => {
    let last: MachineInfo | null = null;
    return pollUntil(
      async () => {
        try {
          last = await provider.describe(machineId, callOptions(`describe-${machineId}`, operation));
        } catch (error) {
          if (error instanceof OperationFailedError) {
            throw ApplicationFailure.nonRetryable(error.message, error.cause.name);
          }
          throw error;
        }
        if (target === 'gone') return last === null ? null : undefined;
        // No machine is a stopped one (a start cancelled before it made one, say).
        if (target === 'stopped' && last === null) return null;
        if (last === null) {
          throw ApplicationFailure.nonRetryable(
            `${what} disappeared while waiting for it to be ${target}`,
            'InstanceNotFoundError',
          );
        }
        return last.status === target ? last : undefined;
      },
      () => `machine is ${last?.status ?? 'absent'}, waiting for ${target}`,
    );
  };

  /** One check of the agent at `agentUrl`: does it serve `machineId`, and with `secret` (not an earlier boot's)? */
  const askAgent = async (
    agentUrl: string,
    machineId: string,
    secret: string,
  ): Promise<{ ready: true } | { ready: false; otherSecret: boolean; problem: string }> => {
    const signal = AbortSignal.any([Context.current().cancellationSignal, AbortSignal.timeout(5000)]);
    const health = await deps.agents.health(agentUrl, signal);
    if (health.gitspaceId !== machineId) {
      return {
        ready: false,
        otherSecret: false,
        problem: `the agent at ${agentUrl} serves gitspace '${health.gitspaceId}'`,
      };
    }
    if (await deps.agents.acceptsSecret(agentUrl, secret, signal)) return { ready: true };
    return { ready: false, otherSecret: true, problem: "the agent runs with an earlier boot's secret" };
  };

  const ensureMachine = async (spec: GitspaceSpec, warmMachine?: string): Promise<MachineInfo> => {
    const provider = providerFor(spec);
    const options = callOptions(`create-${spec.gitspaceId}`);
    const bootstrap = { agentSecret: agentSecret(spec.gitspaceId), ide: spec.ide };
    let existing = await provider.describe(spec.gitspaceId, options);
    if (!existing && warmMachine && provider.adopt) {
      // The pooled machine the control plane gave this start (signed into its order): made and checked ahead, stopped.
      existing = await provider.adopt(warmMachine, spec.gitspaceId, callOptions(`adopt-${spec.gitspaceId}`));
      if (existing) deps.logger.info('adopted a pooled machine', { gitspaceId: spec.gitspaceId, warmMachine });
    }
    if (!existing || existing.status === 'deleting') {
      deps.logger.info('creating machine', { gitspaceId: spec.gitspaceId, provider: spec.provider });
      return provider.create({ gitspaceId: spec.gitspaceId, spec: spec.machine, bootstrap }, options);
    }
    if (existing.status === 'stopped')
      return provider.start(spec.gitspaceId, bootstrap, callOptions(`start-${spec.gitspaceId}`));
    return existing;
  };

  const restartMachine = async (spec: GitspaceSpec): Promise<void> => {
    const provider = providerFor(spec);
    await provider.stop(spec.gitspaceId, callOptions(`stop-${spec.gitspaceId}`));
    await pollUntil(
      async () => {
        const machine = await provider.describe(spec.gitspaceId, callOptions(`describe-${spec.gitspaceId}`));
        return machine === null || machine.status === 'stopped' ? true : undefined;
      },
      () => "waiting for the machine to stop before booting it with this start's secret",
    );
    await ensureMachine(spec);
  };

  return {
    /** Creates the machine on first start, boots it when stopped, adopts it when it already runs. */
    async ensureMachine(input: { spec: GitspaceSpec; warmMachine?: string; order?: string }): Promise<MachineInfo> {
      await checkOrder('ensureMachine', input.order, {
        gitspaceId: input.spec.gitspaceId,
        spec: input.spec,
        warmMachine: input.warmMachine ?? null,
      });
      return withHeartbeat('ensuring the machine', () => ensureMachine(input.spec, input.warmMachine));
    },

    /**
     * Makes one pooled machine of a warm pool (workflows/warm-pool.ts) under its warm key: boots it, waits until its
     * agent answers for that key, and stops it, so a start that adopts it only boots it. A retry boots what an earlier
     * attempt made and checks it again: the machine is ready only once this has run to the end.
     */
    async prepareWarmMachine(input: {
      infrastructure: InfrastructurePart;
      key: string;
      machine: MachineSpec;
      order?: string;
    }): Promise<void> {
      const { key, infrastructure, machine } = input;
      await checkOrder('prepareWarmMachine', input.order, { gitspaceId: key, infrastructure, machine });
      const provider = providerFor(infrastructure);
      if (!provider.adopt) {
        throw ApplicationFailure.nonRetryable(
          `provider '${provider.name}' offers no warm pools`,
          'WarmPoolUnsupportedError',
        );
      }
      const bootstrap = { agentSecret: agentSecret(key), ide: WARM_MACHINE_IDE };
      const what = `pooled machine '${key}'`;
      await withHeartbeat('making a pooled machine', async () => {
        const existing = await provider.describe(key, callOptions(`describe-${key}`));
        if (!existing || existing.status === 'deleting')
          return provider.create({ gitspaceId: key, spec: machine, bootstrap }, callOptions(`create-${key}`));
        return existing.status === 'stopped' ? provider.start(key, bootstrap, callOptions(`start-${key}`)) : existing;
      });
      const running = (await untilMachine(provider, key, what, 'running'))!;
      const agentUrl = agentUrlOf(running);
      if (!agentUrl) throw ApplicationFailure.nonRetryable(`${what} has no address`, 'MachineAddressMissingError');
      let lastProblem = 'no answer yet';
      await pollUntil(
        async () => {
          try {
            const answer = await askAgent(agentUrl, key, bootstrap.agentSecret);
            if (answer.ready) return true;
            lastProblem = answer.problem;
          } catch (error) {
            lastProblem = error instanceof Error ? error.message : String(error);
          }
          return undefined;
        },
        () => `pooled machine's agent at ${agentUrl}: ${lastProblem}`,
        AGENT_FIRST_POLL_MS,
      );
      await withHeartbeat('stopping the pooled machine', () => provider.stop(key, callOptions(`stop-${key}`)));
      // Ready only stopped: one that went away meanwhile is no pooled machine.
      if (!(await untilMachine(provider, key, what, 'stopped'))) {
        throw ApplicationFailure.nonRetryable(`${what} disappeared while it stopped`, 'InstanceNotFoundError');
      }
    },

    /**
     * Waits, heartbeating, until the machine reaches the target status (or is gone). `operation` is the cloud operation
     * the step before started (ensureMachine's, stopMachine's or deleteMachine's output): it comes through the
     * workflow's history, so whichever runner waits checks it, and an operation that failed after the cloud accepted
     * it fails the wait with its own error. A failed operation stays failed: that error is not retried.
     */
    async waitForMachine(input: {
      spec: GitspaceSpec;
      target: MachineTarget;
      operation?: ProviderOperation;
      order?: string;
    }): Promise<MachineInfo | null> {
      await checkOrder('waitForMachine', input.order, { gitspaceId: input.spec.gitspaceId, spec: input.spec });
      const { spec } = input;
      const what = `the machine of gitspace '${spec.name}'`;
      return untilMachine(providerFor(spec), spec.gitspaceId, what, input.target, input.operation);
    },

    /**
     * Waits until the agent on the machine answers its health check for this gitspace; returns its URL. The agent is
     * found through the provider: `machine` in the input (older histories pass it) is not trusted.
     */
    async waitForAgent(input: { spec: GitspaceSpec; machine?: MachineInfo; order?: string }): Promise<string> {
      await checkOrder('waitForAgent', input.order, { gitspaceId: input.spec.gitspaceId, spec: input.spec });
      let agentUrl = await findAgent(input.spec);
      let lastProblem = 'no answer yet';
      return pollUntil(
        async () => {
          try {
            const answer = await askAgent(agentUrl, input.spec.gitspaceId, agentSecret(input.spec.gitspaceId));
            if (answer.ready) return agentUrl;
            if (!answer.otherSecret) {
              lastProblem = answer.problem;
              return undefined;
            }
            // A machine left running by an earlier start (a reset workflow, a failed compensation) has that start's
            // agent secret: boot it again with this start's.
            lastProblem = "the agent runs with an earlier start's secret; restarting the machine";
            deps.logger.info('restarting a machine booted by an earlier start', { gitspaceId: input.spec.gitspaceId });
            await restartMachine(input.spec);
            // Booted again, its agent may answer at another address (the local provider gives it a new port).
            agentUrl = await findAgent(input.spec);
          } catch (error) {
            lastProblem = error instanceof Error ? error.message : String(error);
          }
          return undefined;
        },
        () => `agent at ${agentUrl}: ${lastProblem}`,
        AGENT_FIRST_POLL_MS,
      );
    },

    /**
     * Clones the repository on first start and runs the devcontainer lifecycle commands, through the agent, which
     * the runner finds through its own provider: an `agentUrl` in the input (older histories pass one) is ignored.
     */
    async prepareWorkspace(input: {
      spec: GitspaceSpec;
      agentUrl?: string;
      repositoryTokenSealed?: string;
      order?: string;
    }): Promise<void> {
      await checkOrder('prepareWorkspace', input.order, {
        gitspaceId: input.spec.gitspaceId,
        spec: input.spec,
        repositoryTokenSealed: input.repositoryTokenSealed ?? null,
      });
      const context = Context.current();
      const agentUrl = await findAgent(input.spec);
      const token = await repositoryToken(input.spec, input.repositoryTokenSealed);
      // The agent, which resolves and clones, enforces the infrastructure's rule (validated when it was configured).
      const networks = repositoryNetworksSchema.safeParse(input.spec.providerConfig.repositoryNetworks ?? {});
      if (!networks.success) {
        throw ApplicationFailure.nonRetryable(
          `infrastructure '${input.spec.infrastructureName}' has an invalid config.repositoryNetworks`,
          'InvalidInfrastructureConfigError',
        );
      }
      const heartbeat = setInterval(() => context.heartbeat('preparing workspace'), 5000);
      try {
        const result = await deps.agents.prepareWorkspace(
          agentUrl,
          agentSecret(input.spec.gitspaceId),
          {
            repository: { ...input.spec.repository, ...(token ? { token } : {}) },
            repositoryNetworks: networks.data,
          },
          context.cancellationSignal,
        );
        deps.logger.info('workspace prepared', { gitspaceId: input.spec.gitspaceId, ...result });
      } catch (error) {
        // The agent's verdict on the repository or its commands is final: retrying the same clone changes nothing.
        if (error instanceof AgentRequestError && error.status === 422) {
          throw ApplicationFailure.nonRetryable(error.message, error.code);
        }
        throw error;
      } finally {
        clearInterval(heartbeat);
      }
    },

    /**
     * Gives the agent a new random route secret, then registers the route with the same secret and this start's run
     * (common/gateway-route.ts): from here on only the gateway reaches the IDE, and only with tokens of this run. The
     * route's target is the agent the provider reports, never an address from the input. Returns the gitspace's SSH
     * host key, which the start passes on to the control plane (none from an agent older than SSH).
     */
    async registerRoute(input: { spec: GitspaceSpec; order?: string }): Promise<{ sshHostKey?: string }> {
      await checkOrder('registerRoute', input.order, { gitspaceId: input.spec.gitspaceId, spec: input.spec });
      const context = Context.current();
      const { gitspaceId } = input.spec;
      const target = await findAgent(input.spec);
      const secret = randomBytes(32).toString('base64url');
      const { sshHostKey } = await deps.agents.setRouteSecret(
        target,
        agentSecret(gitspaceId),
        secret,
        context.cancellationSignal,
      );
      const runId = workflowRun().runId;
      await deps.gateway.putRoute(gitspaceId, { target, secret, runId }, context.cancellationSignal);
      return sshHostKey ? { sshHostKey } : {};
    },

    async removeRoute(input: { gitspaceId: string; order?: string }): Promise<void> {
      await checkOrder('removeRoute', input.order, { gitspaceId: input.gitspaceId });
      await deps.gateway.deleteRoute(input.gitspaceId, Context.current().cancellationSignal);
    },

    /** Stops the machine; returns the cloud operation it started, if any, for waitForMachine (through history). */
    async stopMachine(input: { spec: MachineRef; order?: string }): Promise<{ operation?: ProviderOperation }> {
      await checkOrder('stopMachine', input.order, {
        gitspaceId: input.spec.gitspaceId,
        infrastructure: input.spec,
      });
      const operation = await withHeartbeat('stopping the machine', () =>
        providerFor(input.spec).stop(input.spec.gitspaceId, callOptions(`stop-${input.spec.gitspaceId}`)),
      );
      return operation ? { operation } : {};
    },

    /** Deletes the machine; returns the cloud operation it started, if any, for waitForMachine (through history). */
    async deleteMachine(input: { spec: MachineRef; order?: string }): Promise<{ operation?: ProviderOperation }> {
      await checkOrder('deleteMachine', input.order, {
        gitspaceId: input.spec.gitspaceId,
        infrastructure: input.spec,
      });
      const operation = await withHeartbeat('deleting the machine', () =>
        providerFor(input.spec).delete(input.spec.gitspaceId, callOptions(`delete-${input.spec.gitspaceId}`)),
      );
      return operation ? { operation } : {};
    },

    /**
     * Every machine of this installation on the infrastructure, as the provider sees it now. Read-only, so it needs
     * no work order: it changes nothing and reveals only machine ids and statuses to a payload-key holder.
     */
    async observeMachines(input: {
      infrastructure: Pick<GitspaceSpec, 'infrastructureId' | 'provider' | 'providerConfig'>;
    }): Promise<MachineInfo[]> {
      return providerFor(input.infrastructure).list(callOptions(`list-${input.infrastructure.infrastructureId}`));
    },

    /**
     * What the gateway has seen of a gitspace's use (gateway/activity.ts), for the auto-stop. Read-only, like
     * observeMachines: it needs no work order and reveals only counts and seconds.
     */
    async observeGatewayActivity(input: { infrastructureId: string; gitspaceId: string }): Promise<GatewayActivity> {
      checkServed(input.infrastructureId);
      return deps.gateway.activity(input.gitspaceId, Context.current().cancellationSignal);
    },
  };
}

export type InfrastructureActivities = ReturnType<typeof createInfrastructureActivities>;

/** The workflow run an activity works for: lifecycle activities are only ever scheduled by a workflow. */
function workflowRun(): { workflowId: string; runId: string } {
  const run = Context.current().info.workflowExecution;
  if (!run) throw ApplicationFailure.nonRetryable('this activity runs only inside a workflow', 'NoWorkflowRunError');
  return run;
}
