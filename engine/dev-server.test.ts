import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { freeLoopbackPort } from '../common/net';
import { startTestTemporal } from '../test/support/temporal';
import { SEARCH_ATTRIBUTE_NAMES } from './search-attributes';

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
});
