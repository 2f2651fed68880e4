import { WebSocket } from 'ws';

/** The server answered an upgrade with something other than 101; carries its status and body. */
export class UpgradeRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`upgrade refused with ${status}: ${body}`);
    this.name = 'UpgradeRefusedError';
  }
}

/** Opens a WebSocket; rejects with UpgradeRefusedError when the server does not switch protocols. */
export function openWebSocket(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => reject(new UpgradeRefusedError(res.statusCode ?? 0, body)));
    });
    ws.once('error', reject);
  });
}

/** The status an upgrade gets: 101 when the WebSocket opened (it is closed again), else the refusal's. */
export async function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  try {
    (await openWebSocket(url, headers)).close();
    return 101;
  } catch (error) {
    if (error instanceof UpgradeRefusedError) return error.status;
    throw error;
  }
}
