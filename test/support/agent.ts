import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createAgentClient } from '../../activities/agent-client';
import { closeIde } from '../../agent/ide';
import { createAgentApp, type AgentOptions } from '../../agent/server';
import { ROUTE_SECRET_HEADER } from '../../common/gateway-route';

export interface ServedAgent {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /**
   * Gives the agent a new route secret through the runner's own client, as every start does; resolves with the
   * headers the gateway would add, which let a test talk to the IDE directly.
   */
  route(): Promise<Record<string, string>>;
  /** Stops the agent's IDE (shells, VS Code), its SSH connections and every other connection, then the listener. */
  close(): Promise<void>;
}

/**
 * A real agent on loopback, as a machine runs it: on `port`, or a free one (0). Without `homeDir`, the gitspace's home
 * (git credentials, the SSH host key) is a temporary directory, never the home of whoever runs the tests.
 */
export async function serveAgent(options: AgentOptions, port = 0): Promise<ServedAgent> {
  const temporaryHome = options.homeDir ? undefined : await mkdtemp(path.join(os.tmpdir(), 'gitspaces-agent-home-'));
  const { server, closeSsh } = createAgentApp({ ...options, homeDir: options.homeDir ?? temporaryHome });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    async route() {
      const routeSecret = randomBytes(32).toString('base64url');
      await createAgentClient().setRouteSecret(url, options.secret, routeSecret, AbortSignal.timeout(10_000));
      return { [ROUTE_SECRET_HEADER]: routeSecret };
    },
    async close() {
      closeIde(server);
      closeSsh();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (temporaryHome) await rm(temporaryHome, { recursive: true, force: true });
    },
  };
}
