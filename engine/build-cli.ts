import { createLogger } from '../common/logger';
import { findOrBuildTemporalCli } from './temporal-cli';

/** Finds or builds the pinned Temporal CLI ahead of time (CI runs this so its progress shows in its own step). */
findOrBuildTemporalCli({
  explicitPath: process.env.TEMPORAL_CLI_PATH,
  searchPath: process.env.PATH,
  logger: createLogger('temporal-cli'),
}).then(
  (cli) => process.stdout.write(`Temporal CLI: ${cli}\n`),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
