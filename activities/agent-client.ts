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

    /** Gives the agent this start's route secret: from now on it answers only requests the gateway forwards. */
    async setRouteSecret(agentUrl: string, secret: string, routeSecret: string, signal: AbortSignal): Promise<void> {
      const response = await fetchImpl(`${agentUrl}/_agent/route`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ secret: routeSecret }),
        signal,
      });
      await response.body?.cancel();
      if (!response.ok) {
        throw new AgentRequestError(
          'AgentRequestError',
          `agent refused the route secret (${response.status})`,
          response.status,
        );
      }
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
