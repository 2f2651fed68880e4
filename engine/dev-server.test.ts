import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { silentLogger } from '../common/logger';
import { freeLoopbackPort } from '../common/net';
import { startTestTemporal } from '../test/support/temporal';
import { openWebSocket } from '../test/support/websocket';
import { startDevServer } from './dev-server';
import { SEARCH_ATTRIBUTE_NAMES } from './search-attributes';
import { UI_WRITE_SETTINGS } from './ui-guard';

describe('the Temporal dev server', () => {
  it('registers the gitspace search attributes and keeps every workflow across a restart (SQLite file)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-engine-'));
    const dbFile = path.join(dir, 'temporal.sqlite');
    const port = await freeLoopbackPort();
    let server = await startTestTemporal({ dbFile, port });
    try {
      let connection = await Connection.connect({ address: server.address });
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      expect(Object.keys(customAttributes ?? {})).toEqual(expect.arrayContaining([...SEARCH_ATTRIBUTE_NAMES]));
      // No worker polls this queue: the workflow stays open, as an operation in flight would during a crash.
      const started = await new Client({ connection }).workflow.start('startGitspace', {
        workflowId: 'gitspace-gs-durable',
        taskQueue: 'nobody-polls-this',
        args: [{ gitspaceId: 'gs-durable' }],
      });
      await connection.close();

      process.kill(-server.process.pid!, 'SIGKILL');
      await new Promise((resolve) => server.process.once('exit', resolve));
      server = await startTestTemporal({ dbFile, port });
      connection = await Connection.connect({ address: server.address });
      const description = await new Client({ connection }).workflow.getHandle('gitspace-gs-durable').describe();
      expect(description.runId).toBe(started.firstExecutionRunId);
      expect(description.status.name).toBe('RUNNING');
      await connection.close();
    } finally {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('runs the Web UI with its write actions off unless asked for them', async () => {
    const start = async (uiWriteActions?: boolean) => {
      const uiPort = await freeLoopbackPort();
      const server = await startDevServer({
        cliPath: process.env.TEMPORAL_CLI_PATH!,
        host: '127.0.0.1',
        port: await freeLoopbackPort(),
        uiPort,
        ...(uiWriteActions === undefined ? {} : { uiWriteActions }),
        namespace: 'default',
        logger: silentLogger,
      });
      return { server, ui: `http://127.0.0.1:${uiPort}` };
    };
    const settings = async (ui: string) =>
      (await (await fetch(`${ui}/api/v1/settings`)).json()) as Record<string, unknown>;
    // A terminate as the UI sends it: with the CSRF cookie and header it got from the settings answer.
    const terminate = async (ui: string) => {
      const answer = await fetch(`${ui}/api/v1/settings`);
      const csrf = /_csrf=([^;]+)/.exec(answer.headers.get('set-cookie') ?? '')?.[1] ?? '';
      return fetch(`${ui}/api/v1/namespaces/default/workflows/nobody/terminate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: `_csrf=${csrf}`, 'x-csrf-token': csrf },
        body: JSON.stringify({ reason: 'test' }),
      });
    };

    const off = await start();
    try {
      expect(off.server.uiWriteActions).toBe(false);
      const answer = await settings(off.ui);
      for (const name of UI_WRITE_SETTINGS) expect([name, answer[name]]).toEqual([name, true]);
      expect((await terminate(off.ui)).status).toBe(405);
      // Every other method that could write is refused as well, and so is an upgrade: only reads pass the guard.
      for (const method of ['PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
        const answer = await fetch(`${off.ui}/api/v1/namespaces/default/workflows/nobody`, { method });
        expect([method, answer.status]).toEqual([method, 405]);
      }
      await expect(openWebSocket(`${off.ui.replace('http:', 'ws:')}/api/v1/settings`)).rejects.toThrow();
      // The UI itself is served (GET passes).
      expect((await fetch(`${off.ui}/`)).status).toBe(200);
    } finally {
      await off.server.stop();
    }

    const on = await start(true);
    try {
      expect(on.server.uiWriteActions).toBe(true);
      expect((await settings(on.ui)).DisableWriteActions).toBe(false);
      // Through to Temporal: no such workflow. The UI server's own connection to Temporal may still be waiting to
      // retry its first attempt (made while the frontend was starting): it answers 503 until then.
      let answer = await terminate(on.ui);
      for (let attempt = 0; answer.status === 503 && attempt < 40; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        answer = await terminate(on.ui);
      }
      expect(answer.status).toBe(404);
    } finally {
      await on.server.stop();
    }
  }, 120_000);
});
