import type { AddressInfo } from 'node:net';
import { closeIde } from '../../agent/ide';
import { createAgentApp, type AgentOptions } from '../../agent/server';

export interface ServedAgent {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Stops the agent's IDE (shells, VS Code) and every connection, then the listener. */
  close(): Promise<void>;
}

/** A real agent on loopback, as a machine runs it: on `port`, or a free one (0). */
export async function serveAgent(options: AgentOptions, port = 0): Promise<ServedAgent> {
  const { server } = createAgentApp(options);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      closeIde(server);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
