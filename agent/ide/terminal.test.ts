import { type WebSocket } from 'ws';
import { startAgent, type TestAgent } from '../../test/support/gateway-harness';
import { openWebSocket } from '../../test/support/websocket';

function outputUntil(ws: WebSocket, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in ${JSON.stringify(output)}`)), 15_000);
    ws.on('message', (data: Buffer) => {
      output += data.toString();
      if (pattern.test(output)) {
        clearTimeout(timer);
        resolve(output);
      }
    });
  });
}

describe('terminal IDE served by the agent', () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await startAgent('gs-term', { 'README.md': 'hello\n', 'package.json': '{}\n' });
  });
  afterAll(() => agent.close());

  it('serves the page with relative asset URLs, and the xterm.js assets from node_modules', async () => {
    const html = await (await fetch(`${agent.url}/`, { headers: agent.gatewayHeaders })).text();
    expect(html).toMatch(/src="assets\/xterm\.js"/);
    expect(html).toMatch(/href="assets\/xterm\.css"/);
    expect(html).not.toMatch(/(src|href)="\//);
    for (const asset of ['assets/xterm.js', 'assets/xterm.css', 'assets/addon-fit.js', 'terminal.js']) {
      expect([asset, (await fetch(`${agent.url}/${asset}`, { headers: agent.gatewayHeaders })).status]).toEqual([
        asset,
        200,
      ]);
    }
    expect((await fetch(`${agent.url}/assets/..%2f..%2fpackage.json`, { headers: agent.gatewayHeaders })).status).toBe(
      404,
    );
    expect((await fetch(`${agent.url}/assets/secret`, { headers: agent.gatewayHeaders })).status).toBe(404);
  });

  it('keeps the private agent API beside the IDE', async () => {
    expect(await (await fetch(`${agent.url}/_agent/healthz`)).json()).toMatchObject({
      gitspaceId: 'gs-term',
      ide: 'terminal',
    });
  });

  it('runs a real shell in the workspace directory and resizes it', async () => {
    const ws = await openWebSocket(`${agent.url.replace('http', 'ws')}/pty`, agent.gatewayHeaders);
    ws.send('not json');
    ws.send(JSON.stringify({ type: 'resize', cols: 'wide', rows: 5 }));
    ws.send(JSON.stringify({ type: 'resize', cols: 132, rows: 40 }));
    const output = outputUntil(ws, /size=40 132[\s\S]*README\.md/);
    ws.send(JSON.stringify({ type: 'input', data: 'pwd; echo size=$(stty size); ls\r' }));
    const text = await output;
    expect(text).toContain(agent.workspaceDir);
    const closed = new Promise<string>((resolve) => ws.once('close', (_code, reason) => resolve(reason.toString())));
    ws.send(JSON.stringify({ type: 'input', data: 'exit 3\r' }));
    expect(await closed).toBe('shell exited with code 3');
  });

  it('refuses upgrades on other paths', async () => {
    await expect(openWebSocket(`${agent.url.replace('http', 'ws')}/elsewhere`, agent.gatewayHeaders)).rejects.toThrow(
      /404/,
    );
  });
});
