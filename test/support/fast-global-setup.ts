import { findOrInstallTestServer } from './time-skipping';

/**
 * The fast set's global setup: resolves the time-skipping test server once (from the user-level cache; with Maven the
 * first time) before test files start theirs side by side. Nothing else: the fast set needs no Temporal CLI.
 */
export default async function fastGlobalSetup(): Promise<void> {
  process.env.TEMPORAL_TEST_SERVER_PATH = await findOrInstallTestServer((line) => process.stderr.write(`${line}\n`));
}
