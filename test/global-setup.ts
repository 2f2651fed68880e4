import { createLogger } from '../common/logger';
import { findOrBuildTemporalCli } from '../engine/temporal-cli';

/**
 * Finds or builds the pinned Temporal CLI once for the whole run (a first build takes minutes) and hands its path
 * to the test files, each of which starts its own dev server with it.
 */
export default async function globalSetup(): Promise<void> {
  process.env.TEMPORAL_CLI_PATH = await findOrBuildTemporalCli({
    explicitPath: process.env.TEMPORAL_CLI_PATH,
    searchPath: process.env.PATH,
    logger: createLogger('test-setup'),
  });
}
