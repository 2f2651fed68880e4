import { silentLogger, type Logger } from '../../common/logger';
import { DevServerStartError, startDevServer, type DevServer } from '../../engine/dev-server';
import { freeLoopbackPort } from '../../common/net';

/**
 * A real Temporal dev server for one test file: in memory unless a database file is given; headless unless a codec
 * endpoint for its Web UI is given (then the UI is served as `npm start` serves it, write actions off).
 */
export async function startTestTemporal(
  options: { dbFile?: string; port?: number; logger?: Logger; uiCodecEndpoint?: string } = {},
): Promise<DevServer> {
  const cliPath = process.env.TEMPORAL_CLI_PATH;
  if (!cliPath)
    throw new Error('TEMPORAL_CLI_PATH is not set: run the tests through jest, whose global setup finds the CLI');
  // Test files start their servers side by side, each taking free ports just before binding them (the dev server
  // picks its HTTP API port the same way): a port taken in between fails the start, and a new try gets new ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevServer({
        cliPath,
        host: '127.0.0.1',
        port: options.port ?? (await freeLoopbackPort()),
        namespace: 'default',
        logger: options.logger ?? silentLogger,
        ...(options.dbFile ? { dbFile: options.dbFile } : {}),
        ...(options.uiCodecEndpoint
          ? { uiPort: await freeLoopbackPort(), uiCodecEndpoint: options.uiCodecEndpoint }
          : {}),
      });
    } catch (error) {
      if (!(error instanceof DevServerStartError) || !/address already in use/.test(error.message) || attempt === 3) {
        throw error;
      }
    }
  }
}
