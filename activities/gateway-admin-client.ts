import type { RouteRegistration } from '../common/gateway-route';
import type { GatewayActivity } from '../contracts/lifecycle';

/** Thrown when the gateway's admin API refused or failed a route change. */
export class GatewayAdminError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'GatewayAdminError';
  }
}

export interface GatewayAdminOptions {
  /** Base URL of the gateway's admin listener, e.g. http://127.0.0.1:3002. */
  url: string;
  token: string;
  fetchImpl?: typeof fetch;
}

/** The runner's client for the CDE gateway's admin API (DESIGN.md §4): the only writer of routes. */
export function createGatewayAdminClient(options: GatewayAdminOptions) {
  const fetchImpl = options.fetchImpl ?? fetch;
  const call = async (method: string, gitspaceId: string, body?: unknown, signal?: AbortSignal) => {
    const response = await fetchImpl(`${options.url}/routes/${encodeURIComponent(gitspaceId)}`, {
      method,
      headers: { authorization: `Bearer ${options.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal,
    });
    if (!response.ok && !(method === 'DELETE' && response.status === 404)) {
      // The gateway never echoes a route secret, so its answer is safe to show.
      const text = await response.text().catch(() => '');
      throw new GatewayAdminError(
        `gateway ${method} route for ${gitspaceId} answered ${response.status}: ${text.slice(0, 300)}`,
        response.status,
      );
    }
  };
  return {
    /** Registers (or replaces) a gitspace's route: its target, the start's route secret and run id. */
    putRoute: (gitspaceId: string, registration: RouteRegistration, signal?: AbortSignal) =>
      call(
        'PUT',
        gitspaceId,
        { target: registration.target, secret: registration.secret, runId: registration.runId },
        signal,
      ),
    deleteRoute: (gitspaceId: string, signal?: AbortSignal) => call('DELETE', gitspaceId, undefined, signal),
    /** What the gateway has seen of a gitspace's use (GET /routes/:id/activity). */
    async activity(gitspaceId: string, signal?: AbortSignal): Promise<GatewayActivity> {
      const response = await fetchImpl(`${options.url}/routes/${encodeURIComponent(gitspaceId)}/activity`, {
        headers: { authorization: `Bearer ${options.token}` },
        signal,
      });
      if (!response.ok) {
        const text = await response.text().catch(() => '');
        throw new GatewayAdminError(
          `gateway GET activity of ${gitspaceId} answered ${response.status}: ${text.slice(0, 300)}`,
          response.status,
        );
      }
      const { idleSeconds, openWebSockets, openSshSessions } = (await response.json()) as GatewayActivity;
      return { idleSeconds, openWebSockets, openSshSessions };
    },
  };
}

export type GatewayAdminClient = ReturnType<typeof createGatewayAdminClient>;
