import path from 'node:path';
import { ConfigError, ConfigReader } from '../common/config';
import { preparePrivateDataDir } from '../common/data-dir';
import { createLogger, readLogSettings } from '../common/logger';
import { embeddedTemporalEnv } from '../common/temporal-connection';
import { startDevServer } from '../engine/dev-server';
import { findOrBuildTemporalCli } from '../engine/temporal-cli';
import { localMachinesRoot } from '../providers/local/provider';
import { STACK_PORTS } from './stack-ports';
import { loadPayloadKeyRing, PAYLOAD_KEYS_ENV } from '../common/payload-codec';
import { detectSandbox, sandboxSummary, sandboxWarning } from '../providers/local/sandbox';
import { Part, waitFor } from './processes';

/**
 * `npm start`: the whole stack on one machine with the embedded defaults — the Temporal dev server with its Web UI,
 * the control plane (API + worker, PGlite), a runner for the `local` infrastructure and the gateway — each part in
 * its own process, as it would run distributed. Ctrl-C stops them all; running gitspaces keep running, as VMs
 * would, and are found again by the next start.
 */
async function main(): Promise<void> {
  const config = new ConfigReader(process.env);
  const dataDir = path.resolve(config.string('GITSPACES_DATA_DIR', '.gitspaces'));
  const host = '127.0.0.1';
  const ports = Object.fromEntries(
    Object.entries(STACK_PORTS).map(([part, port]) => [part, config.port(port.variable, port.default)]),
  ) as Record<keyof typeof STACK_PORTS, number>;
  const payloadKeys = config.string(PAYLOAD_KEYS_ENV);
  const uiActions = config.oneOf('GITSPACES_TEMPORAL_UI_ACTIONS', ['on', 'off'], 'off');
  const explicitCli = config.string('TEMPORAL_CLI_PATH');
  const machinesDir = path.resolve(config.string('GITSPACES_LOCAL_MACHINES_DIR', localMachinesRoot(dataDir)));
  const logSettings = config.include(() => readLogSettings(process.env));
  config.done();

  const logger = createLogger('start', logSettings);
  let stopping = false;
  const cliPath = await findOrBuildTemporalCli({ explicitPath: explicitCli, searchPath: process.env.PATH, logger });
  // Everything the stack writes to the data dir is private to this user (0700 dir, 0600 files).
  await preparePrivateDataDir(dataDir);
  // What isolates local gitspaces from the host (and each other): said up front, and again when everything is up.
  const sandbox = await detectSandbox(machinesDir);
  const warning = sandboxWarning(sandbox);
  if (warning) process.stderr.write(`${warning.join('\n')}\n`);
  // The payload keys (GITSPACES_PAYLOAD_KEYS, else generated into the data dir once, before the parts race for it).
  await loadPayloadKeyRing({ dataDir, keys: payloadKeys });
  const codecUrl = `http://${host}:${ports.codec}`;
  const temporal = await startDevServer({
    cliPath,
    host,
    port: ports.temporal,
    uiPort: ports.temporalUi,
    uiCodecEndpoint: codecUrl,
    uiWriteActions: uiActions === 'on',
    namespace: 'default',
    dbFile: path.join(dataDir, 'temporal.sqlite'),
    logger,
    // While stopping, the server's complaints about its own closed ports are noise.
    onOutput: (line) => !stopping && process.stderr.write(`[temporal] ${line}\n`),
  });

  const apiUrl = `http://${host}:${ports.api}`;
  const gatewayUrl = `http://${host}:${ports.gateway}`;
  // The parts use this dev server, in plaintext on loopback, whatever Temporal settings this shell has.
  const embedded = embeddedTemporalEnv(process.env, temporal.connection);
  if (embedded.ignored.length > 0) {
    process.stderr.write(
      `npm start runs its own Temporal dev server: ignoring ${embedded.ignored.join(', ')} ` +
        '(run the parts on their own to use another Temporal: README, Running each part on its own)\n',
    );
  }
  const env: NodeJS.ProcessEnv = {
    ...embedded.env,
    GITSPACES_DATA_DIR: dataDir,
    GITSPACES_API_PORT: String(ports.api),
    GITSPACES_PUBLIC_GATEWAY_URL: gatewayUrl,
    GITSPACES_GATEWAY_PORT: String(ports.gateway),
    GITSPACES_GATEWAY_ADMIN_PORT: String(ports.gatewayAdmin),
    GITSPACES_GATEWAY_ADMIN_URL: `http://${host}:${ports.gatewayAdmin}`,
    GITSPACES_JWKS_URL: `${apiUrl}/api/v1/.well-known/jwks.json`,
    // The gateway sends a browser that opens a gitspace without a session to sign in here (the dashboard's /open/<id>).
    GITSPACES_DASHBOARD_URL: apiUrl,
    GITSPACES_INFRASTRUCTURE_ID: 'local',
    GITSPACES_CODEC_PORT: String(ports.codec),
    GITSPACES_CODEC_ALLOWED_ORIGINS: `http://${host}:${ports.temporalUi},http://localhost:${ports.temporalUi}`,
    // The dashboard links each gitspace to its runs in this Web UI.
    GITSPACES_TEMPORAL_UI_URL: temporal.uiUrl,
  };
  const parts = [
    new Part('api', 'api/main.ts', env),
    new Part('gateway', 'gateway/main.ts', env),
    new Part('runner', 'workers/runner-main.ts', env),
    new Part('codec-server', 'codec/main.ts', env),
  ];
  for (const part of parts) part.start();

  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nStopping… (running gitspaces keep running; the next start finds them)\n');
    await Promise.all(parts.map((part) => part.stop()));
    await temporal.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());

  await waitFor(`${apiUrl}/readyz`, 120_000);
  await waitFor(`${gatewayUrl}/healthz`, 60_000);
  await waitFor(`${codecUrl}/healthz`, 60_000);
  process.stdout.write(
    [
      '',
      'Gitspaces is running.',
      `  Dashboard:    ${apiUrl}/   (sign in with the admin token below)`,
      `  API:          ${apiUrl}/api/v1   (OpenAPI: ${apiUrl}/api/v1/openapi.json)`,
      `  Gateway:      ${gatewayUrl}`,
      `  Temporal UI:  ${temporal.uiUrl}   (filter by GitspaceId; write actions ${temporal.uiWriteActions ? 'on' : 'off: GITSPACES_TEMPORAL_UI_ACTIONS=on turns them on'})`,
      `  Codec server: ${codecUrl}   (payloads are encrypted; sign a browser in at ${codecUrl}/session with the token in ${process.env.GITSPACES_CODEC_TOKEN ? 'GITSPACES_CODEC_TOKEN' : path.join(dataDir, 'codec-token')})`,
      `  Admin token:  ${process.env.GITSPACES_ADMIN_TOKEN ? 'from GITSPACES_ADMIN_TOKEN' : path.join(dataDir, 'admin-token')}`,
      `  Local gitspaces: ${sandboxSummary(sandbox)}, machines in ${machinesDir}`,
      '',
      'Try it:',
      `  TOKEN=$(cat ${path.join(dataDir, 'admin-token')})`,
      `  curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${apiUrl}/api/v1/gitspaces \\`,
      `    -d '{"name":"demo","repository":{"url":"https://example.com/your/repo.git"},"infrastructureId":"local","machineId":"local-default"}'`,
      `  curl -s -X POST -H "Authorization: Bearer $TOKEN" ${apiUrl}/api/v1/gitspaces/<id>/access   # then open "url"`,
      '',
      'Ctrl-C stops everything.',
      '',
      ...(warning ? [...warning, ''] : []),
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof ConfigError ? error.message : error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
