import type { RepositorySource } from '../agent/git';
import type { RepositoryNetworks } from '../agent/repository-address';

/** Thrown when the agent refused or failed a request; `code` is the agent's error code (an error class name). */
export class AgentRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    // The agent's error class name (CloneFailedError, LifecycleCommandError) becomes the Temporal failure type.
    this.name = code;
  }
}

/** An OpenSSH public key line as the agent makes it (agent/ssh/host-key.ts): ed25519, no comment, nothing else. */
const SSH_HOST_KEY_LINE = /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}$/;

export interface AgentHealth {
  status: string;
  gitspaceId: string;
  workspace: string;
}

/** The runner's client for a gitspace agent's private `/_agent/` API. */
export function createAgentClient(fetchImpl: typeof fetch = fetch) {
  return {
    async health(agentUrl: string, signal: AbortSignal): Promise<AgentHealth> {
      const response = await fetchImpl(`${agentUrl}/_agent/healthz`, { signal });
      if (!response.ok)
        throw new AgentRequestError('AgentUnhealthyError', `agent answered ${response.status}`, response.status);
      return (await response.json()) as AgentHealth;
    },

    /** Whether the agent accepts this secret: false when it runs with another start's secret. */
    async acceptsSecret(agentUrl: string, secret: string, signal: AbortSignal): Promise<boolean> {
      const response = await fetchImpl(`${agentUrl}/_agent/session`, {
        headers: { authorization: `Bearer ${secret}` },
        signal,
      });
      await response.body?.cancel();
      if (response.status === 401) return false;
      if (!response.ok)
        throw new AgentRequestError('AgentUnhealthyError', `agent answered ${response.status}`, response.status);
      return true;
    },

    /**
     * Gives the agent this start's route secret: from now on it answers only requests the gateway forwards. Returns the
     * gitspace's SSH host key (an agent from before SSH answers 204 and has none).
     */
    async setRouteSecret(
      agentUrl: string,
      secret: string,
      routeSecret: string,
      signal: AbortSignal,
    ): Promise<{ sshHostKey?: string }> {
      const response = await fetchImpl(`${agentUrl}/_agent/route`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ secret: routeSecret }),
        signal,
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new AgentRequestError(
          'AgentRequestError',
          `agent refused the route secret (${response.status})`,
          response.status,
        );
      }
      if (response.status === 204) return {};
      const { sshHostKey } = (await response.json()) as { sshHostKey?: unknown };
      // The machine is its user's: what it says ends up in known_hosts files, so only one plain key line is taken.
      if (typeof sshHostKey !== 'string' || !SSH_HOST_KEY_LINE.test(sshHostKey)) {
        throw new AgentRequestError('AgentRequestError', 'the agent answered with no valid SSH host key', 502);
      }
      return { sshHostKey };
    },

    /** Clones the repository (the agent checks its address against `repositoryNetworks`) and runs the commands. */
    async prepareWorkspace(
      agentUrl: string,
      secret: string,
      request: { repository: RepositorySource; repositoryNetworks: RepositoryNetworks },
      signal: AbortSignal,
    ): Promise<{ clone: string; ranCommands: string[] }> {
      const response = await fetchImpl(`${agentUrl}/_agent/workspace`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify(request),
        signal,
      });
      const body = (await response.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
      if (!response.ok) {
        throw new AgentRequestError(
          body.error?.code ?? 'AgentRequestError',
          body.error?.message ?? `agent answered ${response.status}`,
          response.status,
        );
      }
      return body as { clone: string; ranCommands: string[] };
    },
  };
}

export type AgentClient = ReturnType<typeof createAgentClient>;
