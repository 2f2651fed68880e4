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
  /** `<method> /routes/<gitspaceId><rest>`; a refusal or failure throws GatewayAdminError (a DELETE's 404 is done). */
  const call = async (method: string, gitspaceId: string, rest = '', body?: unknown, signal?: AbortSignal) => {
    const response = await fetchImpl(`${options.url}/routes/${encodeURIComponent(gitspaceId)}${rest}`, {
      method,
      headers: { authorization: `Bearer ${options.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal,
    });
    if (!response.ok && !(method === 'DELETE' && response.status === 404)) {
      // The gateway never echoes a route secret, so its answer is safe to show.
      const text = await response.text().catch(() => '');
      const what = rest ? rest.slice(1) : 'route';
      throw new GatewayAdminError(
        `gateway ${method} ${what} for ${gitspaceId} answered ${response.status}: ${text.slice(0, 300)}`,
        response.status,
      );
    }
    return response;
  };
  return {
    /** Registers (or replaces) a gitspace's route: its target, the start's route secret and run id. */
    putRoute: async (gitspaceId: string, registration: RouteRegistration, signal?: AbortSignal) => {
      const { target, secret, runId } = registration;
      await (await call('PUT', gitspaceId, '', { target, secret, runId }, signal)).body?.cancel();
    },
    deleteRoute: async (gitspaceId: string, signal?: AbortSignal) => {
      await (await call('DELETE', gitspaceId, '', undefined, signal)).body?.cancel();
    },
    /** What the gateway has seen of a gitspace's use (GET /routes/:id/activity). */
    async activity(gitspaceId: string, signal?: AbortSignal): Promise<GatewayActivity> {
      const response = await call('GET', gitspaceId, '/activity', undefined, signal);
      const { idleSeconds, openWebSockets, openSshSessions } = (await response.json()) as GatewayActivity;
      return { idleSeconds, openWebSockets, openSshSessions };
    },
  };
}

export type GatewayAdminClient = ReturnType<typeof createGatewayAdminClient>;
