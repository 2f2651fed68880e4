import { silentLogger, type Logger } from '../../common/logger';
import { startDevServer, type DevServer } from '../../engine/dev-server';
import { freeLoopbackPort } from '../../common/net';

/** A real Temporal dev server for one test file: headless, in memory unless a database file is given. */
export async function startTestTemporal(
  options: { dbFile?: string; port?: number; logger?: Logger } = {},
): Promise<DevServer> {
  const cliPath = process.env.TEMPORAL_CLI_PATH;
  if (!cliPath)
    throw new Error('TEMPORAL_CLI_PATH is not set: run the tests through jest, whose global setup finds the CLI');
  return startDevServer({
    cliPath,
    host: '127.0.0.1',
    port: options.port ?? (await freeLoopbackPort()),
    namespace: 'default',
    logger: options.logger ?? silentLogger,
    ...(options.dbFile ? { dbFile: options.dbFile } : {}),
  });
}
