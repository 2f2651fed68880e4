import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ConfigReader } from '../common/config';
import { preparePrivateDataDir } from '../common/data-dir';
import { newToken } from '../common/ids';
import { createLogger, readLogSettings } from '../common/logger';
import { runMain } from '../common/main';
import { EncryptionCodec, loadPayloadKeyRing, PAYLOAD_KEYS_ENV } from '../common/payload-codec';
import { readOrCreateSecretFile } from '../common/secret-file';
import { createCodecServer, DEFAULT_CODEC_ALLOWED_ORIGINS, DEFAULT_CODEC_PORT } from './server';

/** `npm run codec-server`: Temporal's remote codec endpoint for the Web UI and CLI, beside the payload keys. */
async function main(): Promise<{ stop(): Promise<void> }> {
  const config = new ConfigReader(process.env);
  const dataDir = path.resolve(config.string('GITSPACES_DATA_DIR', '.gitspaces'));
  const host = config.string('GITSPACES_CODEC_HOST', '127.0.0.1');
  const port = config.port('GITSPACES_CODEC_PORT', DEFAULT_CODEC_PORT);
  const allowedOrigins = config
    .string('GITSPACES_CODEC_ALLOWED_ORIGINS', DEFAULT_CODEC_ALLOWED_ORIGINS)
    .split(',')
    .map((origin) => origin.trim())
    .filter(Boolean);
  const configuredToken = config.string('GITSPACES_CODEC_TOKEN');
  const payloadKeys = config.string(PAYLOAD_KEYS_ENV);
  const logSettings = config.include(() => readLogSettings(process.env));
  config.done();
  await preparePrivateDataDir(dataDir);

  const logger = createLogger('codec-server', logSettings);
  const ring = await loadPayloadKeyRing({ dataDir, keys: payloadKeys });
  const tokenFile = path.join(dataDir, 'codec-token');
  const token = configuredToken ?? (await readOrCreateSecretFile(tokenFile, () => newToken('gsc'))).value;
  const server = createCodecServer({ codec: new EncryptionCodec(ring), token, allowedOrigins, logger });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const url = `http://${host}:${(server.address() as AddressInfo).port}`;
  process.stdout.write(`Codec server: ${url} (for ${allowedOrigins.join(', ')})\n`);
  // The token itself is never printed: only where it is.
  if (!configuredToken)
    process.stdout.write(`Codec token: in ${tokenFile} (mode 0600); sign a browser in at ${url}/session\n`);
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

runMain(main);
