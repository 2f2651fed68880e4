import { RunnerPublicKey } from '../common/sealed-secret';
import { runMain } from '../common/main';
import path from 'node:path';
import { ConfigReader } from '../common/config';
import { preparePrivateDataDir } from '../common/data-dir';
import { DEFAULT_ACCESS_TOKEN_TTL_SECONDS } from '../contracts/access-token';
import { createLogger, readLogSettings } from '../common/logger';
import { TrustedProxies } from '../common/client-address';
import { readTemporalConnection } from '../common/temporal-connection';
import { PAYLOAD_KEYS_ENV, PayloadKeyRing } from '../common/payload-codec';
import { readSignInSettings } from './auth/settings';
import { startControlPlane } from './server';
import { DEFAULT_AUTO_STOP_MIN_SECONDS, DEFAULT_AUTO_STOP_WARNING_SECONDS } from './auto-stop';
import { DEFAULT_API_LIMITS } from './limits';
import { DEFAULT_EVENT_COALESCE_MS, DEFAULT_EVENT_POLL_MS } from './event-feed';
import { DEFAULT_ORPHAN_GRACE_SECONDS } from './reconciliation';
import { DEFAULT_PRUNE_EVERY_SECONDS, DEFAULT_WARM_POOL_EVERY_SECONDS } from './schedules';
import { DEFAULT_RETENTION } from '../activities/pruning';

