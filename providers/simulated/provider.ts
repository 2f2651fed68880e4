/**
 * The `simulated` provider, for benchmarks and tests only (the way Coder benchmarks with its echo provisioner):
 * machines that boot in the infrastructure's `bootSeconds` when created (`resumeSeconds` when started from stopped)
 * and run no process. While a machine runs, the runner itself answers as its agent (./agent.ts) over real HTTP on a
 * loopback port, so waitForAgent, prepareWorkspace and registerRoute run their real code. Each machine has a port of
 * its own because an agent's origin is what tells machines apart (the health check names no gitspace in its request,
 * and the gateway routes to plain origins).
 *
 * Machines live in the runner's memory: one runner per simulated infrastructure, and a runner that restarts has none
 * (reconciliation then reports its gitspaces' machines missing). The runner serves it only when started with
 * GITSPACES_ENABLE_SIMULATED_PROVIDER=1 (providers/resolver.ts).
 */
import http from 'node:http';
import { utils } from 'ssh2';
import { newEd25519PrivateKey } from '../../agent/ssh/host-key';
import type { Logger } from '../../common/logger';
import { listen } from '../../common/net';
import { InstanceNotFoundError } from '../../contracts/provider-errors';
import type { AgentBootstrap, MachineInfo, Provider } from '../../contracts/provider';
import { answerAsAgent, type SimulatedMachine } from './agent';
import type { SimulatedInfrastructureConfig } from './config';

/** Every simulated machine of a runner, shared by the providers of each config (a changed config keeps them). */
export interface SimulatedCloud {
  /** The provider of one infrastructure config. */
  provider(config: SimulatedInfrastructureConfig): Provider;
  /** Stops every machine (their agents stop answering) and forgets them. */
  close(): Promise<void>;
}

/** A machine, and what runs it: its boot timer while it boots, its agent's listener while it runs. */
interface Machine extends SimulatedMachine {
  providerId: string;
  booting?: NodeJS.Timeout;
  listener?: http.Server;
  agentUrl?: string;
}

const AGENT_RETRY_MS = 1000;

export function createSimulatedCloud(options: { logger: Logger }): SimulatedCloud {
  const { logger } = options;
  const machines = new Map<string, Machine>();
  let made = 0;

  /** Boots the machine: `provisioning` for `bootMs`, then its agent listens and it is `running`. */
  const boot = (machine: Machine, bootMs: number): void => {
    machine.status = 'provisioning';
    const timer = setTimeout(async () => {
      const listener = http.createServer((req, res) => answerAsAgent(machine, req, res));
      try {
        const url = await listen(listener, 0, '127.0.0.1');
        // Stopped or deleted while its agent began to listen: this boot is over.
        if (machine.booting !== timer) return closeListener(listener);
        Object.assign(machine, { status: 'running', listener, agentUrl: url, booting: undefined });
      } catch (error) {
        logger.warn('a simulated agent could not listen; booting again', { gitspaceId: machine.gitspaceId, error });
        if (machine.booting === timer) boot(machine, AGENT_RETRY_MS);
      }
    }, bootMs);
    timer.unref();
    machine.booting = timer;
  };

  /** Stops the machine: its agent stops answering and forgets its route secret, as a process that ends would. */
  const halt = (machine: Machine): void => {
    clearTimeout(machine.booting);
    if (machine.listener) closeListener(machine.listener);
    Object.assign(machine, {
      status: 'stopped',
      booting: undefined,
      listener: undefined,
      agentUrl: undefined,
      routeSecret: undefined,
    });
  };

  /** Boots a stopped machine with this start's agent secret. */
  const bootStopped = (machine: Machine, bootstrap: AgentBootstrap, bootMs: number): void => {
    if (machine.status !== 'stopped') return;
    Object.assign(machine, { agentSecret: bootstrap.agentSecret, ide: bootstrap.ide });
    boot(machine, bootMs);
  };

  const infoOf = (machine: Machine): MachineInfo => ({
    gitspaceId: machine.gitspaceId,
    providerId: machine.providerId,
    status: machine.status,
    ...(machine.agentUrl ? { agentUrl: machine.agentUrl } : {}),
    disks: [`${machine.providerId}-disk`],
    labels: { 'gitspace-id': machine.gitspaceId },
  });

  const provider = (config: SimulatedInfrastructureConfig): Provider => {
    const bootMs = config.bootSeconds * 1000;
    const resumeMs = (config.resumeSeconds ?? config.bootSeconds) * 1000;
    return {
      name: 'simulated',

      async create(request) {
        let machine = machines.get(request.gitspaceId);
        if (!machine) {
          machine = {
            gitspaceId: request.gitspaceId,
            providerId: `simulated-${++made}`,
            status: 'stopped',
            agentSecret: request.bootstrap.agentSecret,
            ide: request.bootstrap.ide,
            sshHostKey: newSshHostKey(),
            workspace: 'empty',
          };
          machines.set(request.gitspaceId, machine);
        }
        bootStopped(machine, request.bootstrap, bootMs);
        return infoOf(machine);
      },

      async describe(gitspaceId) {
        const machine = machines.get(gitspaceId);
        return machine ? infoOf(machine) : null;
      },

      async start(gitspaceId, bootstrap) {
        const machine = machines.get(gitspaceId);
        if (!machine) throw new InstanceNotFoundError(gitspaceId, 'simulated');
        bootStopped(machine, bootstrap, resumeMs);
        return infoOf(machine);
      },

      async stop(gitspaceId) {
        const machine = machines.get(gitspaceId);
        if (machine) halt(machine);
      },

      async delete(gitspaceId) {
        const machine = machines.get(gitspaceId);
        if (machine) halt(machine);
        machines.delete(gitspaceId);
      },

      async list() {
        return [...machines.values()].map(infoOf);
      },

      /**
       * Re-keys the pooled machine to the gitspace, its `gitspaceId` too, so its agent's health names the gitspace.
       * Safe to retry: the move is one synchronous step (no call sees the machine under both ids or neither), and once
       * the gitspace has a machine, a repeated (or late) adopt returns that one and leaves any pooled machine alone.
       * Its state is kept: the runner's start boots it with the start's own agent secret.
       */
      async adopt(warmKey, gitspaceId) {
        const own = machines.get(gitspaceId);
        if (own) return infoOf(own);
        const pooled = machines.get(warmKey);
        if (!pooled) return null;
        machines.delete(warmKey);
        pooled.gitspaceId = gitspaceId;
        machines.set(gitspaceId, pooled);
        return infoOf(pooled);
      },
    };
  };

  return {
    provider,
    async close() {
      for (const machine of machines.values()) halt(machine);
      machines.clear();
    },
  };
}

/** Ends the listener and the connections it holds (keep-alive ones too), as an agent process that ends would. */
function closeListener(listener: http.Server): void {
  listener.close();
  listener.closeAllConnections();
}

/** A machine's SSH host key line, made like a real agent's (agent/ssh/host-key.ts), kept across stop and start. */
function newSshHostKey(): string {
  const parsed = utils.parseKey(newEd25519PrivateKey());
  if (parsed instanceof Error) throw parsed;
  return `${parsed.type} ${parsed.getPublicSSH().toString('base64')}`;
}
