import path from 'node:path';
import { ConfigError, ConfigReader } from '../common/config';
import { preparePrivateDataDir } from '../common/data-dir';
import { createLogger, readLogSettings } from '../common/logger';
import { startDevServer } from './dev-server';
import { findOrBuildTemporalCli } from './temporal-cli';

/** `npm run temporal`: the Temporal dev server with its Web UI alone, state in the data dir's SQLite file. */
async function main(): Promise<void> {
  const config = new ConfigReader(process.env);
  const dataDir = path.resolve(config.string('GITSPACES_DATA_DIR', '.gitspaces'));
  const host = config.string('GITSPACES_TEMPORAL_HOST', '127.0.0.1');
  const port = config.port('GITSPACES_TEMPORAL_PORT', 7233);
  const uiPort = config.port('GITSPACES_TEMPORAL_UI_PORT', 8233);
  const namespace = config.string('TEMPORAL_NAMESPACE', 'default');
  const uiCodecEndpoint = config.url('GITSPACES_TEMPORAL_UI_CODEC_ENDPOINT');
  const uiActions = config.oneOf('GITSPACES_TEMPORAL_UI_ACTIONS', ['on', 'off'], 'off');
  const explicitPath = config.string('TEMPORAL_CLI_PATH');
  const logSettings = config.include(() => readLogSettings(process.env));
  config.done();

  const logger = createLogger('temporal', logSettings);
  const cliPath = await findOrBuildTemporalCli({ explicitPath, searchPath: process.env.PATH, logger });
  await preparePrivateDataDir(dataDir);
  const server = await startDevServer({
    cliPath,
    host,
    port,
    uiPort,
    ...(uiCodecEndpoint ? { uiCodecEndpoint } : {}),
    uiWriteActions: uiActions === 'on',
    namespace,
    dbFile: path.join(dataDir, 'temporal.sqlite'),
    logger,
    onOutput: (line) => process.stderr.write(`[temporal] ${line}\n`),
  });
  process.stdout.write(
    `Temporal: ${server.address}  Web UI: ${server.uiUrl} (write actions ${server.uiWriteActions ? 'on' : 'off'})\n`,
  );
  const shutdown = () => void server.stop().then(() => process.exit(0));
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  server.process.once('exit', (code) => process.exit(code ?? 1));
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof ConfigError ? error.message : error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