/** `npm run api`: the REST API and the control-plane worker. */
async function main(): Promise<{ stop(): Promise<void> }> {
  const config = new ConfigReader(process.env);
  const dataDir = path.resolve(config.string('GITSPACES_DATA_DIR', '.gitspaces'));
  const databaseUrl = config.string('DATABASE_URL');
  // The control-plane worker's Worker Deployment build id; default derived from the workflow code.
  const buildId = config.string('GITSPACES_BUILD_ID');
  const host = config.string('GITSPACES_API_HOST', '127.0.0.1');
  const port = config.port('GITSPACES_API_PORT', 3000);
  const settings = {
    dataDir,
    database: databaseUrl
      ? { kind: 'postgres' as const, url: databaseUrl }
      : { kind: 'pglite' as const, dir: path.join(dataDir, 'db') },
    host,
    port,
    // TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE.
    temporal: config.include(() => readTemporalConnection(process.env))!,
    adminToken: config.string('GITSPACES_ADMIN_TOKEN'),
    payloadKeys: config.string(PAYLOAD_KEYS_ENV),
    embeddedDefaults: config.oneOf('GITSPACES_EMBEDDED_DEFAULTS', ['true', 'false'], 'true') === 'true',
    simulatedProvider: config.oneOf('GITSPACES_ENABLE_SIMULATED_PROVIDER', ['0', '1'], '0') === '1',
    localRunnerPublicKeys: config.parsed('GITSPACES_LOCAL_RUNNER_PUBLIC_KEYS', (raw) =>
      raw?.split(',').map((key) => RunnerPublicKey.parse(key.trim()).toString()),
    ),
    publicGatewayUrl: config.url('GITSPACES_PUBLIC_GATEWAY_URL', 'http://127.0.0.1:3001')!,
    runnerPickupTimeoutSeconds: config.positiveInt('GITSPACES_RUNNER_PICKUP_TIMEOUT_SECONDS', 60),
    accessTokenTtlSeconds: config.positiveInt('GITSPACES_ACCESS_TOKEN_TTL_SECONDS', DEFAULT_ACCESS_TOKEN_TTL_SECONDS),
    accessTokenKeyPem: config.string('GITSPACES_ACCESS_TOKEN_KEY'),
    workOrderKeyPem: config.string('GITSPACES_WORK_ORDER_KEY'),
    reconcileEverySeconds: config.positiveInt('GITSPACES_RECONCILE_EVERY_SECONDS', 120),
    orphanGraceSeconds: config.positiveInt('GITSPACES_ORPHAN_GRACE_SECONDS', DEFAULT_ORPHAN_GRACE_SECONDS),
    pruneEverySeconds: config.positiveInt('GITSPACES_PRUNE_EVERY_SECONDS', DEFAULT_PRUNE_EVERY_SECONDS),
    warmPoolEverySeconds: config.positiveInt('GITSPACES_WARM_POOL_EVERY_SECONDS', DEFAULT_WARM_POOL_EVERY_SECONDS),
    retention: {
      operationDays: config.positiveInt('GITSPACES_OPERATION_RETENTION_DAYS', DEFAULT_RETENTION.operationDays),
      idempotencyKeyDays: config.positiveInt(
        'GITSPACES_IDEMPOTENCY_KEY_RETENTION_DAYS',
        DEFAULT_RETENTION.idempotencyKeyDays,
      ),
      reconcileRunDays: config.positiveInt(
        'GITSPACES_RECONCILE_RUN_RETENTION_DAYS',
        DEFAULT_RETENTION.reconcileRunDays,
      ),
    },
    versioning: {
      ...(buildId ? { buildId } : {}),
      promotion: config.oneOf('GITSPACES_VERSION_PROMOTION', ['auto', 'manual'], 'auto'),
    },
    trustedProxies: config.parsed('GITSPACES_API_TRUSTED_PROXIES', TrustedProxies.parse),
    eventPollMs: config.positiveInt('GITSPACES_EVENT_POLL_MS', DEFAULT_EVENT_POLL_MS),
    eventCoalesceMs: config.positiveInt('GITSPACES_EVENT_COALESCE_MS', DEFAULT_EVENT_COALESCE_MS),
    autoStop: {
      warningSeconds: config.positiveInt('GITSPACES_AUTO_STOP_WARNING_SECONDS', DEFAULT_AUTO_STOP_WARNING_SECONDS),
      minSeconds: config.positiveInt('GITSPACES_AUTO_STOP_MIN_SECONDS', DEFAULT_AUTO_STOP_MIN_SECONDS),
    },
    // GITSPACES_PUBLIC_URL, GITSPACES_OIDC_*, GITSPACES_SESSION_*, GITSPACES_TEMPORAL_UI_URL.
    signIn: readSignInSettings(config, `http://${host}:${port}`),
    limits: {
      requestsPerMinute: config.positiveInt(
        'GITSPACES_API_RATE_LIMIT_PER_MINUTE',
        DEFAULT_API_LIMITS.requestsPerMinute,
      ),
      authFailuresPerMinute: config.positiveInt(
        'GITSPACES_API_AUTH_FAILURES_PER_MINUTE',
        DEFAULT_API_LIMITS.authFailuresPerMinute,
      ),
      maxGitspacesPerUser: config.positiveInt(
        'GITSPACES_MAX_GITSPACES_PER_USER',
        DEFAULT_API_LIMITS.maxGitspacesPerUser,
      ),
      maxEventStreamsPerUser: config.positiveInt(
        'GITSPACES_MAX_EVENT_STREAMS_PER_USER',
        DEFAULT_API_LIMITS.maxEventStreamsPerUser,
      ),
      maxSshKeysPerUser: config.positiveInt('GITSPACES_MAX_SSH_KEYS_PER_USER', DEFAULT_API_LIMITS.maxSshKeysPerUser),
    },
  };
  const logSettings = config.include(() => readLogSettings(process.env));
  config.done();
  await preparePrivateDataDir(dataDir);

  const logger = createLogger('api', logSettings);
  const { payloadKeys, ...rest } = settings;
  const controlPlane = await startControlPlane(
    { ...rest, ...(payloadKeys !== undefined ? { payloadKeys: PayloadKeyRing.parse(payloadKeys) } : {}) },
    logger,
  );
  process.stdout.write(`Gitspaces API: ${controlPlane.url}/api/v1\n`);
  // The admin token itself is never printed (logs are kept and shared): only where it is.
  if (controlPlane.adminTokenFile) {
    const generated = controlPlane.adminTokenCreated ? ' (generated now)' : '';
    process.stdout.write(`Admin token${generated}: in ${controlPlane.adminTokenFile} (mode 0600)\n`);
  }
  return controlPlane;
}

runMain(main);
