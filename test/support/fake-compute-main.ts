/**
 * Runs the fake Compute API alone for a developer's emulator run: `npx tsx test/support/fake-compute-main.ts`, then
 * start the runner with GITSPACES_GCP_COMPUTE_ENDPOINT set to the printed URL.
 */
import { ConfigError, ConfigReader } from '../../common/config';
import { startFakeComputeServer } from './fake-compute-server';

async function main(): Promise<void> {
  const config = new ConfigReader(process.env);
  const port = config.port('GITSPACES_FAKE_COMPUTE_PORT', 0);
  const operationDelayMs = config.positiveInt('GITSPACES_FAKE_COMPUTE_OPERATION_DELAY_MS', 2000);
  config.done();
  const fake = await startFakeComputeServer({ port, operationDelayMs });
  process.stdout.write(`fake Compute API on ${fake.url}\nGITSPACES_GCP_COMPUTE_ENDPOINT=${fake.url}\n`);
  const shutdown = () => void fake.close().then(() => process.exit(0));
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof ConfigError ? error.message : String(error)}\n`);
  process.exit(2);
});
