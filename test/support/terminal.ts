import type { WebSocket } from 'ws';
import type { TestStack } from './stack';
import { openWebSocket } from './websocket';

/** A browser terminal of a gitspace, opened through the gateway as its member would, running one command at a time. */
export class Terminal {
  private output = '';
  private seq = 0;
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.output += data.toString('utf8');
    });
  }

  static async open(stack: TestStack, gitspaceId: string, token: string): Promise<Terminal> {
    const access = await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/access`, undefined, token);
    expect(access.status).toBe(200);
    const exchange = await fetch(access.body.url, { redirect: 'manual' });
    const cookie = exchange.headers.get('set-cookie')!.split(';')[0]!;
    const ws = await openWebSocket(`${stack.gatewayUrl.replace('http', 'ws')}/gitspaces/${gitspaceId}/pty`, { cookie });
    return new Terminal(ws);
  }

  /** Runs a command in the shell; resolves with what it printed (stdout and stderr). */
  async run(command: string, timeoutMs = 30_000): Promise<string> {
    const n = 1000 + ++this.seq;
    // The markers are computed by the shell, so the echo of the typed line never matches them.
    const start = `S${n}S`;
    const end = `E${n}E`;
    this.ws.send(
      JSON.stringify({
        type: 'input',
        data: `echo S$((${n - 1}+1))S; ${command} 2>&1; echo E$((${n - 1}+1))E\r`,
      }),
    );
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const from = this.output.lastIndexOf(`${start}\r\n`);
      const to = this.output.indexOf(end, from);
      if (from >= 0 && to > from)
        return this.output
          .slice(from + start.length, to)
          .replace(/\r/g, '')
          .trim();
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`'${command}' did not finish; the terminal showed: ${JSON.stringify(this.output.slice(-2000))}`);
  }

  close(): void {
    this.ws.close();
  }
}
